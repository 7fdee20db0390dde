"""Time to verdict on loopback, each figure next to an anchor measured in the same run.

Three parts (``--only quick,compare,idle``; all by default):

- quick: a handshake-only run (``--stages handshake``) against the reference server, next to
  the anchor of a bare ``websockets.connect`` and close in the same process. Goal: well under
  half a second whole-process (benchmarks/startup.py measures the process).
- compare: a default ``compare`` over two loopback paths (direct, and via the fault proxy with
  no fault), with ``--max-idle COMPARE_IDLE_S``: the whole run, the part after the idle stage
  (size and rate), as seconds over the idle stage and as a ratio to it. Goal: at most the idle
  stage + a few seconds.
- idle: idle timeouts behind the fault proxy, against the naive sequential ladder. The naive
  figure counts only the ladder's idle waits (no handshake or RTT stage), so it is a lower
  bound on what the sequential design costs; wsdoctor's figure is the whole run. Goal: time to
  verdict <= 1.2 x T + 5 s, measured T within max(0.5 s, 5 %).

Run: python benchmarks/time_to_verdict.py [--only PARTS]  (loopback only; about two minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.lab import FaultConfig, FaultProxy
from wsdoctor.observations import Observations
from wsdoctor.plan import IdlePlan, PathSpec, Plan, default_stages
from wsdoctor.probes.runner import run_plan
from wsdoctor.server import ServeOptions, running_server
from wsdoctor.status import RunStatus

CASES = ((3.0, "fin"), (6.0, "fin"), (12.0, "fin"), (6.0, "rst"), (6.0, "silent"))
NAIVE_LADDER = (5, 10, 20, 40, 80, 160, 320, 640)
MAX_IDLE_S = 60.0
QUICK_RUNS = 20
COMPARE_IDLE_S = 8.0
IDLE_STAGES = ("idle", "heartbeat", "stability")


def naive_ladder_cost(timeout_s: float, action: str) -> float:
    """Idle seconds the sequential ladder 5, 10, 20 ... s spends to measure the timeout.

    A FIN or RST is timed exactly by the first rung that outlasts the timeout. Silence only
    shows when a rung pings, so the bracket is then bisected, one idle wait per step, until
    its midpoint is within max(0.5 s, 5 %).
    """
    spent, low = 0.0, 0.0
    for rung in NAIVE_LADDER:
        if rung > timeout_s:
            if action != "silent":
                return spent + timeout_s
            spent, high = spent + rung, float(rung)
            while (high - low) / 2 > max(0.5, 0.05 * timeout_s):
                middle = (low + high) / 2
                spent += middle
                low, high = (middle, high) if middle < timeout_s else (low, middle)
            return spent
        spent, low = spent + rung, float(rung)
    return spent


async def _probe(timeout_s: float, action: str) -> tuple[float, float | None, str]:
    async with running_server(ServeOptions(port=0)) as port:
        config = FaultConfig("127.0.0.1", port, idle_timeout_s=timeout_s, idle_action=action)  # type: ignore[arg-type]
        async with FaultProxy(config) as proxy:
            plan = Plan(
                paths=(PathSpec("via-proxy", f"ws://127.0.0.1:{proxy.port}/"),),
                idle=IdlePlan(max_idle_s=MAX_IDLE_S),
            )
            observations = Observations(started_at="", duration_s=0.0)
            began = time.monotonic()
            await run_plan(plan, RunStatus(), observations)
            verdict = diagnose(observations).verdict
            return time.monotonic() - began, verdict.idle_timeout_s, verdict.culprit


async def _quick() -> tuple[float, float]:
    """Median seconds of a handshake-only run (and its diagnosis), and of a bare handshake."""
    from websockets.asyncio.client import connect

    async with running_server(ServeOptions(port=0)) as port:
        url = f"ws://127.0.0.1:{port}/"
        plan = Plan(paths=(PathSpec("direct", url),), stages=("handshake",))
        runs, bare = [], []
        for _ in range(QUICK_RUNS):
            began = time.monotonic()
            async with connect(url, ping_interval=None):
                pass
            bare.append(time.monotonic() - began)
            began = time.monotonic()
            observations = Observations(started_at="", duration_s=0.0)
            await run_plan(plan, RunStatus(), observations)
            diagnose(observations)
            runs.append(time.monotonic() - began)
        return statistics.median(runs), statistics.median(bare)


async def _compare() -> tuple[float, float, float]:
    """A default compare over two loopback paths: whole run, end of the idle part, load part."""
    async with running_server(ServeOptions(port=0)) as port:
        proxy = FaultProxy(FaultConfig("127.0.0.1", port))
        async with proxy:
            paths = (
                PathSpec("direct", f"ws://127.0.0.1:{port}/"),
                PathSpec("via-proxy", f"ws://127.0.0.1:{proxy.port}/"),
            )
            plan = Plan(
                paths=paths,
                idle=IdlePlan(max_idle_s=COMPARE_IDLE_S),
                stages=default_stages(paths),
            )
            observations = Observations(started_at="", duration_s=0.0)
            began = time.monotonic()
            await run_plan(plan, RunStatus(), observations)
            diagnose(observations)
            total = time.monotonic() - began
    stages = [s for p in observations.paths for s in p.stages]
    idle_end = max(s.started_at + s.duration_s for s in stages if s.name in IDLE_STAGES)
    load = [s for s in stages if s.name in ("size", "rate")]
    load_s = max(s.started_at + s.duration_s for s in load) - idle_end if load else 0.0
    return total, idle_end, load_s


def quick() -> None:
    """Print the handshake-only run next to a bare websockets handshake."""
    run_s, bare_s = asyncio.run(_quick())
    print(f"quick check (--stages handshake), median of {QUICK_RUNS}, in process")
    print(f"  bare websockets handshake  {bare_s * 1000:7.1f} ms  (anchor)")
    print(f"  wsdoctor handshake-only    {run_s * 1000:7.1f} ms  {run_s / bare_s:5.1f} x anchor")


def compare() -> None:
    """Print a default loopback compare: the whole run against its idle stage."""
    total, idle_end, load_s = asyncio.run(_compare())
    print(f"loopback compare, default stages, --max-idle {COMPARE_IDLE_S:g}")
    print(f"  until the idle stages end  {idle_end:7.1f} s  (anchor)")
    print(f"  size and rate after it     {load_s:7.1f} s")
    print(
        f"  whole run                  {total:7.1f} s  {total / idle_end:5.2f} x anchor, "
        f"idle + {total - idle_end:.1f} s"
    )


def idle() -> None:
    """Print one row per idle case and whether the goal was met."""
    print(
        f"{'T (s)':>6} {'fault':>6} {'verdict (s)':>11} {'/T':>5} {'goal (s)':>8} "
        f"{'measured':>8} {'error':>6} {'naive (s)':>9}  culprit"
    )
    met = True
    for timeout_s, action in CASES:
        elapsed, measured, culprit = asyncio.run(_probe(timeout_s, action))
        goal = 1.2 * timeout_s + 5
        error = abs(measured - timeout_s) if measured is not None else float("inf")
        ok = elapsed <= goal and error <= max(0.5, 0.05 * timeout_s)
        met &= ok
        print(
            f"{timeout_s:6.1f} {action:>6} {elapsed:11.1f} {elapsed / timeout_s:5.2f} {goal:8.1f} "
            f"{measured if measured is not None else float('nan'):8.2f} "
            f"{error / timeout_s:6.1%} {naive_ladder_cost(timeout_s, action):9.1f}  {culprit}"
            + ("" if ok else "  <- goal missed")
        )
    print("goal met" if met else "goal NOT met")


PARTS = {"quick": quick, "compare": compare, "idle": idle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(PARTS), help="comma-separated: " + ",".join(PARTS)
    )
    for name in parser.parse_args().only.split(","):
        PARTS[name.strip()]()


if __name__ == "__main__":
    main()
