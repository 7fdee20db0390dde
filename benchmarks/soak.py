"""Soak: run wsdoctor many times in a row against real proxies, the way a CI job runs it.

Each run is a separate process with stdout and stderr piped, stdin from /dev/null and its own
session (``start_new_session``), as a CI runner starts it. A run that outlives its budget by
``--kill-after`` seconds is a hang: its process group is killed and counted. The scenarios are
the real-proxy ones the tests use (``tests/realproxies.py``): nginx and HAProxy as reverse
proxies (``compare``), tinyproxy and Dante as forward proxies (``probe --proxy``), and the
healthy server alone (``probe``), with short proxy timeouts and ``--max-idle 4``.

Run: python benchmarks/soak.py [--runs 100] [--scenarios nginx,haproxy,tinyproxy,healthy]
Goal: 0 hangs in 400 runs (issue 16). Prints one line per run and a summary per scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PROXY_TIMEOUT_S = 2.0
MAX_IDLE_S = 4.0
DEFAULT_RUNS = 100
DEFAULT_MAX_TIME_S = 60.0
KILL_AFTER_S = 30.0
KEEP = Path(os.environ.get("WSDOCTOR_SOAK_KEEP", "/tmp/wsdoctor-soak-cuts"))
"""Where the report, stack dump and stderr of a run cut by its budget are kept."""
BUDGET_LINE = re.compile(r"run budget ([0-9.]+) s")


@dataclass
class Result:
    """One run: how it ended and how long it took."""

    seconds: float
    code: int | None  # None: killed as a hang
    cut: bool = False  # the run budget fired (finding run_budget_exceeded)
    budget_s: float | None = None
    note: str = ""


@dataclass
class Scenario:
    """A named lab and the command line to run against it."""

    name: str
    lab: Callable[[Path, int], AbstractAsyncContextManager[list[str]]]
    results: list[Result] = field(default_factory=list)


@asynccontextmanager
async def _backend() -> AsyncIterator[int]:
    """``wsdoctor serve`` in-process on a free loopback port."""
    from wsdoctor.demo import free_port
    from wsdoctor.server import ServeOptions, running_server

    port = free_port()
    async with running_server(ServeOptions(host="127.0.0.1", port=port)):
        yield port


def _through(factory_name: str, forward: bool, **timeouts: float) -> Callable[..., Any]:
    """A lab with one real proxy: ``compare`` through a reverse one, ``probe --proxy`` else."""

    @asynccontextmanager
    async def lab(tmp: Path, backend: int) -> AsyncIterator[list[str]]:
        import realproxies

        direct = f"ws://127.0.0.1:{backend}/"
        async with getattr(realproxies, factory_name)(tmp, backend, **timeouts) as proxy:
            if forward:
                yield ["probe", direct, "--proxy", proxy.url]
            else:
                yield ["compare", "--direct", direct, "--via-proxy", proxy.url]

    return lab


@asynccontextmanager
async def _healthy(tmp: Path, backend: int) -> AsyncIterator[list[str]]:
    yield ["probe", f"ws://127.0.0.1:{backend}/"]


SCENARIOS: dict[str, Callable[..., Any]] = {
    "nginx": _through("nginx", False, read_timeout_s=PROXY_TIMEOUT_S),
    "haproxy": _through("haproxy", False, tunnel_timeout_s=PROXY_TIMEOUT_S),
    "tinyproxy": _through("tinyproxy", True, timeout_s=PROXY_TIMEOUT_S),
    "dante": _through("dante", True, io_timeout_s=PROXY_TIMEOUT_S),
    "healthy": _healthy,
}


async def _run_once(
    argv: list[str], report: Path, max_time_s: float, kill_after_s: float
) -> Result:
    """One CI-like run; a run still alive ``kill_after_s`` after its budget is a hang."""
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsdoctor",
        *argv,
        "--max-idle",
        f"{MAX_IDLE_S:g}",
        "--max-time",
        f"{max_time_s:g}",
        "--json",
        str(report),
        "--debug",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), max_time_s + kill_after_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return Result(time.monotonic() - began, None, note="killed: hang")
    seconds = time.monotonic() - began
    text = stderr.decode(errors="replace")
    match = BUDGET_LINE.search(text)
    result = Result(seconds, process.returncode, budget_s=float(match.group(1)) if match else None)
    try:
        written = json.loads(report.read_text())
        result.cut = any(f["code"] == "run_budget_exceeded" for f in written["findings"])
        notes = [n for p in written["paths"] for st in p["stages"] for n in st.get("notes", [])]
        if any("did not stop by its own deadline" in n for n in notes):
            result.note = "a stage was stopped by the runner's backstop"
    except (OSError, ValueError, KeyError):
        result.note = "no JSON report"
    if result.cut:
        KEEP.mkdir(parents=True, exist_ok=True)
        kept = KEEP / f"cut-{int(time.time() * 1000)}"
        report.rename(kept.with_suffix(".json"))
        with contextlib.suppress(OSError):
            Path(f"{report}.stacks.txt").rename(kept.with_suffix(".stacks.txt"))
        kept.with_suffix(".stderr.txt").write_text(text)
        result.note = f"cut by its budget; report, stacks and stderr kept as {kept}.*"
    return result


async def _soak(scenario: Scenario, runs: int, max_time_s: float, kill_after_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix=f"wsdoctor-soak-{scenario.name}-") as folder:
        tmp = Path(folder)
        async with _backend() as backend, scenario.lab(tmp, backend) as argv:
            for number in range(1, runs + 1):
                result = await _run_once(argv, tmp / "report.json", max_time_s, kill_after_s)
                scenario.results.append(result)
                code = "HANG" if result.code is None else result.code
                print(
                    f"{scenario.name} {number}/{runs}: exit {code} in {result.seconds:.1f} s "
                    f"(budget {result.budget_s} s) {result.note}",
                    flush=True,
                )


def summary(scenario: Scenario) -> str:
    """One line: runs, hangs, cuts, exit codes and the spread of run times."""
    results = scenario.results
    if not results:
        return f"{scenario.name}: no runs"
    times = sorted(r.seconds for r in results)
    codes = Counter("hang" if r.code is None else str(r.code) for r in results)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return (
        f"{scenario.name}: {len(results)} runs, {codes.get('hang', 0)} hangs, "
        f"{sum(r.cut for r in results)} cut by the budget, exit codes "
        + ", ".join(f"{code}: {count}" for code, count in sorted(codes.items()))
        + f"; seconds min {times[0]:.1f}, median {statistics.median(times):.1f}, "
        f"p95 {p95:.1f}, max {times[-1]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs per scenario")
    parser.add_argument(
        "--scenarios",
        default="nginx,haproxy,tinyproxy,healthy",
        help=f"comma-separated, of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=DEFAULT_MAX_TIME_S,
        help="--max-time given to each run (a hang then costs this, not the full budget)",
    )
    parser.add_argument(
        "--kill-after", type=float, default=KILL_AFTER_S, help="seconds past --max-time"
    )
    args = parser.parse_args()
    os.environ.setdefault("WSDOCTOR_REQUIRE_LAB", "1")
    chosen = [Scenario(name, SCENARIOS[name]) for name in args.scenarios.split(",")]
    began = time.monotonic()
    try:
        for scenario in chosen:
            asyncio.run(_soak(scenario, args.runs, args.max_time, args.kill_after))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    print(f"\nsoak: {time.monotonic() - began:.0f} s in all")
    for scenario in chosen:
        print(summary(scenario))
    total = [r for s in chosen for r in s.results]
    hangs = sum(r.code is None for r in total)
    print(f"all: {len(total)} runs, {hangs} hangs, {sum(r.cut for r in total)} cut by the budget")


if __name__ == "__main__":
    main()
