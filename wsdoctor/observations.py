"""The facts probes gather: plain dataclasses, serialisable to and from JSON.

Times are seconds. ``t`` values inside a connection, and its age, count from the moment its
opening handshake completed; ``opened_at`` values count from the start of the run.
Nothing here judges what a fact means: that is the job of ``wsdoctor.diagnosis``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, cast

EndKind = Literal["close_frame", "eof", "reset", "silent", "local", "handshake_failed", "open"]
"""How a connection ended. ``open`` means it was still open when its stage finished."""

HandshakeFailureReason = Literal[
    "dns", "refused", "timeout", "tls", "http_status", "upgrade_not_performed", "reset", "other"
]

ConnectionRole = Literal[
    "handshake",  # one connection that only opens and closes
    "echo",  # RTT sampling with protocol pings and application messages
    "sentinel",  # stays fully idle until the stage ends
    "rung",  # stays idle until its planned idle time, then pings once
    "heartbeat",  # protocol pings at a fixed interval
    "traffic",  # application messages at a fixed interval
]

EventKind = Literal[
    "ping_sent",  # protocol ping sent by the probe
    "pong_received",  # answer to a probe ping; ``rtt_ms`` set
    "ping_timeout",  # no pong within the ping timeout
    "server_ping",  # protocol ping sent by the server on its own
    "message_sent",
    "message_received",  # ``rtt_ms`` set when it answers a message the probe sent
]


@dataclass
class HandshakeFailure:
    """Why an opening handshake did not produce a WebSocket connection."""

    reason: HandshakeFailureReason
    message: str
    status: int | None = None


@dataclass
class Handshake:
    """Timings and outcome of one opening handshake (seconds for each phase)."""

    ok: bool
    dns_s: float | None = None
    tcp_s: float | None = None
    tls_s: float | None = None
    upgrade_s: float | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    subprotocol: str | None = None
    failure: HandshakeFailure | None = None


@dataclass
class Event:
    """One thing that happened on a connection, ``t`` seconds after its handshake completed."""

    t: float
    kind: EventKind
    size: int | None = None
    rtt_ms: float | None = None


@dataclass
class Ending:
    """How a connection ended, with its age and idle time (no byte either way) at that moment."""

    kind: EndKind
    age_s: float
    idle_s: float
    code: int | None = None
    reason: str | None = None
    initiator: Literal["server", "client"] | None = None
    detail: str | None = None


@dataclass
class ConnectionRecord:
    """The life of one probe connection."""

    id: str
    role: ConnectionRole
    opened_at: float
    handshake: Handshake
    ending: Ending
    planned_idle_s: float | None = None
    interval_s: float | None = None
    events: list[Event] = field(default_factory=list)
    server_pings: int = 0
    server_ping_interval_s: float | None = None


@dataclass
class RttStats:
    """Round-trip time statistics in milliseconds."""

    kind: Literal["protocol", "application"]
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    jitter_ms: float
    lost: int = 0


@dataclass
class LoopLag:
    """How late the probe's own event loop woke up during a stage (milliseconds)."""

    samples: int
    p99_ms: float
    max_ms: float


@dataclass
class StageResult:
    """What one stage saw on one path."""

    name: Literal["handshake", "echo", "idle", "heartbeat", "size", "rate", "stability", "capacity"]
    started_at: float
    duration_s: float
    connections: list[ConnectionRecord] = field(default_factory=list)
    rtt: list[RttStats] = field(default_factory=list)
    loop_lag: LoopLag | None = None
    ping_timeout_s: float | None = None
    max_idle_s: float | None = None
    app_echo: bool | None = None
    app_heartbeat_answered: bool | None = None
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    client_fd_limit: int | None = None


@dataclass
class Step:
    """One step of a stepped stage: a message size, a message rate or a concurrency level."""

    value: float  # bytes, messages per second, or concurrent connections
    ok: bool
    sent: int = 0
    answered: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # failure reason or ending -> count
    ending: Ending | None = None
    status: int | None = None  # an HTTP status seen at this step (429, 503)
    elapsed_s: float = 0.0
    phase: str | None = None  # part of the stage: "ramp", "recovery", "storm", ...


@dataclass
class HostLimit:
    """One limit read on the server host, and where it was read."""

    name: str
    value: int | str | None
    source: str
    error: str | None = None


@dataclass
class HostFacts:
    """The server host's limits that decide how many connections it holds, for how long."""

    limits: list[HostLimit] = field(default_factory=list)
    pid: int | None = None
    target_connections: int | None = None


@dataclass
class Disconnect:
    """One drop seen by ``wsdoctor watch``."""

    at_s: float  # seconds since the watch started
    connection: int
    ending: Ending
    reconnect_delay_s: float | None = None
    reconnect_attempts: int = 0
    failure: HandshakeFailure | None = None  # the last failed handshake before it came back


@dataclass
class WatchLog:
    """What a long watch of one or more connections saw."""

    duration_s: float
    connections: int
    up_s: float
    disconnects: list[Disconnect] = field(default_factory=list)
    rtt: RttStats | None = None
    reconnect_times_s: list[float] = field(default_factory=list)
    loop_lag: LoopLag | None = None


@dataclass
class Fingerprint:
    """An intermediary recognised from a response header."""

    name: str
    kind: Literal["proxy", "load_balancer", "cdn", "paas", "server"]
    header: str
    value: str
    source: Literal["upgrade", "http"]


@dataclass
class PathResult:
    """Every stage run over one path to the service."""

    name: str
    url: str
    proxy: str | None = None
    stages: list[StageResult] = field(default_factory=list)
    fingerprints: list[Fingerprint] = field(default_factory=list)

    def stage(self, name: str) -> StageResult | None:
        """The stage called ``name``, or None when it did not run."""
        return next((s for s in self.stages if s.name == name), None)


@dataclass
class Observations:
    """Everything one run gathered, over every path."""

    started_at: str
    duration_s: float
    paths: list[PathResult] = field(default_factory=list)
    interrupted: bool = False
    host: HostFacts | None = None
    watch: WatchLog | None = None


def to_dict(obj: Any) -> Any:
    """Turn an observation dataclass (or a list of them) into JSON-ready data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [to_dict(item) for item in obj]
    if isinstance(obj, dict):
        return {key: to_dict(value) for key, value in obj.items()}
    return obj


def _build(cls: type, data: dict[str, Any]) -> Any:
    nested: dict[str, tuple[type, bool]] = {
        "handshake": (Handshake, False),
        "failure": (HandshakeFailure, False),
        "ending": (Ending, False),
        "events": (Event, True),
        "connections": (ConnectionRecord, True),
        "rtt": (RttStats, True),
        "loop_lag": (LoopLag, False),
        "stages": (StageResult, True),
        "fingerprints": (Fingerprint, True),
        "paths": (PathResult, True),
        "steps": (Step, True),
        "host": (HostFacts, False),
        "limits": (HostLimit, True),
        "watch": (WatchLog, False),
        "disconnects": (Disconnect, True),
    }
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            continue
        if key in nested and isinstance(value, (dict, list)):
            inner, many = nested[key]
            if many:
                value = [_build(inner, v) for v in value]
            else:
                value = _build(inner, cast("dict[str, Any]", value))
        kwargs[key] = value
    return cls(**kwargs)


def observations_from_dict(data: dict[str, Any]) -> Observations:
    """Rebuild observations from the ``to_dict`` form (for example a saved report's paths)."""
    return cast(Observations, _build(Observations, data))
