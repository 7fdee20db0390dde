"""Derived facts: the figures rules reason about, computed from one path's observations.

Pure functions only: nothing here sleeps, touches the network or decides a culprit.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from wsdoctor.observations import ConnectionRecord, HandshakeFailure, PathResult

IMMEDIATE_CLOSE_S = 0.3  # a close this soon after opening is a refusal, not an idle timeout


def closed_by_peer(record: ConnectionRecord) -> bool:
    """The far side ended it: a FIN, a RST, or a close frame the server sent first."""
    ending = record.ending
    return ending.kind in ("eof", "reset") or (
        ending.kind == "close_frame" and ending.initiator != "client"
    )


def protocol_violations(path: PathResult) -> list[ConnectionRecord]:
    """Connections the probe had to close because the server broke the WebSocket protocol."""
    return [
        c
        for stage in path.stages
        for c in stage.connections
        if c.ending.kind == "close_frame" and c.ending.initiator == "client"
    ]


def tolerance(seconds: float) -> float:
    """How far apart two measurements of one timeout may be: max(0.5 s, 5 %)."""
    return max(0.5, 0.05 * seconds)


@dataclass
class IdleDrop:
    """Idle connections ended at about ``idle_s`` seconds of idleness."""

    idle_s: float
    low_s: float
    high_s: float
    how: str  # "close_frame", "eof", "reset" or "silent"
    samples: int
    codes: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    survived_rungs: list[float] = field(default_factory=list)
    reset_on_send: bool = False

    @property
    def uncertainty_s(self) -> float:
        """Half the width of the interval the timeout is known to lie in."""
        return (self.high_s - self.low_s) / 2


@dataclass
class KeeperFate:
    """What happened to one heartbeat or traffic connection."""

    id: str
    role: str
    interval_s: float
    how: str
    age_s: float
    outlived: bool  # still fine past the drop
    died_with_drop: bool  # ended by the peer at about the drop's age


def handshake_failure(path: PathResult) -> HandshakeFailure | None:
    """Why the first handshake failed, or None when it worked (or did not run)."""
    stage = path.stage("handshake")
    if stage is None or not stage.connections:
        return None
    handshake = stage.connections[0].handshake
    return None if handshake.ok else handshake.failure


def _idle_connections(path: PathResult) -> list[ConnectionRecord]:
    stage = path.stage("idle")
    return [c for c in stage.connections if c.handshake.ok] if stage else []


def _answered_rungs(records: list[ConnectionRecord]) -> list[float]:
    return sorted(
        c.planned_idle_s
        for c in records
        if c.role == "rung"
        and c.planned_idle_s is not None
        and any(e.kind == "pong_received" for e in c.events)
    )


def _pinged(record: ConnectionRecord) -> bool:
    return any(e.kind == "ping_sent" for e in record.events)


def _contradicted(answered: list[float], bound_s: float) -> bool:
    """A rung idle for clearly longer than ``bound_s`` still answered: no idle timeout there."""
    return any(r > bound_s + tolerance(bound_s) for r in answered)


def _timed_drop(closed: list[ConnectionRecord], answered: list[float]) -> IdleDrop | None:
    """The first cluster of closes on fully idle connections that no answered rung refutes."""
    idles = sorted(c.ending.idle_s for c in closed)
    for first in idles:
        agreeing = [v for v in idles if first <= v <= first + tolerance(first)]
        if _contradicted(answered, max(agreeing)):
            continue
        members = [c for c in closed if first <= c.ending.idle_s <= max(agreeing)]
        kinds = [c.ending.kind for c in members]
        return IdleDrop(
            idle_s=round(statistics.median(agreeing), 3),
            low_s=round(min(agreeing), 3),
            high_s=round(max(agreeing), 3),
            how=max(set(kinds), key=kinds.count),
            samples=len(agreeing),
            codes=sorted({c.ending.code for c in members if c.ending.code is not None}),
            reasons=sorted({c.ending.reason for c in members if c.ending.reason}),
            survived_rungs=[r for r in answered if r < first],
        )
    return None


def _silent_drop(records: list[ConnectionRecord], answered: list[float]) -> IdleDrop | None:
    """The shortest unanswered rung that no longer answered rung refutes, bracketed."""
    failed = sorted(
        (
            c
            for c in records
            if c.role == "rung"
            and c.planned_idle_s is not None
            and _pinged(c)
            and c.planned_idle_s not in answered
            and c.ending.kind != "open"
        ),
        key=lambda c: c.planned_idle_s or 0.0,
    )
    for index, first in enumerate(failed):
        high = first.planned_idle_s or 0.0
        if _contradicted(answered, high):
            continue
        below = [r for r in answered if r < high]
        low = below[-1] if below else 0.0
        beyond = failed[index:]
        return IdleDrop(
            idle_s=round((low + high) / 2, 3),
            low_s=low,
            high_s=high,
            how="silent",
            samples=len(beyond),
            survived_rungs=below,
            reset_on_send=any(closed_by_peer(c) for c in beyond),
        )
    return None


def idle_drop(path: PathResult) -> IdleDrop | None:
    """When idle connections were ended, and how.

    Connections closed by the peer while fully idle time the drop exactly. Failing that,
    rungs whose ping went unanswered (silence, or a RST only once data was sent) bound it
    between the longest answered rung and the shortest failed one. A drop that a longer
    answered rung refutes is no idle timeout: it is left to the instability rule.
    """
    records = _idle_connections(path)
    answered = _answered_rungs(records)
    closed = [
        c
        for c in records
        if closed_by_peer(c) and not _pinged(c) and c.ending.age_s >= IMMEDIATE_CLOSE_S
    ]
    return _timed_drop(closed, answered) or _silent_drop(records, answered)


def keeper_fates(path: PathResult, drop: IdleDrop) -> list[KeeperFate]:
    """Heartbeat and traffic connections that beat faster than the drop, and their fates."""
    stage = path.stage("heartbeat")
    if stage is None:
        return []
    fates = []
    for c in stage.connections:
        if not c.handshake.ok or c.interval_s is None or c.interval_s >= drop.low_s:
            continue
        ended_by_peer = closed_by_peer(c) or c.ending.kind == "silent"
        slack = tolerance(drop.high_s) + (c.interval_s if c.ending.kind == "silent" else 0.0)
        died_with_drop = (
            ended_by_peer
            and drop.low_s - tolerance(drop.low_s) <= c.ending.age_s
            and c.ending.age_s <= drop.high_s + slack
        )
        outlived = not ended_by_peer and c.ending.age_s > drop.high_s + tolerance(drop.high_s)
        fates.append(
            KeeperFate(
                id=c.id,
                role=c.role,
                interval_s=c.interval_s,
                how=c.ending.kind,
                age_s=c.ending.age_s,
                outlived=outlived,
                died_with_drop=died_with_drop,
            )
        )
    return fates


def server_ping_interval(path: PathResult) -> float | None:
    """The server's own ping interval, when it pinged probe connections unprompted."""
    intervals = [
        c.server_ping_interval_s
        for stage in path.stages
        for c in stage.connections
        if c.server_ping_interval_s is not None
    ]
    return round(statistics.median(intervals), 3) if intervals else None


def server_push_interval(path: PathResult) -> float | None:
    """The median gap between messages the server sent to sentinels, which never send."""
    stage = path.stage("idle")
    gaps = [
        b.t - a.t
        for c in (stage.connections if stage else [])
        if c.role == "sentinel"
        for a, b in zip(
            [e for e in c.events if e.kind == "message_received"],
            [e for e in c.events if e.kind == "message_received"][1:],
        )
    ]
    return round(statistics.median(gaps), 3) if gaps else None


def max_loop_lag_ms(path: PathResult) -> float:
    """The worst wake-up delay of the probe's own event loop over every stage."""
    return max((s.loop_lag.max_ms for s in path.stages if s.loop_lag), default=0.0)


def idle_survived_s(path: PathResult) -> float | None:
    """The longest idle period an idle connection was seen to survive."""
    answered = _answered_rungs(_idle_connections(path))
    return answered[-1] if answered else None


def _explained(record: ConnectionRecord, drop: IdleDrop | None) -> bool:
    if drop is None:
        return False
    slack = tolerance(drop.high_s) + drop.uncertainty_s
    if record.role in ("sentinel", "rung"):
        idle = record.planned_idle_s if record.ending.kind == "silent" else record.ending.idle_s
        return (idle or 0.0) >= drop.low_s - slack
    return abs(record.ending.age_s - drop.idle_s) <= slack + (record.interval_s or 0.0)


def unexpected_drops(path: PathResult, drop: IdleDrop | None) -> list[ConnectionRecord]:
    """Connections lost to FIN, RST or silence that the idle drop does not explain.

    Close frames are left out: a server that says why it closes is not an unstable network.
    """
    return [
        c
        for stage in path.stages
        for c in stage.connections
        if c.ending.kind in ("eof", "reset", "silent")
        and c.ending.age_s >= IMMEDIATE_CLOSE_S
        and not _explained(c, drop)
    ]


def server_closes(path: PathResult, drop: IdleDrop | None) -> list[ConnectionRecord]:
    """Connections the server closed with a close frame that the idle drop does not explain."""
    return [
        c
        for stage in path.stages
        for c in stage.connections
        if c.ending.kind == "close_frame"
        and c.ending.initiator != "client"
        and c.ending.age_s >= IMMEDIATE_CLOSE_S
        and not _explained(c, drop)
    ]


def immediate_closes(path: PathResult) -> list[ConnectionRecord]:
    """Connections the peer ended right after the upgrade succeeded."""
    return [
        c
        for stage in path.stages
        for c in stage.connections
        if closed_by_peer(c) and c.ending.age_s < IMMEDIATE_CLOSE_S
    ]


def rtt_samples_ms(path: PathResult) -> list[float]:
    """Every round trip measured on the path: pongs and answered messages, in every stage."""
    return [
        e.rtt_ms
        for stage in path.stages
        for c in stage.connections
        for e in c.events
        if e.rtt_ms is not None
    ]


def lost_pongs(path: PathResult) -> tuple[int, int]:
    """Pings that went unanswered in the echo stage, and pings sent there."""
    stage = path.stage("echo")
    if stage is None:
        return 0, 0
    stats = [s for s in stage.rtt if s.kind == "protocol"]
    lost = sum(s.lost for s in stats)
    return lost, lost + sum(s.samples for s in stats)


def refused_opens(path: PathResult) -> list[ConnectionRecord]:
    """Probe connections after the first handshake that could not be opened."""
    return [
        c
        for stage in path.stages
        if stage.name != "handshake"
        for c in stage.connections
        if c.ending.kind == "handshake_failed"
    ]


def opened_in(path: PathResult, stage_name: str) -> int:
    """How many connections of one stage were opened."""
    stage = path.stage(stage_name)
    return sum(1 for c in stage.connections if c.handshake.ok) if stage else 0
