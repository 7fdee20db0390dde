"""Ctrl-C and SIGTERM sent to real wsdoctor processes during each stage.

Each run must stop promptly, write the partial report to ``--json PATH`` (valid, marked
``interrupted``), exit 130 (SIGINT) or 143 (SIGTERM), and call the verdict inconclusive unless
the evidence gathered so far already decides it. Which stage a run is in is read from the lab's
own counters (connections that reached it, faults it fired), not guessed from the clock.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from hostile import hold, in_thread, raw_server
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wsdoctor.lab import FaultConfig, FaultProxy
from wsdoctor.observations import ConnectionRecord
from wsdoctor.plan import ConnectOptions, PathSpec
from wsdoctor.probes.connection import open_probe_connection
from wsdoctor.report.json_report import validate_report

HOST = "127.0.0.1"
EXIT_FOR = {signal.SIGINT: 130, signal.SIGTERM: 143}
REACH_S = 20.0  # how long a run may take to reach the stage under test
STOP_S = 20.0  # how long it may take to stop, render and write once signalled
BOTH = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    """A real `python -m wsdoctor serve` process on a free port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "serve", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r":(\d+)/", line)
    assert found, line
    yield int(found.group(1))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0


@contextmanager
def fault_proxy(upstream_port: int, **faults: object) -> Iterator[FaultProxy]:
    """The fault proxy in front of a server, on a loop in a thread; its counters are live."""
    running: list[FaultProxy] = []

    @asynccontextmanager
    async def serve() -> AsyncIterator[int]:
        async with FaultProxy(FaultConfig(HOST, upstream_port, **faults)) as proxy:  # type: ignore[arg-type]
            running.append(proxy)
            yield proxy.port

    with in_thread(serve):
        yield running[0]


@contextmanager
def silent_listener() -> Iterator[tuple[int, threading.Event]]:
    """A TCP server that accepts and never answers; the event is set once someone connects."""
    arrived = threading.Event()

    async def behaviour(reader, writer) -> None:  # noqa: ANN001
        arrived.set()
        await hold(reader)

    with raw_server(behaviour) as port:
        yield port, arrived


@contextmanager
def recording_server(reply_delay_s: float) -> Iterator[tuple[int, list[int | None]]]:
    """A slow echo server; lists, per finished connection, the close code the client sent
    (None: the connection ended without a close frame)."""
    codes: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                await asyncio.sleep(reply_delay_s)
                await ws.send(message)
        except ConnectionClosed:
            pass
        received = ws.protocol.close_rcvd
        codes.append(received.code if received else None)

    @asynccontextmanager
    async def run() -> AsyncIterator[int]:
        async with serve(handler, HOST, 0, ping_interval=None) as server:
            yield server.sockets[0].getsockname()[1]

    with in_thread(run) as port:
        yield port, codes


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    """Poll ``condition`` until true; fail if the run ends or takes too long to get there."""
    deadline = time.monotonic() + REACH_S
    while not condition():
        assert process.poll() is None, f"ended before the stage: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "the run never reached the stage"
        time.sleep(0.02)


def interrupt(process: subprocess.Popen[str], signum: int, report: Path) -> dict:
    """Send ``signum``; check the exit code and stderr; return the validated partial report."""
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=STOP_S)
    assert process.returncode == EXIT_FOR[signum], stderr
    assert "Traceback" not in stderr
    data = json.loads(report.read_text())
    validate_report(data)
    assert data["interrupted"] is True
    return data


def stage_names(data: dict, path: int = 0) -> list[str]:
    return [stage["name"] for stage in data["paths"][path]["stages"]]


@BOTH
def test_handshake_stage_against_a_server_that_never_answers(signum: int, tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    with silent_listener() as (port, arrived):
        process = start(
            "probe", f"ws://{HOST}:{port}/", "--open-timeout", "60", "--json", str(report)
        )
        wait_for(arrived.is_set, process)
        data = interrupt(process, signum, report)
    assert data["verdict"]["status"] == "inconclusive"
    assert data["verdict"]["culprit"] == "none"
    # The unfinished handshake is no evidence of a timeout: it is left out, not called one.
    assert all(
        c["handshake"]["failure"] is None or c["handshake"]["failure"]["reason"] != "timeout"
        for p in data["paths"]
        for s in p["stages"]
        for c in s["connections"]
    )


def test_echo_stage(server_port: int, tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    # 150 ms each way stretches the echo stage (20 pings, 10 echoes) to several seconds.
    with fault_proxy(server_port, latency_ms=150) as proxy:
        process = start(
            "probe", f"ws://{HOST}:{proxy.port}/", "--max-idle", "60", "--json", str(report)
        )
        wait_for(lambda: proxy.connections_accepted >= 2, process)  # handshake, then echo
        time.sleep(0.5)
        data = interrupt(process, signal.SIGTERM, report)
    assert stage_names(data) == ["handshake", "echo"]
    assert data["paths"][0]["stages"][0]["connections"][0]["handshake"]["ok"] is True
    echo = data["paths"][0]["stages"][1]
    assert echo["interrupted"] is True
    assert echo["connections"][0]["ending"]["kind"] == "local"  # closed by the probe, cleanly
    assert data["verdict"]["status"] == "inconclusive"


def test_idle_stage(server_port: int, tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    with fault_proxy(server_port) as proxy:
        process = start(
            "probe", f"ws://{HOST}:{proxy.port}/", "--max-idle", "60", "--json", str(report)
        )
        wait_for(lambda: proxy.active_connections >= 6, process)  # the idle ladder is open
        time.sleep(1.0)
        data = interrupt(process, signal.SIGINT, report)
    idle = next(s for s in data["paths"][0]["stages"] if s["name"] == "idle")
    assert idle["interrupted"] is True
    assert {"handshake", "echo", "idle", "heartbeat"} <= set(stage_names(data))
    assert data["verdict"]["status"] == "inconclusive"
    assert data["verdict"]["culprit"] == "none"


def test_a_drop_timed_before_the_signal_still_decides(server_port: int, tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    with fault_proxy(server_port, idle_timeout_s=3.0, idle_action="fin") as proxy:
        process = start(
            "probe", f"ws://{HOST}:{proxy.port}/", "--max-idle", "60", "--json", str(report)
        )
        # Two idle connections cut at 3 s time the drop; the stage would go on for its keepers.
        wait_for(lambda: proxy.faults_fired.get("idle_fin", 0) >= 2, process)
        data = interrupt(process, signal.SIGTERM, report)
    verdict = data["verdict"]
    assert verdict["status"] == "problem", verdict
    assert verdict["culprit"] == "proxy_idle_timeout"
    assert abs(verdict["idle_timeout_s"] - 3.0) <= 0.5


def test_echo_connection_is_closed_with_a_close_frame(tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    with recording_server(reply_delay_s=0.3) as (port, codes):
        process = start("probe", f"ws://{HOST}:{port}/", "--max-idle", "60", "--json", str(report))
        wait_for(lambda: len(codes) >= 1, process)  # the handshake connection came and went
        time.sleep(1.0)  # the echo connection is sampling: pings, then slow echoes
        interrupt(process, signal.SIGINT, report)
        deadline = time.monotonic() + 5.0
        while len(codes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(codes) == 2
    assert None not in codes, codes


@BOTH
def test_compare_during_idle(signum: int, server_port: int, tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    with fault_proxy(server_port) as proxy:
        process = start(
            "compare",
            "--direct",
            f"ws://{HOST}:{server_port}/",
            "--via-proxy",
            f"ws://{HOST}:{proxy.port}/",
            "--max-idle",
            "60",
            "--json",
            str(report),
        )
        wait_for(lambda: proxy.active_connections >= 6, process)
        time.sleep(0.5)
        data = interrupt(process, signum, report)
    assert [p["name"] for p in data["paths"]] == ["direct", "via-proxy"]
    assert "idle" in stage_names(data, 0)
    assert stage_names(data, 1)[:2] == ["handshake", "echo"]
    assert data["verdict"]["status"] == "inconclusive"


def test_compare_keeps_every_paths_idle_stage(server_port: int, tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    # 100 ms each way makes closing the proxied path's connections slower than the direct's.
    with fault_proxy(server_port, latency_ms=100) as proxy:
        process = start(
            "compare",
            "--direct",
            f"ws://{HOST}:{server_port}/",
            "--via-proxy",
            f"ws://{HOST}:{proxy.port}/",
            "--max-idle",
            "60",
            "--stages",
            "handshake,echo,idle,heartbeat",
            "--json",
            str(report),
        )
        wait_for(lambda: proxy.active_connections >= 6, process)
        time.sleep(0.5)
        data = interrupt(process, signal.SIGINT, report)
    assert "idle" in stage_names(data, 0)
    assert "idle" in stage_names(data, 1)


def test_capacity_during_the_ramp(server_port: int, tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    with fault_proxy(server_port) as proxy:
        process = start(
            "capacity",
            f"ws://{HOST}:{proxy.port}/",
            "--max-connections",
            "200",
            "--rate",
            "20",
            "--hold",
            "2",
            "--json",
            str(report),
        )
        wait_for(lambda: proxy.active_connections >= 5, process)
        data = interrupt(process, signal.SIGTERM, report)
    assert data["verdict"]["status"] == "inconclusive"
    assert data["verdict"]["culprit"] == "none"


def test_a_record_frozen_just_before_a_late_ping_stays_valid(server_port: int) -> None:
    # idle.py freezes stage_end, then cancels the rungs: one may ping in between.
    async def main() -> ConnectionRecord:
        path = PathSpec("direct", f"ws://{HOST}:{server_port}/")
        options = ConnectOptions(open_timeout_s=5.0)
        probe = await open_probe_connection(path, options, "rung-1", "rung", time.monotonic())
        frozen = time.monotonic()
        await asyncio.sleep(0.01)
        await probe.ping(2.0)
        record = probe.record(frozen)
        await probe.close()
        return record

    ending = asyncio.run(main()).ending
    assert ending.idle_s >= 0, ending
