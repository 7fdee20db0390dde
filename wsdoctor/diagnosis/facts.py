"""Derived facts: the figures rules reason about, computed from one path's observations.

Pure functions only: nothing here sleeps, touches the network or decides a culprit.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from wsdoctor.observations import ConnectionRecord, HandshakeFailure, PathResult

PEER_CLOSES = ("close_frame", "eof", "reset")


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


def idle_drop(path: PathResult) -> IdleDrop | None:
    """When idle connections were ended, and how.

    Connections closed by the peer while fully idle time the drop exactly. Failing that,
    rungs whose ping went unanswered (silence, or a RST only once data was sent) bound it
    between the longest answered rung and the shortest failed one.
    """
    records = _idle_connections(path)
    answered = _answered_rungs(records)
    closed = [c for c in records if c.ending.kind in PEER_CLOSES and not _pinged(c)]
    if closed:
        idles = sorted(c.ending.idle_s for c in closed)
        first = idles[0]
        agreeing = [v for v in idles if v - first <= tolerance(first)]
        kinds = [c.ending.kind for c in closed if c.ending.idle_s in agreeing]
        how = max(set(kinds), key=kinds.count)
        return IdleDrop(
            idle_s=round(statistics.median(agreeing), 3),
            low_s=round(min(agreeing), 3),
            high_s=round(max(agreeing), 3),
            how=how,
            samples=len(agreeing),
            codes=sorted({c.ending.code for c in closed if c.ending.code is not None}),
            reasons=sorted({c.ending.reason for c in closed if c.ending.reason}),
            survived_rungs=[r for r in answered if r < first],
        )
    failed = [
        c
        for c in records
        if c.role == "rung"
        and c.planned_idle_s is not None
        and _pinged(c)
        and c.planned_idle_s not in answered
        and c.ending.kind != "open"
    ]
    if not failed:
        return None
    high = min(c.planned_idle_s or 0.0 for c in failed)
    below = [r for r in answered if r < high]
    low = below[-1] if below else 0.0
    resets = [c for c in failed if c.ending.kind in PEER_CLOSES]
    return IdleDrop(
        idle_s=round((low + high) / 2, 3),
        low_s=low,
        high_s=high,
        how="silent",
        samples=len(failed),
        survived_rungs=below,
        reset_on_send=bool(resets),
    )


def keeper_fates(path: PathResult, drop: IdleDrop) -> list[KeeperFate]:
    """Heartbeat and traffic connections that beat faster than the drop, and their fates."""
    stage = path.stage("heartbeat")
    if stage is None:
        return []
    fates = []
    for c in stage.connections:
        if not c.handshake.ok or c.interval_s is None or c.interval_s >= drop.low_s:
            continue
        ended_by_peer = c.ending.kind in PEER_CLOSES or c.ending.kind == "silent"
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


def max_loop_lag_ms(path: PathResult) -> float:
    """The worst wake-up delay of the probe's own event loop over every stage."""
    return max((s.loop_lag.max_ms for s in path.stages if s.loop_lag), default=0.0)


def idle_survived_s(path: PathResult) -> float | None:
    """The longest idle period an idle connection was seen to survive."""
    answered = _answered_rungs(_idle_connections(path))
    return answered[-1] if answered else None


def unexpected_drops(path: PathResult, drop: IdleDrop | None) -> list[ConnectionRecord]:
    """Connections ended by the peer that the idle drop does not explain."""
    odd = []
    for stage in path.stages:
        for c in stage.connections:
            if c.ending.kind not in PEER_CLOSES and c.ending.kind != "silent":
                continue
            if c.role in ("sentinel", "rung") and drop is not None:
                continue
            if drop is not None and abs(c.ending.age_s - drop.idle_s) <= tolerance(drop.high_s) + (
                c.interval_s or 0
            ):
                continue
            odd.append(c)
    return odd


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
