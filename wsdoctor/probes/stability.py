"""The stability stage: protocol pings at a steady cadence, to see stalls, losses and drops.

Pings go out every ``interval_s`` whether or not earlier pongs came back, so a stall shows as
a pause in received bytes followed by a bunch of late pongs, and every round trip is recorded
(``pong_received`` events with ``rtt_ms``). A pong later than the ping timeout counts as lost;
a connection that receives nothing for several ping timeouts is declared silent. A dropped
connection is replaced (a few times at most) so that sampling goes on until the stage's end.
The stage only pings, so it runs beside the idle stage without disturbing it, and its loop-lag
figure lets the rules tell the probe's own stalls from the network's.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import time
from dataclasses import dataclass, field
from typing import cast

from websockets.exceptions import ConnectionClosed

from wsdoctor.observations import ConnectionRecord, StageResult
from wsdoctor.plan import PathSpec, Plan
from wsdoctor.probes.basic import failed_record
from wsdoctor.probes.connection import HandshakeError, ProbeConnection, open_probe_connection
from wsdoctor.probes.looplag import LoopLagMonitor
from wsdoctor.probes.size import MessageCounter
from wsdoctor.stats import rtt_stats
from wsdoctor.status import PathStatus

MAX_CONNECTIONS = 5
SILENCE_TIMEOUTS = 3  # nothing received for this many ping timeouts: the connection is dead


@dataclass
class _Sampler:
    """The pings of one connection: which are still waiting, and what came back."""

    probe: ProbeConnection
    ping_timeout_s: float
    outstanding: dict[int, float] = field(default_factory=dict)  # ping number -> sent at
    sent_times: list[float] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    lost: int = 0
    last_waiter: asyncio.Future[float] | None = None

    async def ping(self) -> None:
        """Send one ping without waiting for its pong."""
        number = len(self.sent_times)
        sent_at = time.monotonic()
        waiter = cast("asyncio.Future[float]", await self.probe.conn.ping())
        self.probe.conn.mark_sent()
        self.probe.log("ping_sent")
        self.outstanding[number] = sent_at
        self.sent_times.append(sent_at)
        waiter.add_done_callback(functools.partial(self._answered, number))
        self.last_waiter = waiter

    def _answered(self, number: int, waiter: asyncio.Future[float]) -> None:
        if waiter.cancelled() or waiter.exception() is not None:
            return
        if self.outstanding.pop(number, None) is None:
            return  # already counted as lost
        rtt_ms = waiter.result() * 1000
        self.samples.append(rtt_ms)
        self.probe.log("pong_received", rtt_ms=round(rtt_ms, 3))

    def expire(self, everything: bool = False) -> None:
        """Count pings older than the ping timeout (or all still waiting) as lost."""
        cutoff = time.monotonic() - self.ping_timeout_s
        for number, sent_at in list(self.outstanding.items()):
            if everything or sent_at <= cutoff:
                del self.outstanding[number]
                self.lost += 1
                self.probe.log("ping_timeout")

    def finish(self) -> None:
        """Settle the pings still waiting: lost, unless the peer ended the connection."""
        ended_by_peer = self.probe.conn.lost_at is not None and self.probe.silent_at is None
        if ended_by_peer:
            self.outstanding.clear()  # the drop is the fact; its pings are not losses
        self.expire(everything=True)

    def silent_since(self) -> float | None:
        """When the first ping after the last received byte went out, once nothing has
        arrived for ``SILENCE_TIMEOUTS`` ping timeouts; else None."""
        last_rx = self.probe.conn.last_rx
        if time.monotonic() - last_rx < SILENCE_TIMEOUTS * self.ping_timeout_s:
            return None
        index = bisect.bisect_right(self.sent_times, last_rx)
        return self.sent_times[index] if index < len(self.sent_times) else None


async def _sleep_unless_closed(probe: ProbeConnection, delay_s: float) -> None:
    if delay_s > 0:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(probe.conn.wait_closed()), delay_s)


async def _ping_steadily(
    probe: ProbeConnection, deadline: float, interval_s: float, ping_timeout_s: float
) -> _Sampler:
    """Ping every ``interval_s`` until ``deadline`` or until the connection ends."""
    sampler = _Sampler(probe, ping_timeout_s)
    next_at = time.monotonic()
    with contextlib.suppress(ConnectionClosed):
        while probe.is_open and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_at:
                await sampler.ping()
                next_at = max(next_at + interval_s, now)
            sampler.expire()
            probe.silent_at = sampler.silent_since()
            if probe.silent_at is not None:
                break
            await _sleep_unless_closed(probe, min(next_at, deadline) - time.monotonic())
        if probe.is_open and sampler.last_waiter is not None:
            with contextlib.suppress(asyncio.TimeoutError, ConnectionClosed):
                await asyncio.wait_for(asyncio.shield(sampler.last_waiter), ping_timeout_s)
    sampler.finish()
    return sampler


async def stability_stage(
    path: PathSpec,
    plan: Plan,
    run_started: float,
    ping_timeout_s: float,
    status: PathStatus,
    sink: list[StageResult],
) -> None:
    """Ping steadily for ``plan.stability.duration_s``; append the stage to ``sink``."""
    began = time.monotonic()
    deadline = began + plan.stability.duration_s
    interval_s = plan.stability.interval_s
    stage = StageResult(
        name="stability",
        started_at=round(began - run_started, 4),
        duration_s=0.0,
        ping_timeout_s=ping_timeout_s,
    )
    probes: list[ProbeConnection] = []
    failed: ConnectionRecord | None = None
    samples: list[float] = []
    lost = 0
    async with LoopLagMonitor() as lag:
        try:
            for index in range(MAX_CONNECTIONS):
                if time.monotonic() >= deadline:
                    break
                record_id = f"stability-{index + 1}"
                opened_at = time.monotonic() - run_started
                try:
                    probe = await open_probe_connection(
                        path, plan.connect, record_id, "heartbeat", run_started
                    )
                except HandshakeError as error:
                    failed = failed_record(record_id, error, opened_at)
                    break
                probe.interval_s = interval_s
                probes.append(probe)
                status.open_connections += 1
                try:
                    async with MessageCounter(probe):
                        sampler = await _ping_steadily(probe, deadline, interval_s, ping_timeout_s)
                finally:
                    status.open_connections -= 1
                samples += sampler.samples
                lost += sampler.lost
                if probe.is_open:
                    break
                status.drops += 1
        except asyncio.CancelledError:
            stage.interrupted = True
            raise
        finally:
            stage_end = time.monotonic()
            stage.connections = [p.record(stage_end) for p in probes]
            if failed is not None:
                stage.connections.append(failed)
            await asyncio.gather(*(p.close() for p in probes), return_exceptions=True)
            stats = rtt_stats("protocol", samples, lost)
            stage.rtt = [stats] if stats is not None else []
            stage.loop_lag = lag.result()
            stage.duration_s = round(stage_end - began, 4)
            sink.append(stage)
