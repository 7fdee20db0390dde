"""Derived facts: the figures rules reason about, computed from one path's observations.

Pure functions only: nothing here sleeps, touches the network or decides a culprit.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from wsdoctor.diagnosis.clusters import (
    MIN_CLUSTER_SAMPLES,
    Clock,
    DropCluster,
    DropSample,
    cluster_drops,
)
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
    """Idle connections ended at about ``idle_s`` seconds: one cluster, or a silent bound.

    For a cluster of closes ``idle_s`` is its earliest member (what a heartbeat must beat) on
    its ``clock``; for a silent drop it is the middle of the bracket.
    """

    idle_s: float
    low_s: float
    high_s: float
    how: str  # "close_frame", "eof", "reset" or "silent"
    samples: int
    codes: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    survived_rungs: list[float] = field(default_factory=list)
    reset_on_send: bool = False
    clock: Clock = "idle"
    ended_by: dict[str, int] = field(default_factory=dict)
    member_ids: list[str] = field(default_factory=list)
    founders: int = 0  # members that were idle-stage connections (not heartbeat or traffic)

    @property
    def spread_s(self) -> float:
        """How far apart the earliest and the latest member ended."""
        return round(self.high_s - self.low_s, 3)

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


def _keeper_connections(path: PathResult) -> list[ConnectionRecord]:
    stage = path.stage("heartbeat")
    return [c for c in stage.connections if c.handshake.ok] if stage else []


def _answered_rungs(records: list[ConnectionRecord]) -> list[float]:
    return sorted(
        c.planned_idle_s
        for c in records
        if c.role == "rung"
        and c.planned_idle_s is not None
        and any(e.kind == "pong_received" for e in c.events)
    )


def _unanswered_ping(record: ConnectionRecord) -> bool:
    """The probe's last ping got no pong before the connection ended."""
    last_ping = max((e.t for e in record.events if e.kind == "ping_sent"), default=None)
    if last_ping is None:
        return False
    return not any(e.kind == "pong_received" and e.t >= last_ping for e in record.events)


def _idle_before_last_ping(record: ConnectionRecord) -> float:
    """How long the connection had been quiet when it sent its last ping."""
    pings = [e.t for e in record.events if e.kind == "ping_sent"]
    last = max(pings)
    before = [e.t for e in record.events if e.t < last]
    return round(last - max(before, default=0.0), 4)


def _drop_sample(record: ConnectionRecord) -> DropSample | None:
    """A connection the far side ended on its own.

    A connection whose ping got a FIN instead of a pong crossed a closing timer: its idle age is
    the one before the ping. Any other end after an unanswered ping belongs to a silent drop.
    """
    if not closed_by_peer(record) or record.ending.age_s < IMMEDIATE_CLOSE_S:
        return None
    idle_s = record.ending.idle_s
    if _unanswered_ping(record):
        if record.ending.kind != "eof":
            return None
        idle_s = _idle_before_last_ping(record)
    return DropSample(
        id=record.id,
        how=record.ending.kind,
        idle_s=idle_s,
        age_s=record.ending.age_s,
        at_s=round(record.opened_at + record.ending.age_s, 4),
        keeper=record.role in ("heartbeat", "traffic"),
        code=record.ending.code,
        reason=record.ending.reason,
    )


def _failed_rungs(records: list[ConnectionRecord], answered: list[float]) -> list[ConnectionRecord]:
    """Rungs whose one ping went unanswered (silence, or a RST once data was sent)."""
    return sorted(
        (
            c
            for c in records
            if c.role == "rung"
            and c.planned_idle_s is not None
            and _unanswered_ping(c)
            and c.planned_idle_s not in answered
            and c.ending.kind not in ("open", "eof")
        ),
        key=lambda c: c.planned_idle_s or 0.0,
    )


def _silent_drop(failed: list[ConnectionRecord], answered: list[float]) -> IdleDrop | None:
    """The shortest unanswered rung, bracketed by the longest answered rung below it.

    A longer rung that still answered does not refute it (it may have met another node of a
    fleet); one unanswered rung alone is no timer: at least two are needed.
    """
    if len(failed) < MIN_CLUSTER_SAMPLES:
        return None
    high = failed[0].planned_idle_s or 0.0
    below = [r for r in answered if r < high]
    low = below[-1] if below else 0.0
    return IdleDrop(
        idle_s=round((low + high) / 2, 3),
        low_s=low,
        high_s=high,
        how="silent",
        samples=len(failed),
        survived_rungs=below,
        reset_on_send=any(closed_by_peer(c) for c in failed),
        member_ids=[c.id for c in failed],
        founders=len(failed),
    )


def _closing_drop(cluster: DropCluster, answered: list[float]) -> IdleDrop:
    members = cluster.members
    return IdleDrop(
        idle_s=round(cluster.low_s, 3),
        low_s=round(cluster.low_s, 3),
        high_s=round(cluster.high_s, 3),
        how=cluster.how,
        samples=cluster.samples,
        codes=sorted({m.code for m in members if m.code is not None}),
        reasons=sorted({m.reason for m in members if m.reason}),
        survived_rungs=[r for r in answered if r < cluster.low_s],
        clock=cluster.clock,
        ended_by=cluster.ended_by,
        member_ids=[m.id for m in members],
        founders=cluster.founders,
    )


def _seen_idle_s(record: ConnectionRecord) -> float:
    """The longest idle period a connection that was not dropped is known to have lived."""
    planned = record.planned_idle_s if record.role == "rung" else None
    answered = planned if any(e.kind == "pong_received" for e in record.events) else None
    open_idle = record.ending.idle_s if record.ending.kind == "open" else None
    return max((v for v in (answered, open_idle) if v is not None), default=0.0)


@dataclass
class IdleAnalysis:
    """Every idle connection of one path as a sample: clusters of drops, and survivors."""

    drops: list[IdleDrop]  # repeatable clusters and the silent bound, shortest first
    unplaced: list[DropSample]  # drops of idle connections that belong to no cluster
    lone_silent: list[ConnectionRecord]  # one unanswered rung, too few to bound a timer
    survivors: list[float]  # idle reached by idle connections never dropped, longest first

    @property
    def binding(self) -> IdleDrop | None:
        """The shortest repeatable drop: what every heartbeat must beat."""
        return self.drops[0] if self.drops else None

    def outlived_all(self) -> list[float]:
        """Survivors idle longer than every drop: nodes with no (or a longer) timeout."""
        last = max((d.high_s for d in self.drops), default=0.0)
        return [s for s in self.survivors if s > last + tolerance(last)]

    def share(self, drop: IdleDrop) -> float:
        """The fraction of idle connections whose fate is known that ended in ``drop``.

        Known: every dropped connection, and every one that outlived the shortest drop (it met
        a longer timer, or none); those still quieter than that when the stage ended are not.
        """
        binding = self.binding
        if binding is None:
            return 0.0
        past = binding.high_s + tolerance(binding.high_s)
        known = sum(d.founders for d in self.drops) + len(self.unplaced)
        known += len(self.lone_silent) + sum(1 for s in self.survivors if s > past)
        return round(drop.founders / known, 3) if known else 0.0

    def cut_idle(self) -> bool:
        """Some peer cut an idle connection (close, FIN, RST, or pings unanswered)."""
        return bool(self.drops or self.unplaced or self.lone_silent)


def idle_analysis(path: PathResult) -> IdleAnalysis:
    """Cluster the drops of the idle stage (joined by heartbeat and traffic connections).

    Connections closed by the peer time a drop exactly, on their idle and age clocks; rungs
    whose ping went unanswered bound a silent drop from above.
    """
    records = _idle_connections(path)
    answered = _answered_rungs(records)
    samples = [s for c in [*records, *_keeper_connections(path)] if (s := _drop_sample(c))]
    clusters, left = cluster_drops(samples)
    drops = [_closing_drop(c, answered) for c in clusters]
    failed = _failed_rungs(records, answered)
    silent = _silent_drop(failed, answered)
    if silent is not None:
        drops.append(silent)
    dropped = {s.id for s in samples} | {c.id for c in failed}
    survivors = sorted((_seen_idle_s(c) for c in records if c.id not in dropped), reverse=True)
    return IdleAnalysis(
        drops=sorted(drops, key=lambda d: d.idle_s),
        unplaced=[s for s in left if not s.keeper],
        lone_silent=failed if silent is None else [],
        survivors=survivors,
    )


def idle_drop(path: PathResult) -> IdleDrop | None:
    """The shortest repeatable idle drop on the path, or None (see ``idle_analysis``)."""
    return idle_analysis(path).binding


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


def _explained_ids(path: PathResult) -> set[str]:
    """Connections whose end the idle analysis accounts for: members of a drop, lone drops of
    idle connections beyond the shortest drop (a longer timer seen once), and a single lone
    drop with no cluster at all (too little to call either a timer or instability)."""
    analysis = idle_analysis(path)
    ids = {i for d in analysis.drops for i in d.member_ids}
    binding = analysis.binding
    if binding is not None:
        ids |= {s.id for s in analysis.unplaced if s.idle_s >= binding.low_s}
        crossed = binding.low_s - tolerance(binding.low_s)  # a ping that met the close
        ids |= {c.id for c in analysis.lone_silent if (c.planned_idle_s or 0.0) >= crossed}
    elif len(analysis.unplaced) + len(analysis.lone_silent) == 1:
        ids |= {s.id for s in analysis.unplaced} | {c.id for c in analysis.lone_silent}
    silent = next((d for d in analysis.drops if d.how == "silent"), None)
    if silent is not None:  # keepers that beat slower than a black hole's timeout meet it too
        ids |= {
            c.id
            for c in _keeper_connections(path)
            if (c.ending.kind == "silent" or _unanswered_ping(c))
            and (c.interval_s or 0.0) >= silent.low_s
        }
    return ids


def _idle_or_keeper(record: ConnectionRecord, path: PathResult) -> bool:
    return any(
        record in stage.connections for stage in path.stages if stage.name in ("idle", "heartbeat")
    )


def unexpected_drops(path: PathResult) -> list[ConnectionRecord]:
    """Connections lost to FIN, RST or silence that no idle drop explains.

    Close frames are left out: a server that says why it closes is not an unstable network.
    """
    explained = _explained_ids(path)
    return [
        c
        for stage in path.stages
        for c in stage.connections
        if c.ending.kind in ("eof", "reset", "silent")
        and c.ending.age_s >= IMMEDIATE_CLOSE_S
        and not (c.id in explained and _idle_or_keeper(c, path))
    ]


def server_closes(path: PathResult) -> list[ConnectionRecord]:
    """Connections the server closed with a close frame that no idle drop explains."""
    explained = _explained_ids(path)
    return [
        c
        for stage in path.stages
        for c in stage.connections
        if c.ending.kind == "close_frame"
        and c.ending.initiator != "client"
        and c.ending.age_s >= IMMEDIATE_CLOSE_S
        and not (c.id in explained and _idle_or_keeper(c, path))
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
