"""Time to verdict for idle timeouts behind the fault proxy, against the naive sequential ladder.

The naive figure counts only the ladder's idle waits (no handshake or RTT stage), so it is a
lower bound on what the sequential design costs; wsdoctor's figure is the whole run.

Run: python benchmarks/time_to_verdict.py  (loopback only; about a minute)
Goal: time to verdict <= 1.2 x T + 5 s, measured T within max(0.5 s, 5 %).
"""

from __future__ import annotations

import asyncio
import time

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.lab import FaultConfig, FaultProxy
from wsdoctor.observations import Observations
from wsdoctor.plan import IdlePlan, PathSpec, Plan
from wsdoctor.probes.runner import run_plan
from wsdoctor.server import ServeOptions, running_server
from wsdoctor.status import RunStatus

CASES = ((3.0, "fin"), (6.0, "fin"), (12.0, "fin"), (6.0, "rst"), (6.0, "silent"))
NAIVE_LADDER = (5, 10, 20, 40, 80, 160, 320, 640)
MAX_IDLE_S = 60.0


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


def main() -> None:
    """Print one row per case and whether the goal was met."""
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


if __name__ == "__main__":
    main()
