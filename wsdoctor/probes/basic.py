"""The first two stages: one handshake, then RTT sampling on an echo connection."""

from __future__ import annotations

import asyncio
import time

from websockets.exceptions import ConnectionClosed

from wsdoctor.observations import ConnectionRecord, Ending, StageResult
from wsdoctor.plan import PathSpec, Plan
from wsdoctor.probes.connection import HandshakeError, ProbeConnection, open_probe_connection
from wsdoctor.probes.looplag import LoopLagMonitor
from wsdoctor.stats import rtt_stats

ECHO_PING_TIMEOUT_S = 2.0
REPLY_TIMEOUT_S = 2.0
SAMPLE_GAP_S = 0.05
MAX_LOST_IN_A_ROW = 3


def failed_record(record_id: str, error: HandshakeError, opened_at: float) -> ConnectionRecord:
    """The record of a connection whose opening handshake failed."""
    failure = error.handshake.failure
    return ConnectionRecord(
        id=record_id,
        role="handshake",
        opened_at=round(opened_at, 4),
        handshake=error.handshake,
        ending=Ending(
            kind="handshake_failed",
            age_s=0.0,
            idle_s=0.0,
            detail=failure.reason if failure else None,
        ),
    )


async def handshake_stage(
    path: PathSpec, plan: Plan, run_started: float, sink: list[StageResult]
) -> StageResult:
    """Open one connection and close it: timings, status and headers, or why it failed.

    The stage is appended to ``sink`` at once and filled in as it goes, so that an
    interrupted run still reports it.
    """
    began = time.monotonic()
    stage = StageResult(name="handshake", started_at=round(began - run_started, 4), duration_s=0.0)
    sink.append(stage)
    probe = None
    async with LoopLagMonitor() as lag:
        try:
            probe = await open_probe_connection(
                path, plan.connect, "handshake-1", "handshake", run_started
            )
        except HandshakeError as error:
            stage.connections.append(failed_record("handshake-1", error, began - run_started))
        except asyncio.CancelledError:
            stage.interrupted = True
            raise
        finally:
            if probe is not None:
                await _close_and_record(probe, stage)
            stage.loop_lag = lag.result()
            stage.duration_s = round(time.monotonic() - began, 4)
    return stage


async def _close_and_record(probe: ProbeConnection, stage: StageResult) -> None:
    """Close the stage's connection (even when interrupted) and add its record."""
    stage.connections.append(probe.record())
    try:
        await probe.close()
    finally:
        stage.connections[-1] = probe.record()


async def _await_reply(probe: ProbeConnection, timeout_s: float) -> str | bytes | None:
    try:
        reply = await asyncio.wait_for(probe.conn.recv(), timeout_s)
    except TimeoutError:
        return None
    probe.log("message_received", size=len(reply))
    return reply


async def _sample_protocol_rtt(probe: ProbeConnection, count: int, samples: list[float]) -> int:
    """Ping ``count`` times, appending each RTT to ``samples``; return the pongs lost."""
    lost = streak = 0
    for _ in range(count):
        rtt = await probe.ping(ECHO_PING_TIMEOUT_S)
        if rtt is None:
            lost += 1
            streak += 1
            if streak >= MAX_LOST_IN_A_ROW:
                break  # the silence is the finding; leave the silent mark in place
            probe.silent_at = None  # one lost pong is a sample here, not the end
        else:
            samples.append(rtt)
            streak = 0
        await asyncio.sleep(SAMPLE_GAP_S)
    return lost


async def _sample_app_rtt(probe: ProbeConnection, count: int, samples: list[float]) -> bool:
    """Send ``count`` messages; True while the server echoes them (RTTs go to ``samples``)."""
    for index in range(count):
        payload = f"wsdoctor-echo-{index}"
        sent = time.monotonic()
        await probe.send(payload)
        reply = await _await_reply(probe, REPLY_TIMEOUT_S)
        if reply != payload:
            return bool(samples)
        samples.append((time.monotonic() - sent) * 1000)
        probe.events[-1].rtt_ms = round(samples[-1], 3)
    return True


async def echo_stage(
    path: PathSpec, plan: Plan, run_started: float, sink: list[StageResult]
) -> StageResult:
    """Sample RTT with protocol pings and, where the server echoes, application messages.

    Also finds out whether the server answers the application heartbeat message. The stage
    is appended to ``sink`` at once, so that an interrupted run still reports its samples.
    """
    began = time.monotonic()
    stage = StageResult(name="echo", started_at=round(began - run_started, 4), duration_s=0.0)
    sink.append(stage)
    samples: list[float] = []
    app_samples: list[float] = []
    lost = 0
    async with LoopLagMonitor() as lag:
        try:
            probe = await open_probe_connection(path, plan.connect, "echo-1", "echo", run_started)
        except HandshakeError as error:
            stage.connections.append(failed_record("echo-1", error, began - run_started))
            probe = None
        try:
            if probe is not None:
                lost = await _sample_protocol_rtt(probe, plan.echo_samples, samples)
                stage.app_echo = await _sample_app_rtt(probe, plan.echo_samples // 2, app_samples)
                await probe.send(plan.heartbeat_message)
                reply = await _await_reply(probe, REPLY_TIMEOUT_S)
                stage.app_heartbeat_answered = reply is not None
        except ConnectionClosed:
            stage.notes.append("the echo connection closed during sampling")
        except asyncio.CancelledError:
            stage.interrupted = True
            raise
        finally:
            for stats in (
                rtt_stats("protocol", samples, lost),
                rtt_stats("application", app_samples),
            ):
                if stats is not None:
                    stage.rtt.append(stats)
            if probe is not None:
                await _close_and_record(probe, stage)
            stage.loop_lag = lag.result()
            stage.duration_s = round(time.monotonic() - began, 4)
    return stage
