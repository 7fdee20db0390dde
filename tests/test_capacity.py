"""`wsdoctor capacity` against real servers on loopback: a 503 cap, a server out of descriptors,
a healthy server, a client out of descriptors, a reconnect storm, and the loopback guard.

Each limit is checked to within 10 % of the truth the server was built with. The rules are also
judged on hand-written steps, for failure kinds no lab server here produces (429, sheds).
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from labkit import json_report, run_cli
from observation_builders import ramp_step
from typer.testing import CliRunner

import wsdoctor.probes.capacity
from wsdoctor.cli import app
from wsdoctor.demo import free_port
from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import Diagnosis
from wsdoctor.observations import Observations, PathResult, StageResult, Step
from wsdoctor.plan import CapacityPlan, ConnectOptions, PathSpec
from wsdoctor.probes.capacity import ramp_levels, run_capacity
from wsdoctor.report.json_report import build_report, validate_report
from wsdoctor.server import ServeOptions, running_server
from wsdoctor.status import RunStatus

SERVER_FD_LIMIT = 64
READY_TIMEOUT_S = 10.0


def within_10_percent(measured: int | None, truth: int) -> bool:
    return measured is not None and abs(measured - truth) <= 0.1 * truth


def ramp(stage: StageResult) -> list[Step]:
    return [s for s in stage.steps if s.phase == "ramp"]


def capacity_stage(observations: Observations) -> StageResult:
    stage = observations.paths[0].stage("capacity")
    assert stage is not None, "the capacity stage did not run"
    return stage


def diagnosed(observations: Observations) -> Diagnosis:
    diagnosis = diagnose(observations)
    validate_report(build_report(observations, diagnosis))
    return diagnosis


async def _ramp(url: str, plan: CapacityPlan, open_timeout_s: float) -> Observations:
    observations = Observations(started_at="", duration_s=0.0)
    connect = ConnectOptions(open_timeout_s=open_timeout_s)
    await run_capacity(PathSpec("direct", url), connect, plan, RunStatus(), observations)
    return observations


def ramp_in_process(server: ServeOptions, plan: CapacityPlan) -> Observations:
    """Run the capacity probe against an in-process `wsdoctor serve`."""

    async def main() -> Observations:
        server.port = 0
        async with running_server(server) as port:
            return await _ramp(f"ws://127.0.0.1:{port}/", plan, 3.0)

    return asyncio.run(main())


@contextmanager
def serve_process(*args: str, fd_limit: int | None = None) -> Iterator[tuple[int, int]]:
    """A real `wsdoctor serve` process on a free port: yields (port, pid) once it listens.

    Its stderr goes to a file, not a pipe: a server out of descriptors logs every failed
    accept, and a full pipe would stall it for a reason that has nothing to do with the test.
    """

    def limit_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    port = free_port()
    with open(os.devnull, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "wsdoctor", "serve", "--port", str(port), *args],
            stderr=sink,
            preexec_fn=limit_descriptors if fd_limit else None,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _listening(port):
            assert process.poll() is None, "wsdoctor serve exited"
            assert time.monotonic() < deadline, "wsdoctor serve did not start listening"
            time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (read from /proc/net/tcp: no connection)."""
    wanted = f"0100007F:{port:04X} 00000000:0000 0A"
    with open("/proc/net/tcp", encoding="ascii") as table:
        return any(wanted in line for line in table)


# --- real servers -------------------------------------------------------------------------------


def test_server_capped_at_30_answers_503_beyond() -> None:
    plan = CapacityPlan(max_connections=60, hold_s=0.3)
    observations = ramp_in_process(ServeOptions(max_connections=30), plan)
    verdict = diagnosed(observations).verdict
    assert verdict.status == "problem"
    assert (verdict.culprit, verdict.hop) == ("server_limits", "server")
    assert within_10_percent(verdict.connection_limit, 30), verdict.connection_limit
    failing = next(s for s in ramp(capacity_stage(observations)) if not s.ok)
    assert set(failing.failures) == {"http_503"}
    assert failing.status == 503
    assert "503" in verdict.summary


def test_server_out_of_descriptors() -> None:
    """A server under RLIMIT_NOFILE 64: each connection holds one descriptor, so it can hold
    64 minus the descriptors it has open before any client connects (stdio, epoll, the
    asyncio self-pipe, the listening socket), counted from /proc/<pid>/fd once it listens."""
    with serve_process(fd_limit=SERVER_FD_LIMIT) as (port, pid):
        truth = SERVER_FD_LIMIT - len(os.listdir(f"/proc/{pid}/fd"))
        plan = CapacityPlan(max_connections=100, hold_s=0.3)
        observations = asyncio.run(_ramp(f"ws://127.0.0.1:{port}/", plan, 2.0))
    verdict = diagnosed(observations).verdict
    assert (verdict.culprit, verdict.hop) == ("server_limits", "server")
    assert within_10_percent(verdict.connection_limit, truth), (verdict.connection_limit, truth)
    failing = next(s for s in ramp(capacity_stage(observations)) if not s.ok)
    assert set(failing.failures) <= {"timeout", "refused", "reset"}, failing.failures
    assert any("descriptors" in remedy for remedy in verdict.remedies)


def test_healthy_up_to_the_maximum() -> None:
    observations = ramp_in_process(ServeOptions(), CapacityPlan(max_connections=25, hold_s=0.2))
    diagnosis = diagnosed(observations)
    assert diagnosis.verdict.status == "healthy"
    assert diagnosis.verdict.culprit == "none"
    steps = ramp(capacity_stage(observations))
    assert [s.value for s in steps] == [10, 20, 25]
    assert all(s.ok for s in steps)
    assert any(f.code == "capacity_held" and "25" in f.title for f in diagnosis.findings)
    recovery = [s for s in capacity_stage(observations).steps if s.phase == "recovery"]
    assert recovery and recovery[0].ok


def test_reconnect_storm_reports_both_failure_rates() -> None:
    plan = CapacityPlan(max_connections=30, hold_s=0.2, storm=True)
    observations = ramp_in_process(ServeOptions(max_connections=20), plan)
    stage = capacity_stage(observations)
    storms = {s.phase: s for s in stage.steps if s.phase in ("storm", "storm_backoff")}
    assert set(storms) == {"storm", "storm_backoff"}
    for step in storms.values():
        assert within_10_percent(int(step.value), 20)
        assert step.sent >= step.value
        assert step.failed == sum(step.failures.values()) <= step.sent
    finding = next(f for f in diagnosed(observations).findings if f.code == "reconnect_storm")
    assert "without backoff" in finding.evidence[0] and "%" in finding.evidence[0]
    assert "with backoff and jitter" in finding.evidence[1] and "%" in finding.evidence[1]


def test_cli_finds_the_cap_of_wsdoctor_serve() -> None:
    with serve_process("--max-connections", "12") as (port, _):
        result = run_cli(
            "capacity",
            f"ws://127.0.0.1:{port}/",
            "--max-connections",
            "30",
            "--hold",
            "0.2",
            "--json",
            "-",
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    verdict = json_report(result)["verdict"]
    assert (verdict["culprit"], verdict["hop"]) == ("server_limits", "server")
    assert within_10_percent(verdict["connection_limit"], 12)


def test_cli_says_when_the_client_limit_was_reached() -> None:
    """The client under a hard descriptor limit of 100 cannot reach 60 connections: the report
    must blame the client, not the (unlimited) server."""

    def small_client() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))

    with serve_process() as (port, _):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "wsdoctor",
                "capacity",
                f"ws://127.0.0.1:{port}/",
                "--max-connections",
                "60",
                "--hold",
                "0.2",
                "--json",
                "-",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=small_client,
            env={**os.environ, "NO_COLOR": "1"},
        )
    assert result.returncode == 3, result.stderr
    report = json_report(result)
    assert report["verdict"]["status"] == "inconclusive"
    assert report["verdict"]["culprit"] == "none"
    assert "client" in report["verdict"]["summary"]
    assert any(f["code"] == "client_limit_reached" for f in report["findings"])
    stage = next(s for s in report["paths"][0]["stages"] if s["name"] == "capacity")
    assert stage["client_fd_limit"] == 100
    assert all(s["answered"] <= 60 for s in stage["steps"])


def test_non_loopback_target_is_refused_before_any_connection(monkeypatch) -> None:  # noqa: ANN001
    result = run_cli("capacity", "ws://192.0.2.1:9/", "--max-connections", "5")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a loopback address" in lines[0], result.stderr
    assert "--yes-i-own-this-server" in lines[0]
    assert result.stdout == ""

    called = []
    monkeypatch.setattr(wsdoctor.probes.capacity, "run_capacity", lambda *a: called.append(a))
    outcome = CliRunner().invoke(app, ["capacity", "ws://192.0.2.1:9/"])
    assert outcome.exit_code == 2
    assert called == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-connections", "0"], "--max-connections must be"),
        (["--rate", "0"], "--rate must be"),
        (["--hold", "-1"], "--hold must be"),
    ],
)
def test_bad_capacity_options_are_one_line_errors(args: list[str], words: str) -> None:
    result = run_cli("capacity", "ws://127.0.0.1:9/", *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_ramp_levels_stay_within_the_maximum() -> None:
    assert ramp_levels(5) == [5]
    assert ramp_levels(60) == [10, 20, 50, 60]
    assert ramp_levels(200) == [10, 20, 50, 100, 200]
    assert all(level <= 2000 for level in ramp_levels(2000))


# --- rules on hand-written steps ----------------------------------------------------------------


def _observations(steps: list[Step], client_fd_limit: int = 20000) -> Observations:
    stage = StageResult(
        name="capacity",
        started_at=0.0,
        duration_s=5.0,
        steps=steps,
        client_fd_limit=client_fd_limit,
    )
    path = PathResult(name="direct", url="ws://127.0.0.1:1/", stages=[stage])
    return Observations(started_at="2026-11-02T09:00:00+00:00", duration_s=5.0, paths=[path])


def test_rule_429_is_a_rate_limit() -> None:
    steps = [ramp_step(10, 10), ramp_step(20, 14, {"http_429": 6})]
    verdict = diagnosed(_observations(steps)).verdict
    assert (verdict.culprit, verdict.hop) == ("rate_limit", "server")
    assert "429" in verdict.summary


def test_rule_shed_connections_are_server_limits() -> None:
    steps = [ramp_step(50, 50), ramp_step(100, 80, {"shed_reset": 20})]
    diagnosis = diagnosed(_observations(steps))
    assert (diagnosis.verdict.culprit, diagnosis.verdict.hop) == ("server_limits", "server")
    assert diagnosis.verdict.connection_limit == 80
    assert "drops open connections" in diagnosis.verdict.summary


def test_rule_not_recovering_is_reported() -> None:
    recovery = Step(
        value=5,
        ok=False,
        sent=25,
        answered=0,
        failed=25,
        failures={"timeout": 25},
        elapsed_s=5.5,
        phase="recovery",
    )
    steps = [ramp_step(10, 10), ramp_step(20, 12, {"timeout": 8}), recovery]
    diagnosis = diagnosed(_observations(steps))
    assert "had not recovered" in diagnosis.verdict.summary
    assert any(f.code == "server_not_recovered" for f in diagnosis.findings)


def test_rule_client_and_server_failures_blame_the_server() -> None:
    steps = [ramp_step(10, 10), ramp_step(20, 15, {"http_503": 2, "client_fd_limit": 3})]
    diagnosis = diagnosed(_observations(steps, client_fd_limit=100))
    assert diagnosis.verdict.culprit == "server_limits"
    assert diagnosis.verdict.connection_limit == 15
    assert any(f.code == "client_limit_reached" for f in diagnosis.findings)


def _proxied(steps: list[Step]) -> PathResult:
    stage = StageResult(name="capacity", started_at=0.0, duration_s=5.0, steps=steps)
    return PathResult(name="via-proxy", url="ws://127.0.0.1:2/", stages=[stage])


@pytest.mark.parametrize(
    ("direct", "hop"),
    [
        (
            [ramp_step(10, 10), ramp_step(20, 20), ramp_step(50, 50)],
            "proxy",
        ),  # the direct path held more
        ([ramp_step(10, 10), ramp_step(20, 15, {"http_503": 5})], "server"),  # it failed there too
        (None, None),  # only the proxied path: not placed, and the evidence says why
    ],
)
def test_rule_limit_through_a_proxy_is_placed_by_comparison(
    direct: list[Step] | None, hop: str | None
) -> None:
    observations = _observations(direct or [])
    observations.paths = [
        *(observations.paths if direct else []),
        _proxied([ramp_step(10, 10), ramp_step(20, 15, {"http_503": 5})]),
    ]
    diagnosis = diagnosed(observations)
    assert (diagnosis.verdict.culprit, diagnosis.verdict.hop) == ("server_limits", hop)
    unplaced = [line for f in diagnosis.findings for line in f.evidence if "not placed" in line]
    assert bool(unplaced) == (hop is None)
