"""`wsdoctor watch`: keep connections open with heartbeats, record every drop, reconnect.

Each watched connection pings at a fixed interval (after its application heartbeat message,
when one is given), notes how and when it ended, waits out a jittered exponential backoff and
opens again. Failed handshakes count as attempts and back off too, so there is never a tight
reconnect loop; a connection that stayed up for the stable period (min(the backoff cap, 5 s),
see ``wsdoctor.backoff``) was no failure, and the wait after its drop starts over from the base.
Facts only: which culprit a drop points to is for ``wsdoctor.diagnosis``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.exceptions import ConnectionClosed

from wsdoctor.backoff import Backoff
from wsdoctor.fingerprints import recognise
from wsdoctor.observations import (
    Disconnect,
    Ending,
    HandshakeFailure,
    Observations,
    PathResult,
    WatchLog,
    to_dict,
)
from wsdoctor.plan import WatchPlan
from wsdoctor.probes.connection import (
    CLOSE_TIMEOUT_S,
    HandshakeError,
    ProbeConnection,
    open_probe_connection,
)
from wsdoctor.probes.looplag import LoopLagMonitor
from wsdoctor.redact import redact_url
from wsdoctor.stats import rtt_stats
from wsdoctor.status import SlotStatus, WatchStatus

MAX_RTT_SAMPLES = 100_000

Emit = Callable[[dict[str, Any]], None]


@dataclass
class _Shared:
    plan: WatchPlan
    log: WatchLog
    path: PathResult
    status: WatchStatus
    emit: Emit
    rng: random.Random
    started: float
    rtts_ms: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_RTT_SAMPLES))
    lost: int = 0

    def at(self, when: float | None = None) -> float:
        """Seconds since the watch started, rounded for the record."""
        return round((time.monotonic() if when is None else when) - self.started, 4)

    def event(self, kind: str, connection: int, **fields: Any) -> None:
        self.emit({"event": kind, "t": self.at(), "connection": connection, **fields})


class _Slot:
    """One watched connection, through every reconnect."""

    def __init__(self, index: int, shared: _Shared) -> None:
        self.index = index
        self.shared = shared
        self.status = shared.status.slots[index]
        self.backoff = Backoff(shared.plan.backoff, shared.rng)
        self.probe: ProbeConnection | None = None
        self.opened = 0
        self.outage: Disconnect | None = None
        self.outage_began = 0.0

    async def run(self) -> None:
        """Connect, keep alive, record the drop, back off, and again, until cancelled."""
        await asyncio.sleep(self.index * self.shared.plan.stagger_s)
        try:
            while True:
                if await self._connect():
                    await self._keep_alive()
                await self._back_off()
        finally:
            self.status.state = "stopped"
            if self.probe is not None:
                await self.probe.close()

    async def _connect(self) -> bool:
        shared = self.shared
        self.status.state = "connecting"
        self.opened += 1
        if self.outage is not None:
            self.outage.reconnect_attempts += 1
        record_id = f"watch-{self.index}-{self.opened}"
        try:
            probe = await open_probe_connection(
                shared.plan.path, shared.plan.connect, record_id, "heartbeat", shared.started
            )
        except HandshakeError as error:
            self._handshake_failed(error.handshake.failure)
            return False
        except (TimeoutError, OSError) as error:
            self._handshake_failed(HandshakeFailure("other", f"{type(error).__name__}: {error}"))
            return False
        self.probe = probe
        probe.interval_s = shared.plan.interval_s
        now = time.monotonic()
        self.status.state = "up"
        self.status.up_since = now
        if not shared.path.fingerprints:
            shared.path.fingerprints = recognise(probe.handshake.headers, "upgrade")
        if self.outage is not None:
            shared.log.reconnect_times_s.append(round(now - self.outage_began, 4))
            shared.status.reconnects += 1
            self.outage = None
        shared.event("connect", self.index, handshake=to_dict(probe.handshake))
        return True

    def _handshake_failed(self, failure: HandshakeFailure | None) -> None:
        """Record the failure on the outage (opened here when the watch starts with one), then
        tell: the event names the outage's index in the log when it opened one."""
        shared = self.shared
        opened: dict[str, int] = {}
        if self.outage is None:  # never up yet: the watch starts with an outage
            now = time.monotonic()
            self.outage = Disconnect(
                at_s=shared.at(now),
                connection=self.index,
                ending=Ending(
                    kind="handshake_failed",
                    age_s=0.0,
                    idle_s=0.0,
                    detail=failure.reason if failure else None,
                ),
            )
            self.outage_began = now
            shared.log.disconnects.append(self.outage)
            opened["index"] = len(shared.log.disconnects) - 1
        self.outage.failure = failure
        shared.event("handshake_failed", self.index, failure=to_dict(failure), **opened)

    async def _keep_alive(self) -> None:
        """Beat until the connection ends; then record how it ended."""
        probe = self.probe
        assert probe is not None
        drain = asyncio.create_task(_drain(probe))
        closed = asyncio.create_task(probe.conn.wait_closed())
        try:
            with contextlib.suppress(ConnectionClosed):
                await self._beat(probe, closed)
            if probe.silent_at is not None:
                await probe.close()  # aborts: nothing more will come
            else:
                await asyncio.wait({closed}, timeout=CLOSE_TIMEOUT_S)
        finally:
            for task in (drain, closed):
                task.cancel()
            await asyncio.gather(drain, closed, return_exceptions=True)
        self._dropped(probe, probe.ending())

    async def _beat(self, probe: ProbeConnection, closed: asyncio.Task[None]) -> None:
        shared = self.shared
        plan = shared.plan
        next_beat = time.monotonic() + plan.interval_s
        while probe.is_open:
            delay = next_beat - time.monotonic()
            if delay > 0:
                await asyncio.wait({closed}, timeout=delay)
            if not probe.is_open:
                return
            next_beat = time.monotonic() + plan.interval_s
            if plan.heartbeat_message is not None:
                await probe.send(plan.heartbeat_message)
            rtt_ms = await probe.ping(plan.ping_timeout_s)
            probe.events.clear()  # a watch keeps figures, not every event of a long life
            if rtt_ms is None:
                shared.lost += 1
                return
            rtt_ms = round(rtt_ms, 3)
            shared.rtts_ms.append(rtt_ms)
            shared.status.recent_rtts_ms.append(rtt_ms)
            self.status.last_rtt_ms = rtt_ms
            shared.event("rtt", self.index, rtt_ms=rtt_ms)

    def _dropped(self, probe: ProbeConnection, ending: Ending) -> None:
        shared = self.shared
        ended_at = probe.established_at + ending.age_s
        up_s = max(0.0, ended_at - probe.established_at)
        shared.log.up_s = round(shared.log.up_s + up_s, 4)
        self.probe = None
        self.status.up_since = None
        self.status.last_rtt_ms = None
        self.outage = Disconnect(at_s=shared.at(ended_at), connection=self.index, ending=ending)
        self.outage_began = ended_at
        shared.log.disconnects.append(self.outage)
        self.backoff.dropped_after(up_s)
        shared.event(
            "disconnect",
            self.index,
            index=len(shared.log.disconnects) - 1,
            ending=to_dict(ending),
        )

    async def _back_off(self) -> None:
        delay, ceiling = self.backoff.next_delay()
        assert self.outage is not None
        if self.outage.reconnect_delay_s is None:
            self.outage.reconnect_delay_s = round(delay, 4)
        self.status.state = "waiting"
        self.shared.event(
            "reconnect_attempt",
            self.index,
            attempt=self.backoff.failures,
            delay_s=round(delay, 4),
            ceiling_s=round(ceiling, 4),
        )
        await asyncio.sleep(delay)

    def close_uptime(self, ended: float) -> None:
        """Count the time this connection has been up, at the end of the watch."""
        if self.probe is not None and self.status.up_since is not None:
            up_s = ended - self.status.up_since
            self.shared.log.up_s = round(self.shared.log.up_s + up_s, 4)
            self.status.up_since = None


async def _drain(probe: ProbeConnection) -> None:
    """Read whatever the server sends (answers to heartbeat messages too) until it closes.

    Reading keeps the connection flowing: unread messages would pause the transport, and
    then the pongs behind them, which would look like silence.
    """
    with contextlib.suppress(ConnectionClosed):
        async for _ in probe.conn:
            pass


async def run_watch(
    plan: WatchPlan,
    observations: Observations,
    status: WatchStatus,
    emit: Emit,
    rng: random.Random | None = None,
) -> None:
    """Watch ``plan.connections`` connections until ``plan.duration_s`` or cancellation.

    ``observations.watch`` fills in as drops happen, so that displays can read it live; when
    the watch ends (or is cancelled) its totals are completed and every connection closed.
    """
    observations.started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = status.started = time.monotonic()
    status.slots = [SlotStatus() for _ in range(plan.connections)]
    path = PathResult(
        name="via-proxy" if plan.path.proxy else "direct",
        url=redact_url(plan.path.url),
        proxy=redact_url(plan.path.proxy) if plan.path.proxy else None,
    )
    observations.paths = [path]
    log = observations.watch = WatchLog(duration_s=0.0, connections=plan.connections, up_s=0.0)
    shared = _Shared(plan, log, path, status, emit, rng or random.Random(), started)
    slots = [_Slot(i, shared) for i in range(plan.connections)]
    async with LoopLagMonitor() as lag:
        tasks = [asyncio.create_task(slot.run()) for slot in slots]
        try:
            await asyncio.wait(tasks, timeout=plan.duration_s, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            ended = time.monotonic()
            for slot in slots:
                slot.close_uptime(ended)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.loop_lag = lag.result()
            log.duration_s = observations.duration_s = round(ended - started, 3)
            log.rtt = rtt_stats("protocol", list(shared.rtts_ms), shared.lost)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
