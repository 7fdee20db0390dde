"""`wsdoctor capacity --engine locust`: a real Locust master and real worker processes against
real `wsdoctor serve` processes on loopback.

The Locust engine must reach the verdict the asyncio engine reaches (same culprit, same limit
within 10 %), say healthy when the server holds the maximum, and never blame the server for a
worker it lost. Skipped without Locust, except in CI (WSDOCTOR_REQUIRE_LAB=1), where it fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from labkit import json_report, run_cli
from test_capacity import SERVER_FD_LIMIT, serve_process, within_10_percent

from wsdoctor.demo import free_port
from wsdoctor.loadgen.wsclient import ClientOptions, open_client
from wsdoctor.observations import Ending
from wsdoctor.plan import ConnectOptions, PathSpec
from wsdoctor.probes.connection import open_probe_connection
from wsdoctor.server import ServeOptions, running_server

WORKER_MODULE = "wsdoctor.loadgen.worker"
QUIT_WAIT_S = 5.0
"""How soon workers started elsewhere must have quit once the master's run is over."""


@pytest.fixture(autouse=True)
def _locust_installed() -> None:
    if importlib.util.find_spec("locust") is None:
        if os.environ.get("WSDOCTOR_REQUIRE_LAB") == "1":
            pytest.fail("locust is required in CI (WSDOCTOR_REQUIRE_LAB=1) but not installed")
        pytest.skip("locust is not installed (pip install 'wsdoctor[locust]')")


def capacity(port: int, *args: str, engine: str = "locust") -> dict:
    """Run `wsdoctor capacity` on ``port``; its JSON report (the exit code checked against it)."""
    extra = ["--engine", "locust", "--workers", "2"] if engine == "locust" else []
    result = run_cli(
        "capacity", f"ws://127.0.0.1:{port}/", *extra, *args, "--json", "-", timeout=90
    )
    report = json_report(result)
    expected = {"healthy": 0, "problem": 1, "inconclusive": 3}[report["verdict"]["status"]]
    assert result.returncode == expected, result.stderr
    return report


def ramp(report: dict) -> list[dict]:
    stage = next(s for s in report["paths"][0]["stages"] if s["name"] == "capacity")
    return [s for s in stage["steps"] if s["phase"] == "ramp"]


def test_connection_limit_is_the_asyncio_engines() -> None:
    with serve_process("--max-connections", "30") as (port, _):
        by_locust = capacity(port, "--max-connections", "60", "--hold", "0.3")
        by_asyncio = capacity(port, "--max-connections", "60", "--hold", "0.3", engine="asyncio")
    for verdict in (by_locust["verdict"], by_asyncio["verdict"]):
        assert (verdict["culprit"], verdict["hop"]) == ("server_limits", "server")
        assert within_10_percent(verdict["connection_limit"], 30), verdict
    failing = next(s for s in ramp(by_locust) if not s["ok"])
    assert set(failing["failures"]) == {"http_503"}
    assert failing["status"] == 503
    notes = next(s for s in by_locust["paths"][0]["stages"] if s["name"] == "capacity")["notes"]
    assert sum("worker " in note and "locust" in note for note in notes) == 2, notes


def test_server_out_of_descriptors() -> None:
    with serve_process(fd_limit=SERVER_FD_LIMIT) as (port, pid):
        truth = SERVER_FD_LIMIT - len(os.listdir(f"/proc/{pid}/fd"))
        report = capacity(port, "--max-connections", "100", "--hold", "0.3", "--open-timeout", "2")
    verdict = report["verdict"]
    assert (verdict["culprit"], verdict["hop"]) == ("server_limits", "server")
    assert within_10_percent(verdict["connection_limit"], truth), (verdict, truth)
    failing = next(s for s in ramp(report) if not s["ok"])
    assert set(failing["failures"]) <= {"timeout", "refused", "reset"}, failing["failures"]


def test_healthy_up_to_the_maximum() -> None:
    with serve_process() as (port, _):
        report = capacity(port, "--max-connections", "25", "--hold", "0.2")
    assert (report["verdict"]["status"], report["verdict"]["culprit"]) == ("healthy", "none")
    steps = ramp(report)
    assert [s["value"] for s in steps] == [10, 20, 25]
    assert all(s["ok"] and s["answered"] == s["value"] for s in steps)


@pytest.mark.parametrize("close", ["frame", "fin", "rst"])
def test_both_transports_classify_an_ending_alike(close: str) -> None:
    """The gevent engine's Sans-I/O client (here on a thread: nothing in it needs gevent) and
    the asyncio probe, cut by the same server at 0.3 s of age, end the same way."""

    async def both() -> tuple[Ending, Ending]:
        options = ServeOptions(port=0, max_age_s=0.3, max_age_close=close)
        async with running_server(options) as port:
            url = f"ws://127.0.0.1:{port}/"
            probe = await open_probe_connection(
                PathSpec("direct", url), ConnectOptions(), "parity", "sentinel", 0.0
            )
            sync = asyncio.to_thread(lambda: open_client(ClientOptions(url=url)).serve())
            ending = await asyncio.wait_for(sync, 10)
            await asyncio.wait_for(probe.conn.wait_closed(), 10)
            return probe.ending(), ending

    by_asyncio, by_sans_io = asyncio.run(both())
    assert by_sans_io.kind == by_asyncio.kind
    assert (by_sans_io.code, by_sans_io.initiator) == (by_asyncio.code, by_asyncio.initiator)
    assert by_sans_io.kind == {"frame": "close_frame", "fin": "eof", "rst": "reset"}[close]
    assert abs(by_sans_io.age_s - by_asyncio.age_s) < 0.3


def _workers_of(parent: int) -> list[int]:
    """The pids of the Locust worker processes ``parent`` started."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and WORKER_MODULE.encode() in command:
            found.append(int(entry))
    return found


def test_a_worker_killed_mid_ramp_is_inconclusive_never_a_limit() -> None:
    with serve_process() as (port, _):
        process = subprocess.Popen(
            [sys.executable, "-m", "wsdoctor", "capacity", f"ws://127.0.0.1:{port}/"]
            + ["--engine", "locust", "--workers", "2", "--max-connections", "400"]
            + ["--rate", "40", "--hold", "0.5", "--json", "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            deadline = time.monotonic() + 30
            while len(_workers_of(process.pid)) < 2:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.1)
            time.sleep(3.0)  # workers arrived; the ramp is climbing at 40 connections a second
            os.kill(_workers_of(process.pid)[0], signal.SIGKILL)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 3, err
    report = json_report(subprocess.CompletedProcess([], 3, out, err))
    verdict = report["verdict"]
    assert verdict["status"] == "inconclusive"
    assert verdict["culprit"] == "none" and verdict["connection_limit"] is None, verdict
    assert "lost" in verdict["summary"] and "worker" in verdict["summary"]
    assert any(f["code"] == "load_engine_failed" for f in report["findings"])
    assert all(s["ok"] for s in ramp(report))
    assert [line for line in err.splitlines() if "error:" in line] == [
        line for line in err.splitlines() if "wsdoctor: error: lost local worker" in line
    ]


def test_workers_that_never_arrive_are_one_line_and_inconclusive() -> None:
    with serve_process() as (port, _):
        result = run_cli(
            "capacity",
            f"ws://127.0.0.1:{port}/",
            "--engine",
            "locust",
            "--master-bind",
            f"127.0.0.1:{free_port()}",
            "--expect-workers",
            "1",
            "--wait-workers",
            "1",
            "--json",
            "-",
            timeout=60,
        )
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == ["wsdoctor: error: 0 of 1 workers arrived within 1 s"], result.stderr
    assert json_report(result)["verdict"]["status"] == "inconclusive"


def _remote_ramp(
    port: int,
    *workers: list[str],
    cwd: str | None = None,
    options: tuple[str, ...] = ("--max-connections", "30", "--hold", "0.2"),
    during: Callable[[subprocess.Popen, list[subprocess.Popen]], None] | None = None,
) -> tuple[dict, str]:
    """`capacity --master-bind` waiting for workers started apart with ``workers`` (commands
    after ``python -m``, run in ``cwd``) and ramp ``options``, ``during(capacity, workers)``
    called once they are started: the JSON report and standard error. Workers elsewhere must
    quit by themselves when the run is over."""
    master = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "capacity", f"ws://127.0.0.1:{port}/"]
        + ["--engine", "locust", "--master-bind", master, "--expect-workers", str(len(workers))]
        + [*options, "--wait-workers", "20", "--json", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    started = [
        subprocess.Popen(
            [sys.executable, "-m", *command, "--master", master]
            if command[0] == "wsdoctor"
            else [sys.executable, "-m", *command, master],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
        )
        for command in workers
    ]
    try:
        if during is not None:
            during(process, started)
        out, err = process.communicate(timeout=60)
        deadline = time.monotonic() + QUIT_WAIT_S
        while any(w.poll() is None for w in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        lingering = [w.pid for w in started if w.poll() is None]
    finally:
        process.kill()
        for worker in started:
            worker.kill()
            worker.wait()
    assert out.strip(), f"no report (exit {process.returncode}): {err}"
    assert not lingering, "workers elsewhere were not told to quit"
    return json_report(subprocess.CompletedProcess([], process.returncode, out, err)), err


def test_workers_started_elsewhere_give_one_verdict() -> None:
    with serve_process("--max-connections", "12") as (port, _):
        report, err = _remote_ramp(
            port, ["wsdoctor", "capacity-worker"], ["wsdoctor", "capacity-worker"]
        )
    verdict = report["verdict"]
    assert (verdict["culprit"], verdict["hop"]) == ("server_limits", "server"), err
    assert within_10_percent(verdict["connection_limit"], 12), verdict


def test_a_worker_elsewhere_lost_mid_ramp_is_inconclusive() -> None:
    def kill_one(_: subprocess.Popen, workers: list[subprocess.Popen]) -> None:
        time.sleep(4.0)  # they arrived; the ramp is climbing at 40 connections a second
        workers[0].kill()

    with serve_process() as (port, _):
        report, err = _remote_ramp(
            port,
            ["wsdoctor", "capacity-worker"],
            ["wsdoctor", "capacity-worker"],
            options=("--max-connections", "400", "--rate", "40", "--hold", "0.5"),
            during=kill_one,
        )
    verdict = report["verdict"]
    assert verdict["status"] == "inconclusive", err
    assert verdict["culprit"] == "none" and verdict["connection_limit"] is None, verdict
    assert any(f["code"] == "load_engine_failed" for f in report["findings"])
    assert all(s["ok"] for s in ramp(report))
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "lost worker" in errors[0], err


def test_the_run_budget_ends_the_master_and_every_worker() -> None:
    """One local worker and one started elsewhere; the budget cuts the ramp: the local one is
    stopped, the other told to quit (checked by ``_remote_ramp``)."""
    local: list[int] = []

    def note_local(capacity: subprocess.Popen, _: list[subprocess.Popen]) -> None:
        deadline = time.monotonic() + 30
        while not (found := _workers_of(capacity.pid)):
            assert time.monotonic() < deadline, "the local worker did not start"
            time.sleep(0.1)
        local.extend(found)

    with serve_process() as (port, _):
        report, _ = _remote_ramp(
            port,
            ["wsdoctor", "capacity-worker"],
            options=(
                "--workers",
                "1",
                "--max-connections",
                "400",
                "--rate",
                "20",
                "--max-time",
                "5",
            ),
            during=note_local,
        )
    assert any(f["code"] == "run_budget_exceeded" for f in report["findings"])
    assert report["verdict"]["culprit"] == "none"
    assert local and not [pid for pid in local if os.path.exists(f"/proc/{pid}")]


def test_a_worker_of_another_version_is_refused_by_name(tmp_path) -> None:  # noqa: ANN001
    """A worker run from a copy of the package that says it is another version."""
    import shutil

    import wsdoctor

    other = tmp_path / "wsdoctor"
    shutil.copytree(os.path.dirname(wsdoctor.__file__), other)
    init = other / "__init__.py"
    init.write_text(init.read_text().replace(wsdoctor.__version__, "0.0.0-other"))
    with serve_process() as (port, _):
        report, err = _remote_ramp(port, [WORKER_MODULE], cwd=str(tmp_path))
    assert report["verdict"]["status"] == "inconclusive"
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "runs wsdoctor 0.0.0-other" in errors[0], err
    assert f"this master runs {wsdoctor.__version__}" in errors[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--engine", "threads"], "--engine must be one of asyncio, locust"),
        (["--workers", "2"], "need --engine locust"),
        (["--engine", "locust", "--storm"], "--storm is not available"),
        (["--engine", "locust", "--expect-workers", "2"], "needs --master-bind"),
        (["--engine", "locust", "--master-bind", "nowhere"], "--master-bind must be HOST:PORT"),
        (["--engine", "locust", "--workers", "0"], "at least one worker"),
    ],
)
def test_bad_engine_options_are_one_line_errors(args: list[str], words: str) -> None:
    result = run_cli("capacity", "ws://127.0.0.1:9/", *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_capacity_worker_needs_a_host_and_port() -> None:
    result = run_cli("capacity-worker", "--master", "localhost")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--master must be HOST:PORT" in lines[0], result.stderr
