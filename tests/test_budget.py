"""Never hang: every run ends within its budget and says where it was stuck when it is cut.

The budget is computed from the plan (tested in-process). The hangs are real processes: a
`wsdoctor probe` against a real `wsdoctor serve`, with a stage made to hang through the test
hook ``WSDOCTOR_TEST_HANG`` (``wsdoctor.probes.runner``): waiting forever for a future, also
ignoring cancellation, or blocking the event loop's thread. No timeout covers these; only the
watchdog can end the run. Timings are checked with generous bounds only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hostile import in_thread

from wsdoctor.budget import EXIT_GRACE_S, GRACE_S, MARGIN_S, plan_budget
from wsdoctor.commands.common import ConnectArgs, StageArgs, build_plan
from wsdoctor.demo import free_port
from wsdoctor.eventloop import DaemonExecutor, run_bounded
from wsdoctor.report.json_report import validate_report

MAX_TIME_S = 3.0
SLACK_S = 10.0  # start-up, writing the report, a loaded machine


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The reference server (`wsdoctor serve`'s) on a free port, in a thread."""
    from wsdoctor.server import ServeOptions, running_server

    @contextlib.asynccontextmanager
    async def server() -> AsyncIterator[int]:
        port = free_port()
        async with running_server(ServeOptions(port=port)):
            yield port

    with in_thread(server) as port:
        yield f"ws://127.0.0.1:{port}/"


def run_ci_like(
    *args: str, hang: str | None = None, timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run wsdoctor as a CI job would: piped output, stdin from /dev/null, its own session."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("WSDOCTOR_TEST_HANG", None)
    if hang is not None:
        env["WSDOCTOR_TEST_HANG"] = hang
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "wsdoctor", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        start_new_session=True,
    )
    return result, time.monotonic() - began


def plan_of(urls: list[str], **options: object):  # noqa: ANN201 - a Plan
    paths = [(f"p{i}", url, None) for i, url in enumerate(urls)]
    return build_plan(paths=paths, connect=ConnectArgs(), stage=StageArgs(**options))  # type: ignore[arg-type]


# --- the budget, from the plan --------------------------------------------------------------


def test_budget_counts_each_stage_and_a_margin() -> None:
    plan = plan_of(["wss://example.com/"], max_idle=20, stages="handshake,echo,idle")
    budget = plan_budget(plan)
    parts = dict(budget.parts)
    assert set(parts) == {"handshake", "echo", "idle"}
    # The idle stage: max-idle + the longest ping timeout + the open timeout (+ a close).
    assert parts["idle"] >= 20 + 10 + 10
    assert budget.total_s >= budget.planned_s + MARGIN_S
    assert budget.describe().startswith(f"run budget {budget.total_s:.1f} s = handshake")


def test_budget_grows_with_the_idle_stage_and_the_load_stages_per_path() -> None:
    short = plan_budget(plan_of(["ws://127.0.0.1:9/"], max_idle=10)).total_s
    long = plan_budget(plan_of(["ws://127.0.0.1:9/"], max_idle=100)).total_s
    assert long >= short + 90
    one = dict(plan_budget(plan_of(["ws://127.0.0.1:9/"], max_idle=10)).parts)
    two = dict(plan_budget(plan_of(["ws://127.0.0.1:9/"] * 2, max_idle=10)).parts)
    assert two["size"] == pytest.approx(2 * one["size"])  # one path at a time
    assert two["idle"] == one["idle"]  # paths side by side


def test_max_time_lowers_the_budget_and_never_raises_it() -> None:
    plan = plan_of(["ws://127.0.0.1:9/"], max_idle=10)
    natural = plan_budget(plan).total_s
    assert plan_budget(plan, 3.0).total_s == 3.0
    assert "lowered by --max-time 3" in plan_budget(plan, 3.0).describe()
    assert plan_budget(plan, natural * 10).total_s == natural


# --- an event loop that cannot block the exit -----------------------------------------------


def test_a_stuck_executor_thread_does_not_hold_up_the_loop_or_the_exit() -> None:
    release = threading.Event()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        assert isinstance(loop._default_executor, DaemonExecutor)  # type: ignore[attr-defined]
        stuck = loop.run_in_executor(None, release.wait)
        try:
            await asyncio.wait_for(stuck, 0.2)
        except TimeoutError:
            return "timed out"
        return "finished"

    began = time.monotonic()
    try:
        assert run_bounded(main()) == "timed out"
        workers = [t for t in threading.enumerate() if t.name == "wsdoctor-worker"]
        assert workers and all(t.daemon for t in workers)
    finally:
        release.set()
    assert time.monotonic() - began < 5


def test_tasks_that_ignore_cancellation_get_a_bounded_shutdown() -> None:
    async def deaf() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    async def main() -> None:
        asyncio.get_running_loop().create_task(deaf())
        await asyncio.sleep(0)

    began = time.monotonic()
    run_bounded(main(), shutdown_s=0.5)
    assert time.monotonic() - began < 5


# --- real processes cut at their budget -----------------------------------------------------


def _assert_cut(report_path: Path, stage: str) -> dict:
    report = json.loads(report_path.read_text())
    validate_report(report)
    assert report["verdict"]["status"] == "inconclusive"
    finding = report["findings"][0]
    assert finding["code"] == "run_budget_exceeded" and finding["severity"] == "error"
    assert f"budget of {MAX_TIME_S:g} s" in finding["title"] and stage in finding["title"]
    assert any("_test_hang (wsdoctor/probes/runner.py:" in line for line in finding["evidence"])
    stacks = Path(str(report_path) + ".stacks.txt")
    assert f"stack dump: {stacks}" in finding["evidence"]
    dump = stacks.read_text()
    assert "Pending asyncio tasks" in dump and "_test_hang" in dump
    assert "Threads (most recent call first):" in dump and "wsdoctor-watchdog" not in dump
    assert re.search(r"Thread 0x[0-9a-f]+", dump)
    return report


@pytest.mark.parametrize("mode", ["", ":deaf", ":blocking"], ids=["waits", "deaf", "blocking"])
def test_a_hung_stage_is_cut_at_the_budget_with_a_report_and_a_stack_dump(
    server_url: str, tmp_path: Path, mode: str
) -> None:
    report_path = tmp_path / "report.json"
    result, seconds = run_ci_like(
        "probe",
        server_url,
        "--stages",
        "handshake,echo",
        "--max-time",
        f"{MAX_TIME_S:g}",
        "--json",
        str(report_path),
        hang=f"echo{mode}",
    )
    assert result.returncode == 3, result.stderr
    grace = GRACE_S if mode else 0.0  # a run that does not stop is ended after the grace
    assert seconds < MAX_TIME_S + grace + SLACK_S
    errors = [line for line in result.stderr.splitlines() if line.startswith("wsdoctor: ")]
    assert errors and "cut at its budget of 3 s" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    report = _assert_cut(report_path, "echo")
    assert report["interrupted"] is True
    handshake = report["paths"][0]["stages"][0]
    assert handshake["name"] == "handshake" and handshake["connections"][0]["handshake"]["ok"]


def test_debug_prints_the_budget_and_the_stack_dump(server_url: str, tmp_path: Path) -> None:
    result, _ = run_ci_like(
        "probe",
        server_url,
        "--stages",
        "handshake,echo",
        "--max-time",
        "2",
        "--debug",
        hang="handshake",
    )
    assert result.returncode == 3, result.stderr
    assert re.search(r"^wsdoctor: run budget 2\.0 s = handshake ", result.stderr, re.M)
    assert "Pending asyncio tasks" in result.stderr
    assert "_test_hang (wsdoctor/probes/runner.py:" in result.stderr
    assert "Current thread 0x" in result.stderr or "Thread 0x" in result.stderr


def test_json_on_stdout_is_written_even_when_the_loop_is_blocked(server_url: str) -> None:
    result, _ = run_ci_like(
        "probe", server_url, "--max-time", "2", "--json", "-", hang="handshake:blocking"
    )
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    validate_report(report)
    assert report["findings"][0]["code"] == "run_budget_exceeded"
    assert "handshake" in report["findings"][0]["title"]


def test_a_healthy_run_within_its_budget_is_not_cut(server_url: str, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result, _ = run_ci_like(
        "probe",
        server_url,
        "--stages",
        "handshake,echo,idle",
        "--max-idle",
        "2",
        "--json",
        str(report_path),
        "--debug",
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^wsdoctor: run budget [0-9.]+ s = handshake", result.stderr, re.M)
    codes = {f["code"] for f in json.loads(report_path.read_text())["findings"]}
    assert "run_budget_exceeded" not in codes
    assert not Path(str(report_path) + ".stacks.txt").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["watch", "{url}", "--interval", "0.5"],
        ["check", "{url}"],
        ["compare", "--direct", "{url}", "--via-proxy", "{url}", "--stages", "handshake,echo"],
        ["capacity", "{url}", "--max-connections", "2000", "--rate", "20"],
        ["demo"],
    ],
    ids=["watch", "check", "compare", "capacity", "demo"],
)
def test_every_probing_command_takes_max_time(
    server_url: str, tmp_path: Path, args: list[str]
) -> None:
    report_path = tmp_path / "report.json"
    argv = [a.replace("{url}", server_url) for a in args]
    result, seconds = run_ci_like(*argv, "--max-time", "2", "--json", str(report_path), hang="echo")
    assert result.returncode == 3, result.stderr
    assert seconds < 2 + SLACK_S
    report = json.loads(report_path.read_text())
    reports = report["targets"] if report["schema"] == "wsdoctor.check/1" else [report]
    for one in reports:
        validate_report(one)
        assert one["findings"][0]["code"] == "run_budget_exceeded"


def test_a_process_that_cannot_exit_after_its_report_is_ended(
    server_url: str, tmp_path: Path
) -> None:
    """A thread left behind (the hook starts one that never ends) must not hold the exit."""
    report_path = tmp_path / "report.json"
    args = ("probe", server_url, "--stages", "handshake,echo", "--json", str(report_path))
    result, seconds = run_ci_like(*args, hang="exit")
    assert result.returncode == 0, result.stderr  # handshake and echo alone: a quick check
    assert "did not exit after its report was written" in result.stderr
    assert seconds < EXIT_GRACE_S + 30
    validate_report(json.loads(report_path.read_text()))


def test_a_stage_that_swallowed_its_cancellation_is_cancelled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.11's wait_for can swallow a cancel (seen in the soak): the runner's backstop."""
    from wsdoctor.observations import PathResult, StageResult
    from wsdoctor.probes import runner

    monkeypatch.setattr(runner, "STAGE_SLACK_S", 0.1)
    swallowed: list[bool] = []

    async def slot() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(True)  # as wait_for does when its result races the cancel

    async def stage() -> None:
        task = asyncio.create_task(slot())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # the idle stage's final wait

    result = PathResult(name="direct", url="ws://127.0.0.1:9/")
    result.stages.append(StageResult(name="idle", started_at=0.0, duration_s=0.0))
    asyncio.run(asyncio.wait_for(runner._bounded(stage(), 0.2, result), 10))
    assert swallowed and "did not stop by its own deadline" in result.stages[0].notes[0]
