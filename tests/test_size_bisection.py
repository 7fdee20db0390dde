"""The size stage bisects a message size limit to within max(1 %, 1 KiB), in a bounded number of
extra messages: against a real `wsdoctor serve` limit that is no power of two, and the bisection
arithmetic on its own.
"""

from __future__ import annotations

import asyncio

import pytest
from labkit import lab

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import Diagnosis
from wsdoctor.observations import Observations, StageResult
from wsdoctor.plan import ConnectOptions, LoadPlan, PathSpec, Plan
from wsdoctor.probes.runner import run_plan
from wsdoctor.report.json_report import build_report, validate_report
from wsdoctor.server import ServeOptions
from wsdoctor.status import RunStatus

LIMIT = 50_000
MAX_EXTRA_MESSAGES = 8


def tolerance(limit: int) -> float:
    return max(0.01 * limit, 1024)


def probe_size(limit: int, path: str = "direct") -> tuple[StageResult, Diagnosis]:
    """The echo and size stages against a server whose message limit is ``limit`` bytes."""

    async def main() -> Observations:
        fault = {} if path == "via-proxy" else None
        async with lab(ServeOptions(max_message_bytes=limit), fault) as (direct, proxied):
            url = direct if path == "direct" else proxied
            assert url is not None
            plan = Plan(
                paths=(PathSpec(path, url),),
                connect=ConnectOptions(open_timeout_s=5.0),
                stages=("handshake", "echo", "size"),
            )
            obs = Observations(started_at="", duration_s=0.0)
            await run_plan(plan, RunStatus(), obs)
            return obs

    obs = asyncio.run(main())
    diagnosis = diagnose(obs)
    validate_report(build_report(obs, diagnosis))
    stage = obs.paths[0].stage("size")
    assert stage is not None
    return stage, diagnosis


@pytest.mark.parametrize("path", ["direct", "via-proxy"])
def test_a_limit_of_50000_bytes_is_bisected(path: str) -> None:
    stage, diagnosis = probe_size(LIMIT, path)
    verdict = diagnosis.verdict
    # One path, and the server itself closed with 1009: the server's limit, whichever path.
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "message_size_limit",
        "server",
    )
    found = verdict.max_message_bytes
    assert found is not None and LIMIT - tolerance(LIMIT) <= found <= LIMIT, found

    ramp = [s for s in stage.steps if s.phase is None]
    bisect = [s for s in stage.steps if s.phase == "bisect"]
    assert len(ramp) + len(bisect) == len(stage.steps)
    assert [s.value for s in ramp] == [256.0 * 2**i for i in range(len(ramp))]
    assert [s.ok for s in ramp] == [True] * (len(ramp) - 1) + [False]
    assert 1 <= len(bisect) <= MAX_EXTRA_MESSAGES
    for step in stage.steps:
        assert step.ok == (step.value <= LIMIT), step  # every answer is the truth
        if not step.ok:
            assert step.ending is not None
            assert (step.ending.kind, step.ending.code) == ("close_frame", 1009)
        else:
            assert step.answered == 1  # echoed, on a fresh connection after a failure too
    smallest_failed = min(s.value for s in stage.steps if not s.ok)
    assert found == max(s.value for s in stage.steps if s.ok)
    assert smallest_failed - found <= tolerance(found)

    finding = next(f for f in diagnosis.findings if f.code == "message_size_limit")
    bracket = f"passed {found:,} B and failed {int(smallest_failed):,} B"
    assert any(bracket in line for line in finding.evidence), finding.evidence
    assert any(f"({len(bisect)} bisection messages)" in line for line in finding.evidence)


def test_an_exact_power_of_two_limit_stays_exact() -> None:
    stage, diagnosis = probe_size(16 * 1024)
    assert diagnosis.verdict.max_message_bytes == 16 * 1024
    assert diagnosis.verdict.hop == "server"
    bisect = [s for s in stage.steps if s.phase == "bisect"]
    assert bisect and not any(s.ok for s in bisect)
    assert len(bisect) <= MAX_EXTRA_MESSAGES


def _bisect(plan: LoadPlan, limit: int) -> tuple[int, int, int] | None:
    """What the stage would find against an exact ``limit``: (passed, failed, extra steps)."""
    passed = None
    for size in plan.sizes():
        if size > limit:
            break
        passed = size
    else:
        return None
    if passed is None:
        return None
    failed, steps = size, 0
    while (middle := plan.bisect_size(passed, failed)) is not None:
        assert passed < middle < failed
        steps += 1
        if middle <= limit:
            passed = middle
        else:
            failed = middle
    return passed, failed, steps


@pytest.mark.parametrize("budget", [1 << 20, 1 << 28, 3000])
def test_bisection_arithmetic_is_bounded_and_precise(budget: int) -> None:
    plan = LoadPlan(max_message_bytes=budget)
    most = 0
    for limit in range(256, budget, max(1, budget // 5000)):
        found = _bisect(plan, limit)
        if found is None:
            continue
        passed, failed, steps = found
        assert passed <= limit < failed
        assert limit - passed <= tolerance(limit), (limit, found)
        most = max(most, steps)
    assert most <= plan.max_bisect_steps == MAX_EXTRA_MESSAGES


def test_bisection_sizes_are_round() -> None:
    plan = LoadPlan()
    assert plan.bisect_size(32768, 65536) == 49152
    assert plan.bisect_size(49152, 50176) is None  # within 1 KiB
    assert plan.size_tolerance(1 << 20) == 10485  # 1 % above 100 KiB
    assert plan.bisect_size(524288, 1048576) == 786432
