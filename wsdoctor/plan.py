"""What to probe: paths, connection options and stage budgets. No network here."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wsdoctor.backoff import BackoffPolicy

DEFAULT_MAX_IDLE_S = 120.0
QUICK_MAX_IDLE_S = 30.0
DEFAULT_HEARTBEAT_MESSAGE = '{"type":"ping"}'
STAGES = ("handshake", "echo", "idle", "heartbeat")
ALL_STAGES = ("handshake", "echo", "idle", "heartbeat", "size", "rate", "stability")
LOAD_STAGES = ("size", "rate")
"""Stages that load the server: by default only against loopback targets."""
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
MIN_MAX_MESSAGE_BYTES = 1 << 10
MAX_MAX_MESSAGE_BYTES = 1 << 28
FIRST_MESSAGE_BYTES = 256
DEFAULT_MESSAGE_RATES = (10.0, 20.0, 50.0, 100.0, 200.0, 500.0)
MIN_PING_TIMEOUT_S = 1.0
MAX_PING_TIMEOUT_S = 10.0
"""How long any probe waits for a pong, at least and at most (paths' RTT set it between)."""
WATCH_MAX_STAGGER_S = 5.0


class PlanError(ValueError):
    """A plan that cannot be run, with a message fit for the user."""


@dataclass(frozen=True)
class PathSpec:
    """One way to the service: a WebSocket URL, optionally through a forward proxy."""

    name: str
    url: str
    proxy: str | None = None


DEFAULT_OPEN_TIMEOUT_S = 10.0
"""Seconds each handshake may take, the same for every command."""


@dataclass(frozen=True)
class ConnectOptions:
    """How every probe connection opens."""

    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None
    insecure: bool = False
    cacert: str | None = None
    client_cert: str | None = None  # PEM, for mutual TLS
    client_key: str | None = None  # PEM; None: the key is in client_cert
    open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S
    max_message_bytes: int = 1 << 20


@dataclass(frozen=True)
class IdlePlan:
    """The concurrent idle ladder: rungs ping once at their idle time; heartbeats keep pinging."""

    max_idle_s: float = DEFAULT_MAX_IDLE_S
    linear_step_s: float = 0.5
    linear_until_s: float = 5.0
    ratio: float = 1.08
    sentinels: int = 2

    def rungs(self) -> list[float]:
        """Idle durations at which one connection each sends its first ping.

        Spaced so that the midpoint of two neighbours is well within max(0.5 s, 5 %) of any
        timeout between them: 0.5 s steps up to ``linear_until_s``, then a ``ratio`` of 1.08
        (half a gap is at most 0.25 s or 3.9 %).
        """
        rungs: list[float] = []
        value = self.linear_step_s
        while value < min(self.linear_until_s, self.max_idle_s):
            rungs.append(round(value, 2))
            value += self.linear_step_s
        value = max(value, self.linear_step_s)
        while value * math.sqrt(self.ratio) < self.max_idle_s:
            rungs.append(round(value, 2 if value < 10 else 1))
            value *= self.ratio
        rungs.append(self.max_idle_s)
        return sorted(set(rungs))

    def heartbeat_intervals(self) -> list[float]:
        """Protocol-ping intervals to try at once: 1, 2, 4 ... s, each below ``max_idle_s``."""
        count = max(1, int(math.log2(max(self.max_idle_s, 2.0))))
        return [float(2**i) for i in range(count) if 2**i < self.max_idle_s] or [1.0]


@dataclass(frozen=True)
class LoadPlan:
    """The size and rate stages: how big the largest message is, which bursts to send.

    After the first size that fails, the size stage bisects between the largest size that
    passed and the smallest that failed, until they are within ``size_tolerance`` of each
    other, for at most ``max_bisect_steps`` extra messages and ``bisect_budget_s`` seconds.
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    rates: tuple[float, ...] = DEFAULT_MESSAGE_RATES
    burst_s: float = 1.0
    max_bisect_steps: int = 8
    bisect_budget_s: float = 20.0
    size_precision: float = 0.01  # relative: 1 %
    size_resolution: int = 1 << 10  # absolute: 1 KiB (whichever of the two is larger)

    def sizes(self) -> list[int]:
        """Message sizes to try: powers of two from 256 B, ending at ``max_message_bytes``."""
        sizes = []
        size = min(FIRST_MESSAGE_BYTES, self.max_message_bytes)
        while size < self.max_message_bytes:
            sizes.append(size)
            size *= 2
        return [*sizes, self.max_message_bytes]

    def size_tolerance(self, passed: int) -> int:
        """How close the bisection gets: max(1 %, 1 KiB) of the largest size that passed.

        A limit lies at or above the largest size that passed, so 1 % of that size is at
        most 1 % of the limit.
        """
        return max(int(passed * self.size_precision), self.size_resolution)

    def bisect_size(self, passed: int, failed: int) -> int | None:
        """The next size between ``passed`` (went through) and ``failed`` (ended a connection).

        None once the two are within ``size_tolerance(passed)``. Sizes are rounded down to a
        quarter of the tolerance at most (a power of two, 256 B for 1 KiB), for readable
        figures; halving the bracket still converges in the same number of steps.
        """
        tolerance = self.size_tolerance(passed)
        if failed - passed <= tolerance:
            return None
        grain = 1 << max(0, (tolerance // 4).bit_length() - 1)
        middle = (passed + failed) // 2
        rounded = middle - middle % grain
        return rounded if passed < rounded < failed else middle


@dataclass(frozen=True)
class StabilityPlan:
    """The stability stage: protocol pings at a steady cadence for a while."""

    duration_s: float = 5.0
    interval_s: float = 0.2


@dataclass(frozen=True)
class Plan:
    """Everything a run needs to know before it touches the network."""

    paths: tuple[PathSpec, ...]
    connect: ConnectOptions = field(default_factory=ConnectOptions)
    idle: IdlePlan = field(default_factory=IdlePlan)
    heartbeat_message: str = DEFAULT_HEARTBEAT_MESSAGE
    echo_samples: int = 20
    stages: tuple[str, ...] = STAGES
    load: LoadPlan = field(default_factory=LoadPlan)
    stability: StabilityPlan = field(default_factory=StabilityPlan)


@dataclass(frozen=True)
class CapacityPlan:
    """How far and how fast the ramp may go."""

    max_connections: int = 200
    rate_per_s: float = 200.0
    hold_s: float = 1.0
    ping_timeout_s: float = 3.0
    max_in_flight: int = 100
    storm: bool = False


@dataclass(frozen=True)
class WatchPlan:
    """What to watch, how often to beat, and how to come back after a drop."""

    path: PathSpec
    connect: ConnectOptions = field(default_factory=ConnectOptions)
    interval_s: float = 15.0
    heartbeat_message: str | None = None
    connections: int = 1
    duration_s: float | None = None
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    @property
    def ping_timeout_s(self) -> float:
        """How long a heartbeat waits for its pong: the interval, within [1 s, 10 s]."""
        return min(MAX_PING_TIMEOUT_S, max(MIN_PING_TIMEOUT_S, self.interval_s))

    @property
    def stagger_s(self) -> float:
        """The gap between opening one connection and the next.

        Staggered opens give the connections different ages, so that a drop tied to age
        (a lifetime cap) shows at different moments and one tied to a moment (a restart)
        hits connections of different ages.
        """
        return min(self.interval_s, WATCH_MAX_STAGGER_S) / self.connections


def plan_from_options(
    *,
    paths: tuple[PathSpec, ...],
    connect: ConnectOptions,
    max_idle_s: float | None = None,
    quick: bool = False,
    stages: str | None = None,
    max_message: str | None = None,
    heartbeat_message: str | None = None,
) -> Plan:
    """A validated probe plan from command-line options; PlanError on bad input.

    ``stages`` and ``max_message`` are the options' texts (``--stages``, ``--max-message``);
    without ``max_idle_s`` the idle budget is 120 s, or 30 s with ``quick``.
    """
    idle_s = (
        max_idle_s
        if max_idle_s is not None
        else (QUICK_MAX_IDLE_S if quick else DEFAULT_MAX_IDLE_S)
    )
    validate_max_idle(idle_s)
    if heartbeat_message is not None and not heartbeat_message:
        raise PlanError("--heartbeat-message must not be empty")
    chosen = parse_stages(stages) if stages is not None else default_stages(paths)
    load = LoadPlan() if max_message is None else LoadPlan(parse_message_size(max_message))
    return Plan(
        paths=paths,
        connect=connect,
        idle=IdlePlan(max_idle_s=idle_s),
        heartbeat_message=heartbeat_message or DEFAULT_HEARTBEAT_MESSAGE,
        stages=chosen,
        load=load,
    )


def validate_ws_url(url: str) -> str:
    """Return ``url`` if it is a usable ws:// or wss:// URL, else raise PlanError."""
    from wsdoctor.redact import redact_url

    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise PlanError(f"invalid URL {shown!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss"):
        raise PlanError(f"unsupported URL scheme {parts.scheme or '(none)'!r}: use ws:// or wss://")
    if not parts.hostname:
        raise PlanError(f"URL {shown!r} has no host")
    if port == 0:
        raise PlanError(f"URL {shown!r} has port 0")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise PlanError(f"URL {shown!r} contains spaces or control characters")
    return url


def validate_token_list(option: str, values: tuple[str, ...]) -> tuple[str, ...]:
    """Subprotocol names must be non-empty HTTP tokens."""
    for value in values:
        if not value or any(c.isspace() or c in '()<>@,;:\\"/[]?={}' for c in value):
            raise PlanError(f"{option} {value!r} is not a valid token")
    return values


def validate_header_value(option: str, value: str | None) -> str | None:
    """A single-line header value (no CR or LF that could inject headers)."""
    if value is not None and ("\n" in value or "\r" in value):
        raise PlanError(f"{option} contains a line break")
    return value


def parse_header(text: str) -> tuple[str, str]:
    """Parse ``"Name: value"`` into a pair, raising PlanError on bad syntax."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise PlanError(f"bad header {text.split(':', 1)[0]!r}: expected 'Name: value'")
    if "\n" in value or "\r" in value:
        raise PlanError(f"bad header {name!r}: value contains a line break")
    return name, value.strip()


def validate_max_idle(value: float) -> float:
    """Reject idle budgets that cannot be run: below 2 s or above one day."""
    if not math.isfinite(value) or value < 2 or value > 86400:
        raise PlanError(f"--max-idle must be between 2 and 86400 seconds, got {value}")
    return value


def parse_stages(text: str) -> tuple[str, ...]:
    """Parse ``--stages`` (comma-separated names) into stages in run order, handshake first.

    The handshake always runs (every later stage needs it); ``idle`` and ``heartbeat`` run
    together, so naming either runs both.
    """
    names = [name.strip().lower() for name in text.split(",")]
    if not any(names):
        raise PlanError(f"--stages needs stage names: {','.join(ALL_STAGES)}")
    for name in names:
        if name not in ALL_STAGES:
            what = f"unknown stage {name!r}" if name else "empty stage name"
            raise PlanError(f"{what} in --stages: use {','.join(ALL_STAGES)}")
    chosen = {"handshake", *names}
    if chosen & {"idle", "heartbeat"}:
        chosen |= {"idle", "heartbeat"}
    return tuple(stage for stage in ALL_STAGES if stage in chosen)


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1), without DNS."""
    if not host:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_stages(paths: tuple[PathSpec, ...]) -> tuple[str, ...]:
    """The stages to run when ``--stages`` is not given.

    Stability only pings, so it always runs; size and rate load the server, so they run by
    default only when every path (and every forward proxy) stays on this machine.
    """
    local = all(
        is_loopback_host(urlsplit(p.url).hostname)
        and (p.proxy is None or is_loopback_host(urlsplit(p.proxy).hostname))
        for p in paths
    )
    extra = ("stability", *LOAD_STAGES) if local else ("stability",)
    return tuple(stage for stage in ALL_STAGES if stage in (*STAGES, *extra))


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20}


def parse_message_size(text: str) -> int:
    """Parse ``--max-message`` (bytes, or with a K/KiB/M/MiB suffix) and check its range."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise PlanError(f"--max-message must be a size in bytes such as 65536 or 64KiB: {text!r}")
    value = int(match.group(1)) * _SIZE_UNITS[unit]
    if not MIN_MAX_MESSAGE_BYTES <= value <= MAX_MAX_MESSAGE_BYTES:
        raise PlanError(
            f"--max-message must be between {MIN_MAX_MESSAGE_BYTES} and "
            f"{MAX_MAX_MESSAGE_BYTES} bytes, got {value}"
        )
    return value


def validate_proxy_url(url: str) -> str:
    """Return ``url`` if it names a usable forward proxy, else raise PlanError."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise PlanError(f"invalid proxy URL: {exc}") from None
    if parts.scheme not in FORWARD_PROXY_SCHEMES:
        raise PlanError(
            f"unsupported proxy scheme {parts.scheme or '(none)'!r}: use "
            + ", ".join(f"{s}://" for s in FORWARD_PROXY_SCHEMES)
        )
    if not parts.hostname:
        raise PlanError("proxy URL has no host")
    return url


FORWARD_PROXY_SCHEMES = ("http", "socks5", "socks4")


def entry_points(direct_url: str, entries: list[str]) -> list[tuple[str, str, str | None]]:
    """Name each extra entry point: a ws(s) URL is a reverse proxy, others forward proxies."""
    named: list[tuple[str, str, str | None]] = []
    for index, entry in enumerate(entries):
        name = "via-proxy" if len(entries) == 1 else f"via-{index + 1}"
        if entry.startswith(("ws://", "wss://")):
            named.append((name, entry, None))
        else:
            named.append((name, direct_url, entry))
    return named


def environment_proxy(url: str) -> str | None:
    """The forward proxy the environment sets for ``url``, as curl reads it: HTTP_PROXY for
    ws://, HTTPS_PROXY for wss://, else ALL_PROXY; NO_PROXY exempts hosts."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None  # the usual case, without importing urllib.request (about 18 ms)
    from urllib import request

    parts = urlsplit(url)
    proxies = request.getproxies_environment()
    bypass = request.proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed
    if parts.hostname and bypass(parts.hostname, proxies):
        return None
    scheme = "https" if parts.scheme == "wss" else "http"
    return proxies.get(scheme) or proxies.get("all") or None
