"""How fast the capacity probe opens connections, and what each idle one costs the client.

Run: python benchmarks/capacity.py [CONNECTIONS]
Opens CONNECTIONS (default 2,000) connections to a `wsdoctor serve` process on loopback with
the capacity stage's own opener (no rate cap, at most 100 handshakes in flight), then reports
connections opened per second and the client's resident memory per idle connection (RSS delta
divided by connections). Goal: at least 1,000 connections per second, at most 50 KiB each.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time

from wsdoctor.demo import free_port
from wsdoctor.observations import StageResult
from wsdoctor.plan import ConnectOptions, PathSpec
from wsdoctor.probes.capacity import CapacityPlan, CapacityRun, raise_fd_limit
from wsdoctor.status import PathStatus

DEFAULT_CONNECTIONS = 2000
READY_TIMEOUT_S = 10.0


def rss_kib() -> int:
    """This process's resident set size in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
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


async def measure(port: int, count: int) -> tuple[float, float, int]:
    """Open ``count`` connections; return (connections per second, KiB each, failures)."""
    path = PathSpec("direct", f"ws://127.0.0.1:{port}/")
    stage = StageResult(name="capacity", started_at=0.0, duration_s=0.0)
    plan = CapacityPlan(max_connections=count, rate_per_s=1e9)
    run = CapacityRun(path, ConnectOptions(), plan, time.monotonic(), stage, PathStatus())
    warm = await run.open_paced(1)
    run.pool.extend(p for p in warm if not isinstance(p, str))
    await run.close_all()
    before = rss_kib()
    began = time.monotonic()
    outcomes = await run.open_paced(count)
    elapsed = time.monotonic() - began
    opened = [o for o in outcomes if not isinstance(o, str)]
    run.pool.extend(opened)
    await asyncio.sleep(0.5)  # idle: nothing in flight
    per_connection = (rss_kib() - before) / max(1, len(opened))
    await run.close_all()
    return len(opened) / elapsed, per_connection, count - len(opened)


def main() -> None:
    """Print connections per second and KiB per idle connection against the goals."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CONNECTIONS
    raise_fd_limit()
    with tempfile.TemporaryFile() as log:
        server, port = start_server(log)
        try:
            rate, kib, failed = asyncio.run(measure(port, count))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"connections           {count} ({failed} failed)")
    print(f"opened per second     {rate:8.0f}   (goal >= 1000)")
    print(f"client KiB per idle   {kib:8.1f}   (goal <= 50)")


if __name__ == "__main__":
    main()
