"""How fast each capacity engine opens connections, and what each idle one costs the client.

Run: python benchmarks/capacity.py [CONNECTIONS]
Against a `wsdoctor serve` process on loopback, both engines run the real capacity ramp (levels
10, 20, 50 ... up to CONNECTIONS, default 2,000; no rate cap; at most 100 handshakes in flight,
shared by the Locust workers): the asyncio engine in this process, and the Locust engine with
1, 2 and 4 local workers (needs wsdoctor[locust]). Connections per second are the last level's:
its new connections over its time with the hold taken off (the check of every held connection
stays in, as a ramp pays it). Memory per idle connection is the client's peak resident memory
during the ramp over its resident memory before it (this process; or the workers' processes
once they are ready), divided by connections held. Rates are the median of three runs.

Goal: at least 1,000 connections per second and at most 50 KiB each; and on one machine
`--engine locust --workers 2` opens connections at least as fast as the asyncio engine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time

from wsdoctor.demo import free_port
from wsdoctor.observations import Observations
from wsdoctor.plan import ConnectOptions, PathSpec
from wsdoctor.probes.capacity import CapacityPlan, raise_fd_limit, ramp_levels, run_capacity
from wsdoctor.status import RunStatus

DEFAULT_CONNECTIONS = 2000
READY_TIMEOUT_S = 10.0
LOCUST_WORKERS = (1, 2, 4)
HOLD_S = 1.0
SAMPLE_S = 0.05
REPEATS = 3


def rss_kib(pid: str | int = "self") -> int:
    """A process's resident set size in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1])


def start_server(log: object) -> tuple[subprocess.Popen[bytes], int]:
    """A `wsdoctor serve` process on a free loopback port, once it listens."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "serve", "--port", str(port)], stderr=log
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("wsdoctor serve did not start listening")


async def measure(port: int, count: int, workers: int | None) -> tuple[float, float, int]:
    """Ramp to ``count``: (connections per second, KiB each, failures).

    ``workers`` None is the asyncio engine (memory: this process), else the Locust engine with
    that many local workers (memory: the workers' processes).
    """
    from wsdoctor.loadgen.engine import LocustRamp, LocustSettings

    path = PathSpec("direct", f"ws://127.0.0.1:{port}/")
    plan = CapacityPlan(max_connections=count, rate_per_s=1e5, hold_s=HOLD_S)
    status = RunStatus()
    ramp = None
    if workers is not None:
        ramp = LocustRamp(LocustSettings(workers=workers), path, ConnectOptions(), plan, status)
    observations = Observations(started_at="", duration_s=0.0)
    baseline: list[int] = [rss_kib()] if ramp is None else []
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            if ramp is None:
                peak = max(peak, rss_kib())
            else:
                total = sum(rss_kib(w.pid) for w in ramp.workers)
                ready = sum(name.startswith("worker ") for name in status.paths)
                if not baseline and ready == workers:
                    baseline.append(total)
                peak = max(peak, total)
            await asyncio.sleep(SAMPLE_S)

    sampler = asyncio.create_task(sample())
    try:
        await run_capacity(path, ConnectOptions(), plan, status, observations, ramp)
    finally:
        sampler.cancel()
    if ramp is not None and ramp.error:
        raise SystemExit(f"locust engine: {ramp.error}")
    stage = observations.paths[0].stage("capacity")
    assert stage is not None
    last = [s for s in stage.steps if s.phase == "ramp"][-1]
    levels = ramp_levels(count)
    new = levels[-1] - (levels[-2] if len(levels) > 1 else 0)
    rate = new / max(1e-3, last.elapsed_s - HOLD_S)
    per_connection = (peak - (baseline[0] if baseline else peak)) / max(1, last.answered)
    return rate, per_connection, last.failed


def median_of(port: int, count: int, workers: int | None) -> tuple[float, float, int]:
    """The median rate of ``REPEATS`` runs (the machine is shared: rates are noisy), the
    largest memory figure (this process keeps what its first run allocated: later runs of the
    asyncio engine grow little), and every failure."""
    runs = [asyncio.run(measure(port, count, workers)) for _ in range(REPEATS)]
    rates = sorted(rate for rate, _, _ in runs)
    return rates[len(rates) // 2], max(kib for _, kib, _ in runs), sum(f for _, _, f in runs)


def main() -> None:
    """Print a table: each engine's connections per second and KiB per idle connection."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CONNECTIONS
    raise_fd_limit()
    rows: list[tuple[str, float, float, int]] = []
    with tempfile.TemporaryFile() as log:
        server, port = start_server(log)
        try:
            rows.append(("asyncio", *median_of(port, count, None)))
            if importlib.util.find_spec("locust") is None:
                print("locust is not installed: pip install 'wsdoctor[locust]'", file=sys.stderr)
            else:
                for workers in LOCUST_WORKERS:
                    figures = median_of(port, count, workers)
                    rows.append((f"locust, {workers} worker{'s' * (workers > 1)}", *figures))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"{count} connections to wsdoctor serve on loopback (goal: >= 1000/s, <= 50 KiB each)")
    print(f"{'engine':<20} {'opened per second':>18} {'client KiB each':>16} {'failed':>7}")
    for name, rate, kib, failed in rows:
        print(f"{name:<20} {rate:>18.0f} {kib:>16.1f} {failed:>7}")


if __name__ == "__main__":
    main()
