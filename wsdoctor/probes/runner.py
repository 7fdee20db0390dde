"""Run a plan's stages over every path at the same time and collect the observations.

Every path's handshake, echo, idle + heartbeat and stability stages run at once; then the size
and rate stages (which load the server) run on every path at once too. A rate stage that
fails while other paths were loading the server as well is measured again on its path alone
(a limit per client sees every path's bursts at once), and so is a failed size stage when a
burst was punished meanwhile (a server may then cut the client's other connections), within
the time the run budget grants the load stages one path after the other. The plain HTTP
fingerprint runs beside the long stages, never on the path of a quick check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from wsdoctor.budget import beside_budget, plan_budget
from wsdoctor.fingerprints import recognise
from wsdoctor.observations import Observations, PathResult, StageResult
from wsdoctor.plan import MAX_PING_TIMEOUT_S, MIN_PING_TIMEOUT_S, PathSpec, Plan
from wsdoctor.probes.basic import echo_stage, handshake_stage
from wsdoctor.probes.idle import SharedHorizon, idle_stages
from wsdoctor.probes.rate import rate_stage
from wsdoctor.probes.size import size_stage
from wsdoctor.probes.stability import stability_stage
from wsdoctor.redact import redact_url
from wsdoctor.status import PathStatus, RunStatus

if TYPE_CHECKING:
    from wsdoctor.probes.http_probe import HttpClients

QUICK_STAGES = frozenset({"handshake", "echo"})
"""A plan of these stages only is a quick check: nothing else (no HTTP fingerprint) runs."""
SERVER_ANSWERED = frozenset({"http_status", "upgrade_not_performed", "other"})
"""Failed handshakes after which a plain HTTP request may learn more. After the others (DNS,
refused, timeout, TLS, reset) it would fail the same way, and the user would wait for it."""
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
    clients: HttpClients | None = None,
) -> None:
    """Run every planned stage over one path, appending each stage to ``result`` as it ends.

    ``clients`` makes the plain HTTP fingerprint request (None: a quick check, no request).
    """
    status.stage = "handshake"
    await _test_hang("handshake")
    handshake = await handshake_stage(path, plan, run_started, result.stages)
    result.fingerprints = recognise(handshake.connections[0].handshake.headers, "upgrade")
    opened = handshake.connections[0].handshake
    if not opened.ok:
        failure = opened.failure
        if clients is not None and (failure is None or failure.reason in SERVER_ANSWERED):
            await _add_http_fingerprints(path, clients, result)
        status.stage = "done"
        return
    echo = None
    if "echo" in plan.stages:
        status.stage = "echo"
        await _test_hang("echo")
        echo = await echo_stage(path, plan, run_started, result.stages)
    # Stability only pings on its own connection: it runs beside the idle stage at no cost.
    # The plain HTTP request is light (a CA bundle, for https only, loads in a thread): it
    # cannot skew timings.
    beside: dict[str, Awaitable[None]] = {}
    if clients is not None:
        beside["fingerprint"] = _add_http_fingerprints(path, clients, result)
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
    if beside:
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
    except TimeoutError:
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


def wants_fingerprints(plan: Plan) -> bool:
    """Whether the run makes the plain HTTP request: beside long stages, never in a quick check."""
    return not set(plan.stages) <= QUICK_STAGES


def http_clients(plan: Plan) -> HttpClients | None:
    """The run's HTTP clients for the fingerprint request, or None when it makes none.

    Imports httpx only when the plan makes the request (a quick check never pays for it), in
    the calling thread before this run's stages start; commands have imported it already,
    before the event loop started (``execute.preload_probes``), so that it never stalls the
    stages of another run on the same loop.
    """
    if not wants_fingerprints(plan):
        return None
    from wsdoctor.probes.http_probe import HttpClients

    return HttpClients(plan.connect)


async def _add_http_fingerprints(path: PathSpec, clients: HttpClients, result: PathResult) -> None:
    """Add what a plain HTTP request to the same origin recognises."""
    from wsdoctor.probes.http_probe import plain_http_fingerprints

    named = {f.name for f in result.fingerprints}
    found = await plain_http_fingerprints(path, clients)
    result.fingerprints.extend(f for f in found if f.name not in named)


LoadStage = Callable[[PathSpec, Plan, float, float, bool, list[StageResult]], Awaitable[None]]
LOAD_STAGE_FUNCTIONS: dict[str, LoadStage] = {"size": size_stage, "rate": rate_stage}
REMEASURED_NOTE = (
    "measured again on this path alone: it failed while {others} other path(s) loaded the "
    "server at the same time"
)
NOT_REMEASURED_NOTE = (
    "failed while {others} other path(s) loaded the server at the same time; not measured "
    "again alone (the run budget left no time for it)"
)
INTERRUPTED_NOTE = (
    "failed while {others} other path(s) loaded the server at the same time; the run was "
    "stopped while it was being measured again alone"
)


def _load_ready(result: PathResult) -> bool:
    handshake = result.stage("handshake")
    return handshake is not None and handshake.connections[0].handshake.ok


async def _load_stage(
    name: str, path: PathSpec, plan: Plan, run_started: float, result: PathResult
) -> StageResult | None:
    """Run the load stage ``name`` on one path and return it (appended to the path's stages)."""
    echo = result.stage("echo")
    echoes = bool(echo and echo.app_echo)
    before = len(result.stages)
    await LOAD_STAGE_FUNCTIONS[name](
        path, plan, run_started, ping_timeout_for(echo), echoes, result.stages
    )
    return result.stages[before] if len(result.stages) > before else None


async def run_load_stages(
    path: PathSpec, plan: Plan, run_started: float, status: PathStatus, result: PathResult
) -> None:
    """The size then rate stages on one path, if planned and the path opens at all."""
    if not _load_ready(result):
        return
    for name in LOAD_STAGE_FUNCTIONS:
        if name in plan.stages:
            status.stage = name
            await _load_stage(name, path, plan, run_started, result)
    status.stage = "done"


def failed(stage: StageResult | None) -> bool:
    """Whether a load stage saw a step fail, or could not open its connection at all."""
    if stage is None or stage.interrupted:
        return False
    return any(not step.ok for step in stage.steps) or (bool(stage.notes) and not stage.steps)


async def run_load_phase(
    plan: Plan, run_started: float, status: RunStatus, observations: Observations
) -> None:
    """The size and rate stages on every path at once, then again alone where one failed.

    With one path (or one whose handshake succeeded) this is ``run_load_stages``. With
    several, a rate stage that failed is measured again on its path alone, one path after
    the other, and replaces the concurrent measurement (with a note saying so): a message
    rate limit per client sees every path's bursts at once. A size stage that failed is
    measured again only when a burst was punished on some path meanwhile (a server may cut
    every connection of the client then); a message size limit is per message, and another
    path's load does not move it. Either then reads as when the paths run one after the
    other. Re-measuring stays within what the run budget grants the load stages run one
    path after the other (``budget.plan_budget``); a failure it has no time for keeps a note.
    """
    pairs = [(p, r) for p, r in zip(plan.paths, observations.paths) if _load_ready(r)]
    planned = [name for name in LOAD_STAGE_FUNCTIONS if name in plan.stages]
    if not pairs or not planned:
        return
    if len(pairs) == 1:
        spec, result = pairs[0]
        await run_load_stages(spec, plan, run_started, status.path(spec.name), result)
        return
    began = time.monotonic()
    await _all(
        [
            asyncio.create_task(
                run_load_stages(spec, plan, run_started, status.path(spec.name), result)
            )
            for spec, result in pairs
        ]
    )
    allowance = dict(plan_budget(plan).parts)
    granted = sum(allowance.get(name, 0.0) for name in planned)
    others = len(pairs) - 1
    punished = any(failed(result.stage("rate")) for _, result in pairs)
    for spec, result in pairs:
        for name in planned:
            stage = result.stage(name)
            if stage is None or not failed(stage) or (name == "size" and not punished):
                continue
            alone_s = allowance.get(name, 0.0) / len(plan.paths)
            if time.monotonic() - began + alone_s > granted:
                stage.notes.append(NOT_REMEASURED_NOTE.format(others=others))
                continue
            status.path(spec.name).stage = name
            index, before = result.stages.index(stage), len(result.stages)
            try:
                again = await _load_stage(name, spec, plan, run_started, result)
            except asyncio.CancelledError:
                # One stage per name: the concurrent measurement stays, the cut one goes.
                del result.stages[before:]
                stage.notes.append(INTERRUPTED_NOTE.format(others=others))
                raise
            if again is not None:
                result.stages.remove(again)
                again.notes.append(REMEASURED_NOTE.format(others=others))
                result.stages[index] = again
            status.path(spec.name).stage = "done"


async def _all(tasks: list[asyncio.Task[None]]) -> None:
    """Await every task; when one fails or the wait is cancelled, stop the others first."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def run_plan(plan: Plan, status: RunStatus, observations: Observations) -> None:
    """Probe every path of ``plan`` concurrently, filling ``observations`` as facts arrive.

    When cancelled (Ctrl-C), ``observations`` keeps what was learned and is marked interrupted.
    """
    clients = http_clients(plan)  # imports httpx, if needed, before the clock starts
    observations.started_at = datetime.now(UTC).isoformat(timespec="seconds")
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
        asyncio.create_task(
            run_path(p, plan, run_started, status.path(p.name), horizon, r, clients)
        )
        for p, r in zip(plan.paths, observations.paths)
    ]
    try:
        await asyncio.gather(*tasks)
        if clients is not None:
            await clients.aclose()
        await run_load_phase(plan, run_started, status, observations)
    except asyncio.CancelledError:
        observations.interrupted = True
        # gather already cancelled the paths: let them record what they saw, once.
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        observations.duration_s = round(time.monotonic() - run_started, 3)
        if clients is not None:
            await clients.aclose()
