"""The idle and heartbeat stages, run at once so a timeout T is found in about T seconds.

Sentinels stay fully idle and time any close exactly. Rungs stay idle until their own idle
time, then ping once: the first unanswered rung bounds a silent drop; an answered rung goes
quiet again, so it times a close once more on a fresh idle clock (its idle age and its age now
disagree, which tells an idle timeout from a lifetime cap). Heartbeat connections ping at 1,
2, 4 ... s and a traffic connection sends application messages: if they outlive the drop, it
was an idle timeout; if they die at the same age, it was a lifetime cap.

Every idle connection is a sample, and one address may hide several timers (a fleet of nodes,
worker processes): the stage stops once the evidence is complete, not at ``max_idle``, and it
is complete only when no idle connection has outlived every drop seen so far (such a survivor
is watched until it drops too, or reaches ``max_idle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed

from wsdoctor.observations import ConnectionRecord, ConnectionRole, StageResult
from wsdoctor.plan import PathSpec, Plan
from wsdoctor.probes.basic import failed_record
from wsdoctor.probes.connection import HandshakeError, ProbeConnection, open_probe_connection
from wsdoctor.probes.looplag import LoopLagMonitor
from wsdoctor.status import PathStatus

OPEN_CONCURRENCY = 8
CONTROL_TICK_S = 0.05
TRAFFIC_INTERVAL_S = 1.0
SURVIVAL_MARGIN = 1.1
SURVIVAL_EXTRA_S = 1.0
ORPHAN_DRAIN_LIMIT = 10_000
MIN_DROPS = 2
"""Drops needed before the stage may stop early: one alone may be a glitch."""
TICK_S = 1.0
"""Timers checked on a one-second tick spread one timeout over about a second."""
CANCEL_ROUNDS = 10
CANCEL_WAIT_S = 0.5
CLOSE_WAIT_S = 3.0
"""Closing handshakes of the stage's connections get this long before they are cut short."""
OPEN_SLACK_S = 0.5
"""How much later than the stage's start its first idle connections may have opened."""
SETTLE_S = 0.2
"""After a close, wait this long before stopping: its neighbours may be closing too."""


@dataclass
class _Slot:
    record_id: str
    role: ConnectionRole
    planned_idle_s: float | None = None
    interval_s: float | None = None
    probe: ProbeConnection | None = None
    failed: ConnectionRecord | None = None
    rung_answered: bool | None = None


@dataclass
class SharedHorizon:
    """Drops timed on any path, so a path without one can stop once it has outlived them."""

    drops: dict[str, float] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)

    def longest_elsewhere(self, path_name: str) -> float | None:
        """The latest drop seen on the other paths, once every other path has finished."""
        if self.running - {path_name}:
            return None
        others = [t for name, t in self.drops.items() if name != path_name]
        return max(others) if others else None


@dataclass
class _Run:
    path: PathSpec
    plan: Plan
    run_started: float
    ping_timeout_s: float
    traffic_message: str
    status: PathStatus
    horizon: SharedHorizon
    began: float
    slots: list[_Slot] = field(default_factory=list)


def _slots(plan: Plan) -> list[_Slot]:
    slots = [_Slot(f"sentinel-{i + 1}", "sentinel") for i in range(plan.idle.sentinels)]
    slots += [_Slot(f"rung-{r:g}s", "rung", planned_idle_s=r) for r in plan.idle.rungs()]
    slots += [
        _Slot(f"heartbeat-{h:g}s", "heartbeat", interval_s=h)
        for h in plan.idle.heartbeat_intervals()
    ]
    slots.append(_Slot("traffic-1", "traffic", interval_s=TRAFFIC_INTERVAL_S))
    return slots


async def _drain(probe: ProbeConnection) -> None:
    """Read whatever the server sends, so that a close is noticed at once."""
    with contextlib.suppress(ConnectionClosed):
        for _ in range(ORPHAN_DRAIN_LIMIT):
            message = await probe.conn.recv()
            probe.log("message_received", size=len(message))


async def _until_closed(probe: ProbeConnection, delay_s: float) -> bool:
    """Sleep ``delay_s``; return True early if the connection closes meanwhile."""
    if delay_s <= 0:
        return not probe.is_open
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(probe.conn.wait_closed()), delay_s)
    return not probe.is_open


async def _rung(run: _Run, slot: _Slot, probe: ProbeConnection) -> None:
    assert slot.planned_idle_s is not None
    if await _until_closed(probe, slot.planned_idle_s - probe.now()):
        return
    with contextlib.suppress(ConnectionClosed):
        slot.rung_answered = await probe.ping(run.ping_timeout_s) is not None
    if slot.rung_answered:
        await probe.conn.wait_closed()  # quiet again: a sentinel on a fresh idle clock


async def _heartbeat(run: _Run, slot: _Slot, probe: ProbeConnection) -> None:
    assert slot.interval_s is not None
    with contextlib.suppress(ConnectionClosed):
        while probe.is_open:
            if await _until_closed(probe, slot.interval_s - probe.idle_s()):
                return
            if await probe.ping(run.ping_timeout_s) is None:
                return


async def _traffic(run: _Run, slot: _Slot, probe: ProbeConnection) -> None:
    assert slot.interval_s is not None
    with contextlib.suppress(ConnectionClosed):
        while probe.is_open:
            await probe.send(run.traffic_message)
            if await _until_closed(probe, slot.interval_s):
                return


async def _sentinel(run: _Run, slot: _Slot, probe: ProbeConnection) -> None:
    await probe.conn.wait_closed()


_BEHAVIOUR: dict[str, Callable[[_Run, _Slot, ProbeConnection], Awaitable[None]]] = {
    "sentinel": _sentinel,
    "rung": _rung,
    "heartbeat": _heartbeat,
    "traffic": _traffic,
}


async def _open_and_run(run: _Run, slot: _Slot, gate: asyncio.Semaphore) -> None:
    async with gate:
        opened_at = time.monotonic() - run.run_started
        try:
            slot.probe = await open_probe_connection(
                run.path, run.plan.connect, slot.record_id, slot.role, run.run_started
            )
        except HandshakeError as error:
            slot.failed = failed_record(slot.record_id, error, opened_at)
            return
    probe = slot.probe
    probe.planned_idle_s = slot.planned_idle_s
    probe.interval_s = slot.interval_s
    run.status.open_connections += 1
    drain = asyncio.create_task(_drain(probe))
    try:
        await _BEHAVIOUR[slot.role](run, slot, probe)
    finally:
        drain.cancel()
        run.status.open_connections -= 1
    if not probe.closed_locally and not probe.is_open:
        run.status.drops += 1


def _idle_slots(run: _Run) -> list[tuple[_Slot, ProbeConnection]]:
    return [
        (slot, slot.probe)
        for slot in run.slots
        if slot.probe is not None and slot.role in ("sentinel", "rung")
    ]


@dataclass
class _Drops:
    """What the idle connections have shown so far."""

    close_ages: list[float] = field(default_factory=list)  # age at each close
    close_idles: list[float] = field(default_factory=list)  # idle age at each close
    silent: list[float] = field(default_factory=list)  # idle of each unanswered rung
    last_loss: float | None = None  # monotonic time of the latest close on any connection

    @property
    def count(self) -> int:
        """Drops of every kind."""
        return len(self.close_ages) + len(self.silent)

    @property
    def first_s(self) -> float:
        """The earliest drop: closes by age (sentinels time it; rungs that pinged reset only
        their idle clock), silence by the unanswered rung's idle."""
        return min(self.close_ages + self.silent)

    @property
    def last_s(self) -> float:
        """The longest idle at which something dropped."""
        return max(self.close_idles + self.silent)


def _drops(run: _Run) -> _Drops:
    drops = _Drops()
    for slot, probe in _idle_slots(run):
        if slot.rung_answered is False and slot.planned_idle_s is not None:
            drops.silent.append(slot.planned_idle_s)
        elif not probe.is_open and not probe.closed_locally:
            ending = probe.ending()
            drops.close_ages.append(ending.age_s)
            drops.close_idles.append(ending.idle_s)
    losses = [s.probe.conn.lost_at for s in run.slots if s.probe and s.probe.conn.lost_at]
    drops.last_loss = max(losses, default=None)
    return drops


def _survivors(run: _Run, drops: _Drops, waited_s: float) -> bool:
    """Some idle connection may outlive every close seen so far (a node with a longer timer).

    Until the longest-idle connections have had the time to outlive the latest close, the
    answer is yes; after that, any of them still open is a survivor to watch. Silence shows
    only to a ping, so only closes have survivors to watch.
    """
    if not drops.close_idles:
        return False
    longest = max(drops.close_idles)
    beyond = longest + max(TICK_S, 0.05 * longest)
    if waited_s < beyond + OPEN_SLACK_S:
        return True
    return any(probe.is_open and probe.idle_s() > beyond for _, probe in _idle_slots(run))


def _survival_age(drop_s: float) -> float:
    return drop_s * SURVIVAL_MARGIN + SURVIVAL_EXTRA_S


def _rungs_resolved(run: _Run, up_to_s: float) -> bool:
    return all(
        s.failed or s.rung_answered is not None or (s.probe and not s.probe.is_open)
        for s in run.slots
        if s.role == "rung" and (s.planned_idle_s or 0.0) <= up_to_s
    )


def _decided(run: _Run) -> bool:
    """True once the evidence is in.

    Without a drop: every rung has had its turn, or every other path has finished and this one
    has outlived their drops. With drops: at least two are timed here and no idle connection
    has outlived every drop (or every rung has had its turn, or the stage reached
    ``max_idle``), and the heartbeat and traffic connections have outlived the shortest drop.
    """
    drops = _drops(run)
    now = time.monotonic()
    waited = now - run.began
    if not drops.count:
        if _rungs_resolved(run, float("inf")):
            return True
        elsewhere = run.horizon.longest_elsewhere(run.path.name)
        if elsewhere is None:
            return False
        horizon = _survival_age(elsewhere)
        return waited >= horizon + run.ping_timeout_s and _rungs_resolved(run, horizon)
    run.horizon.drops[run.path.name] = drops.last_s
    if drops.last_loss is not None and now - drops.last_loss < SETTLE_S:
        return False  # closes that fire together arrive over a few milliseconds
    complete = waited >= run.plan.idle.max_idle_s
    waiting = drops.count < MIN_DROPS or _survivors(run, drops, waited)
    if waiting and not complete and not _rungs_resolved(run, float("inf")):
        return False
    if not _rungs_resolved(run, drops.first_s - 1e-3):
        return False
    survive_until = _survival_age(drops.first_s)
    keepers = [s.probe for s in run.slots if s.role in ("heartbeat", "traffic") and s.probe]
    return all(not p.is_open or p.now() >= survive_until for p in keepers)


async def idle_stages(
    path: PathSpec,
    plan: Plan,
    run_started: float,
    ping_timeout_s: float,
    traffic_message: str,
    status: PathStatus,
    horizon: SharedHorizon,
    sink: list[StageResult],
) -> None:
    """Run sentinels, rungs, heartbeats and traffic at once until the evidence decides.

    Appends the idle and heartbeat stage results to ``sink``, even when interrupted.
    """
    began = time.monotonic()
    run = _Run(
        path,
        plan,
        run_started,
        ping_timeout_s,
        traffic_message,
        status,
        horizon,
        began,
        _slots(plan),
    )
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    horizon.running.add(path.name)
    hard_stop = began + plan.idle.max_idle_s + ping_timeout_s + plan.connect.open_timeout_s
    interrupted = False
    async with LoopLagMonitor() as lag:
        tasks = [asyncio.create_task(_open_and_run(run, slot, gate)) for slot in run.slots]
        try:
            while not all(t.done() for t in tasks) and time.monotonic() < hard_stop:
                if _decided(run):
                    break
                await asyncio.sleep(CONTROL_TICK_S)
        except asyncio.CancelledError:
            interrupted = True
            raise
        finally:
            # Record first, without awaiting: a second Ctrl-C must not lose the evidence.
            stage_end = time.monotonic()
            horizon.running.discard(path.name)
            records = _freeze(run, stage_end)
            sink.extend(_results(run, records, began, stage_end, lag, interrupted))
            await _cancel_all(tasks)
            closes = [
                asyncio.ensure_future(s.probe.close()) for s in run.slots if s.probe is not None
            ]
            await _cancel_all(closes, first_wait_s=CLOSE_WAIT_S)


async def _cancel_all(tasks: Sequence[asyncio.Future[Any]], first_wait_s: float = 0.0) -> None:
    """Wait ``first_wait_s`` for ``tasks``, then cancel them until they are all done.

    Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives together with
    its result, so one cancel is not always enough; every round is bounded.
    """
    pending = {t for t in tasks if not t.done()}
    if pending and first_wait_s > 0:
        _, pending = await asyncio.wait(pending, timeout=first_wait_s)
    for _ in range(CANCEL_ROUNDS):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_WAIT_S)


def _freeze(run: _Run, stage_end: float) -> dict[str, ConnectionRecord]:
    """Every slot's record as it stands at ``stage_end``."""
    records: dict[str, ConnectionRecord] = {}
    for slot in run.slots:
        if slot.failed is not None:
            records[slot.record_id] = slot.failed
        elif slot.probe is not None:
            records[slot.record_id] = slot.probe.record(stage_end)
    return records


def _results(
    run: _Run,
    records: dict[str, ConnectionRecord],
    began: float,
    stage_end: float,
    lag: LoopLagMonitor,
    interrupted: bool,
) -> tuple[StageResult, StageResult]:
    loop_lag = lag.result()

    def stage(name: Literal["idle", "heartbeat"], roles: tuple[str, ...]) -> StageResult:
        ids = [s.record_id for s in run.slots if s.role in roles]
        return StageResult(
            name=name,
            started_at=round(began - run.run_started, 4),
            duration_s=round(stage_end - began, 4),
            connections=[records[i] for i in ids if i in records],
            loop_lag=loop_lag,
            ping_timeout_s=run.ping_timeout_s,
            max_idle_s=run.plan.idle.max_idle_s,
            interrupted=interrupted,
        )

    return stage("idle", ("sentinel", "rung")), stage("heartbeat", ("heartbeat", "traffic"))
