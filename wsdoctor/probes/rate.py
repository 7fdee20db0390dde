"""The rate stage: short bursts of small messages at growing rates, until one is punished.

Each rate gets a fresh connection and one burst (``burst_s`` long, capped in count), then a
protocol ping proves the connection still carries traffic. The stage stops at the first burst
the server ends (a close frame, FIN, RST or silence) or at a handshake it refuses; after a
close, one reconnect shows whether the server now refuses the client (HTTP 429).

As in the size stage, endings live in the steps, not in ``connections``: these closes were
provoked on purpose and say nothing about refusals, restarts or the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from websockets.exceptions import ConnectionClosed

from wsdoctor.observations import StageResult, Step
from wsdoctor.plan import PathSpec, Plan
from wsdoctor.probes.connection import HandshakeError, ProbeConnection, open_probe_connection
from wsdoctor.probes.looplag import LoopLagMonitor
from wsdoctor.probes.size import MessageCounter, refused_step, settle_close

MAX_MESSAGES_PER_BURST = 2000
ECHO_GRACE_S = 0.5  # how long echoes may trail the burst
SETTLE_S = 0.25  # time for a server that does not echo to act on the burst


async def _burst(probe: ProbeConnection, rate: float, count: int) -> int:
    """Send ``count`` small messages evenly at ``rate`` per second; return how many went out."""
    began = time.monotonic()
    sent = 0
    with contextlib.suppress(ConnectionClosed):
        for index in range(count):
            delay = began + index / rate - time.monotonic()
            if delay > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(probe.conn.wait_closed()), delay)
            if not probe.is_open:
                break
            await probe.send(f'{{"type":"wsdoctor-rate","seq":{index}}}')
            sent += 1
    return sent


async def _after_burst(
    probe: ProbeConnection, counter: MessageCounter, sent: int, ping_timeout_s: float, echo: bool
) -> None:
    """Check the connection still answers, and let echoes or a close arrive."""
    with contextlib.suppress(ConnectionClosed):
        if probe.is_open and await probe.ping(ping_timeout_s) is not None:
            if echo:
                await counter.wait_for(sent, ECHO_GRACE_S)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(probe.conn.wait_closed()), SETTLE_S)
    if probe.conn.protocol.close_rcvd is not None or probe.conn.lost_at is not None:
        await settle_close(probe)


async def _reconnect_status(path: PathSpec, plan: Plan, run_started: float) -> int | None:
    """The HTTP status of a refused reconnect (429 after a rate close), else None."""
    try:
        probe = await open_probe_connection(path, plan.connect, "rate-retry", "echo", run_started)
    except HandshakeError as error:
        failure = error.handshake.failure
        return failure.status if failure else None
    await probe.close()
    return None


async def _rate_step(
    path: PathSpec,
    plan: Plan,
    run_started: float,
    rate: float,
    ping_timeout_s: float,
    echo: bool,
) -> Step:
    began = time.monotonic()
    try:
        probe = await open_probe_connection(
            path, plan.connect, f"rate-{rate:g}", "traffic", run_started
        )
    except HandshakeError as error:
        return refused_step(rate, error, began)
    count = max(1, min(MAX_MESSAGES_PER_BURST, round(rate * plan.load.burst_s)))
    try:
        async with MessageCounter(probe) as counter:
            burst_began = time.monotonic()
            sent = await _burst(probe, rate, count)
            burst_s = time.monotonic() - burst_began
            await _after_burst(probe, counter, sent, ping_timeout_s, echo)
            answered = counter.count
    finally:
        ok = probe.is_open
        ending = None if ok else probe.ending()
        await probe.close()
    status = None if ok else await _reconnect_status(path, plan, run_started)
    return Step(
        value=rate,
        ok=ok,
        sent=sent,
        answered=answered,
        failed=0 if ok else 1,
        failures={} if ending is None else {ending.kind: 1},
        ending=ending,
        status=status,
        elapsed_s=round(burst_s, 4),
    )


async def rate_stage(
    path: PathSpec,
    plan: Plan,
    run_started: float,
    ping_timeout_s: float,
    expect_echo: bool,
    sink: list[StageResult],
) -> None:
    """Burst at each planned rate until the server punishes one; append the stage to ``sink``."""
    began = time.monotonic()
    stage = StageResult(
        name="rate",
        started_at=round(began - run_started, 4),
        duration_s=0.0,
        ping_timeout_s=ping_timeout_s,
    )
    async with LoopLagMonitor() as lag:
        try:
            for rate in plan.load.rates:
                step = await _rate_step(path, plan, run_started, rate, ping_timeout_s, expect_echo)
                stage.steps.append(step)
                if not step.ok:
                    break
        except asyncio.CancelledError:
            stage.interrupted = True
            raise
        finally:
            stage.loop_lag = lag.result()
            stage.duration_s = round(time.monotonic() - began, 4)
            sink.append(stage)
