"""Run a plan's stages over every path at the same time and collect the observations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable
from datetime import datetime, timezone

from wsdoctor.budget import beside_budget
from wsdoctor.fingerprints import recognise
from wsdoctor.observations import Observations, PathResult, StageResult
from wsdoctor.plan import MAX_PING_TIMEOUT_S, MIN_PING_TIMEOUT_S, PathSpec, Plan
from wsdoctor.probes.basic import echo_stage, handshake_stage
from wsdoctor.probes.http_probe import plain_http_fingerprints
from wsdoctor.probes.idle import SharedHorizon, idle_stages
from wsdoctor.probes.rate import rate_stage
from wsdoctor.probes.size import size_stage
from wsdoctor.probes.stability import stability_stage
from wsdoctor.redact import redact_url
from wsdoctor.status import PathStatus, RunStatus

STAGE_SLACK_S = 10.0
"""How far past its worst case a group of stages may run before it is cancelled."""
TEST_HANG_ENV = "WSDOCTOR_TEST_HANG"
"""A test hook, used only by the tests of the run budget (tests/test_budget.py).

``STAGE`` makes that stage (``handshake`` or ``echo``) wait forever for something that never
comes; ``STAGE:deaf`` also ignores cancellation (like a close that never completes);
``STAGE:blocking`` blocks the event loop's thread for good. No timeout covers these: only the
run budget's watchdog ends such a run. ``STAGE:crash`` raises instead (an internal error).
``exit`` leaves a thread behind that keeps the process from exiting after its report.
"""


def ping_timeout_for(echo: StageResult | None) -> float:
    """How long a rung waits for a pong: well above the path's worst RTT seen so far."""
    if echo is None:
        return MIN_PING_TIMEOUT_S * 2
    worst_ms = max((s.p99_ms for s in echo.rtt if s.kind == "protocol"), default=0.0)
    return round(min(MAX_PING_TIMEOUT_S, max(MIN_PING_TIMEOUT_S, 0.5 + 4 * worst_ms / 1000)), 3)


async def run_path(
    path: PathSpec,
    plan: Plan,
    run_started: float,
    status: PathStatus,
    horizon: SharedHorizon,
    result: PathResult,
) -> None:
    """Run every planned stage over one path, appending each stage to ``result`` as it ends."""
    status.stage = "handshake"
    await _test_hang("handshake")
    handshake = await handshake_stage(path, plan, run_started, result.stages)
    result.fingerprints = recognise(handshake.connections[0].handshake.headers, "upgrade")
    if not handshake.connections[0].handshake.ok:
        await _add_http_fingerprints(path, plan, result)
        status.stage = "done"
        return
    echo = None
    if "echo" in plan.stages:
        status.stage = "echo"
        await _test_hang("echo")
        echo = await echo_stage(path, plan, run_started, result.stages)
    # Stability only pings on its own connection: it runs beside the idle stage at no cost.
    # The plain HTTP request is light, and its set-up runs in a thread: it cannot skew timings.
    beside: dict[str, Awaitable[None]] = {"fingerprint": _add_http_fingerprints(path, plan, result)}
    if "idle" in plan.stages or "heartbeat" in plan.stages:
        beside["idle"] = idle_stages(
            path,
            plan,
            run_started,
            ping_timeout_for(echo),
            plan.heartbeat_message,
            status,
            horizon,
            result.stages,
        )
    if "stability" in plan.stages:
        beside["stability"] = stability_stage(
            path, plan, run_started, ping_timeout_for(echo), status, result.stages
        )
    status.stage = " + ".join(name for name in beside if name != "fingerprint") or "fingerprint"
    await _bounded(asyncio.gather(*beside.values()), beside_budget(plan)[1], result)
    status.stage = "done"


async def _bounded(work: Awaitable[object], limit_s: float, result: PathResult) -> None:
    """Await ``work`` at most ``limit_s`` (plus slack); past that, cancel it and note why.

    Each stage ends itself by its own deadline. This is the backstop for a stage that does
    not stop: on Python 3.11, ``asyncio.wait_for`` swallows a cancellation that arrives in the
    same loop iteration as its result, so a stage that cancels its connections' tasks once
    and waits for them can wait forever (seen in benchmarks/soak.py). Cancelling again here
    reaches those tasks a second time.
    """
    future = asyncio.ensure_future(work)
    # Cancelled from outside, wait_for stops waiting for ``future``; what it ends with (the
    # stages' own CancelledError) is read here, never left for the loop to log as unretrieved.
    future.add_done_callback(_read_outcome)
    try:
        await asyncio.wait_for(future, limit_s + STAGE_SLACK_S)
    except asyncio.TimeoutError:
        for stage in result.stages:
            if stage.name in ("idle", "heartbeat", "stability"):
                stage.notes.append(
                    f"did not stop by its own deadline ({limit_s + STAGE_SLACK_S:g} s): "
                    "its remaining tasks were cancelled"
                )


def _read_outcome(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


async def _test_hang(stage: str) -> None:
    """The hang that ``WSDOCTOR_TEST_HANG`` asks for at ``stage``, if any (tests only)."""
    name, _, mode = os.environ.get(TEST_HANG_ENV, "").partition(":")
    if name == "exit" and stage == "handshake":
        threading.Thread(target=threading.Event().wait, name="test-hook-stuck").start()
    if name != stage:
        return
    if mode == "crash":
        raise RuntimeError(f"{TEST_HANG_ENV} asked the {stage} stage to crash")
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if mode == "blocking":
        threading.Event().wait()
    while mode == "deaf":
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(never)
    await never


async def _add_http_fingerprints(path: PathSpec, plan: Plan, result: PathResult) -> None:
    """Add what a plain HTTP request to the same origin recognises."""
    named = {f.name for f in result.fingerprints}
    found = await plain_http_fingerprints(path, plan.connect)
    result.fingerprints.extend(f for f in found if f.name not in named)


async def run_load_stages(
    path: PathSpec, plan: Plan, run_started: float, status: PathStatus, result: PathResult
) -> None:
    """The size then rate stages on one path, if planned and the path opens at all.

    They load the server, and a server punishing a burst may punish the client's other
    connections too, so they run after every path's idle stage, one path at a time.
    """
    handshake = result.stage("handshake")
    if handshake is None or not handshake.connections[0].handshake.ok:
        return
    echo = result.stage("echo")
    echoes = bool(echo and echo.app_echo)
    if "size" in plan.stages:
        status.stage = "size"
        await size_stage(path, plan, run_started, ping_timeout_for(echo), echoes, result.stages)
    if "rate" in plan.stages:
        status.stage = "rate"
        await rate_stage(path, plan, run_started, ping_timeout_for(echo), echoes, result.stages)
    status.stage = "done"


async def run_plan(plan: Plan, status: RunStatus, observations: Observations) -> None:
    """Probe every path of ``plan`` concurrently, filling ``observations`` as facts arrive.

    When cancelled (Ctrl-C), ``observations`` keeps what was learned and is marked interrupted.
    """
    observations.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_started = status.started = time.monotonic()
    observations.paths = [
        PathResult(
            name=p.name,
            url=redact_url(p.url),
            proxy=redact_url(p.proxy) if p.proxy else None,
        )
        for p in plan.paths
    ]
    horizon = SharedHorizon()
    tasks = [
        asyncio.create_task(run_path(p, plan, run_started, status.path(p.name), horizon, r))
        for p, r in zip(plan.paths, observations.paths)
    ]
    try:
        await asyncio.gather(*tasks)
        for spec, result in zip(plan.paths, observations.paths):
            await run_load_stages(spec, plan, run_started, status.path(spec.name), result)
    except asyncio.CancelledError:
        observations.interrupted = True
        # gather already cancelled the paths: let them record what they saw, once.
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        observations.duration_s = round(time.monotonic() - run_started, 3)
