"""How long a run may take at most: a budget computed from its plan, and what enforces it.

The budget is the sum of the worst case of every stage that runs one after another (each stage's
own timeouts), the longest of the stages that run side by side, and a margin. ``--max-time``
lowers it. A :class:`Watchdog` thread enforces it without relying on the event loop: at the
deadline it asks the loop to cancel the run, and if the run has not written its report within a
grace period, it writes the report itself and ends the process (see ``wsdoctor.execute``).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wsdoctor.exitcodes import EXIT_INCONCLUSIVE
from wsdoctor.plan import MAX_PING_TIMEOUT_S

MARGIN_S = 5.0
"""Added to every budget: start-up, diagnosis and a slow machine."""
MARGIN_RATIO = 0.1
"""And a tenth of the planned time on top."""
CLOSE_S = 2.0
"""Closing one connection (``probes.connection.CLOSE_TIMEOUT_S``)."""
STEP_S = 1.5
"""A step of the size or rate stage that passes: a round trip, settling, the echo grace."""
SLOWEST_BYTES_PER_S = 256 * 1024
"""The slowest link the size stage allows for (``probes.size.MIN_BYTES_PER_S``)."""
HTTP_FINGERPRINT_S = 5.0
"""The plain HTTP request beside the idle stage (``probes.http_probe.HTTP_TIMEOUT_S``)."""
HOST_BUDGET_S = 30.0
"""``wsdoctor host`` reads files under /proc: it never needs long."""
GRACE_S = 5.0
"""After the deadline: how long the run has to stop and write its report itself."""
EXIT_GRACE_S = 10.0
"""After the report is written: how long the process may take to exit before it is ended."""
MAX_TIME_LIMIT_S = 86400.0 * 365


@dataclass(frozen=True)
class Budget:
    """The longest a run may take: planned parts, a margin, and an optional ``--max-time``."""

    parts: tuple[tuple[str, float], ...]
    max_time_s: float | None = None

    @property
    def planned_s(self) -> float:
        """The sum of the parts."""
        return sum(seconds for _, seconds in self.parts)

    @property
    def margin_s(self) -> float:
        """Slack on top of the planned parts."""
        return MARGIN_S + MARGIN_RATIO * self.planned_s

    @property
    def total_s(self) -> float:
        """The deadline, in seconds from the start of the run."""
        planned = round(self.planned_s + self.margin_s, 1) if self.parts else math.inf
        return min(planned, self.max_time_s) if self.max_time_s is not None else planned

    def describe(self) -> str:
        """One line: the budget and how it was computed (printed with ``--debug``)."""
        terms = " + ".join(f"{name} {seconds:.1f}" for name, seconds in self.parts)
        line = f"run budget {self.total_s:.1f} s"
        if self.parts:
            line += f" = {terms} + margin {self.margin_s:.1f}"
        if self.max_time_s is not None and self.max_time_s <= self.planned_s + self.margin_s:
            line += f" (lowered by --max-time {self.max_time_s:g})"
        return line


def limited(parts: list[tuple[str, float]], max_time_s: float | None) -> Budget:
    """A budget of ``parts`` (zero parts dropped), lowered to ``max_time_s`` when given."""
    return Budget(tuple((n, round(s, 2)) for n, s in parts if s > 0), max_time_s)


def plan_budget(plan: Any, max_time_s: float | None = None) -> Budget:
    """The budget of a probe plan (``wsdoctor.plan.Plan``).

    Paths run side by side, so their stages count once; the size and rate stages run one path
    at a time, so they count once per path. Each stage counts its own worst case:

    - handshake: the open timeout and a close;
    - echo: the open timeout, every ping timing out, every echo reply timing out, and a close;
    - beside each other: idle (``max_idle + ping timeout + open timeout``, then closes),
      stability (its duration, an open, a ping timeout) and the plain HTTP fingerprint;
    - size: an open; per message size of the ramp and of the bisection, a passing step and
      the time to send it twice at the slowest link allowed; two failing steps (an open and
      two ping timeouts each);
    - rate: per burst rate, the burst and a passing step; then a failing step and a reconnect.
    """
    from wsdoctor.probes.basic import ECHO_PING_TIMEOUT_S, REPLY_TIMEOUT_S, SAMPLE_GAP_S

    open_s = plan.connect.open_timeout_s
    stages = set(plan.stages)
    parts: list[tuple[str, float]] = [("handshake", open_s + CLOSE_S)]
    if "echo" in stages:
        samples = plan.echo_samples
        sampling = samples * (ECHO_PING_TIMEOUT_S + SAMPLE_GAP_S)
        replies = (samples // 2 + 1) * REPLY_TIMEOUT_S
        parts.append(("echo", open_s + sampling + replies + CLOSE_S))
    parts.append(beside_budget(plan))
    paths = len(plan.paths)
    failing = open_s + 2 * MAX_PING_TIMEOUT_S + CLOSE_S
    if "size" in stages:
        sizes = plan.load.sizes()
        transfer = 2 * sum(sizes) / SLOWEST_BYTES_PER_S
        per_path = open_s + CLOSE_S + 2 * len(sizes) * STEP_S + transfer + 2 * failing
        parts.append(("size", paths * per_path))
    if "rate" in stages:
        per_path = len(plan.load.rates) * (plan.load.burst_s + STEP_S) + open_s + failing
        parts.append(("rate", paths * per_path))
    return limited(parts, max_time_s)


def beside_budget(plan: Any) -> tuple[str, float]:
    """The longest of the stages that run side by side on a path, and its worst case.

    Idle (``max_idle + ping timeout + open timeout``, then closes), stability (its duration,
    an open, a ping timeout) and the plain HTTP fingerprint.
    """
    open_s = plan.connect.open_timeout_s
    beside = [("fingerprint", min(HTTP_FINGERPRINT_S, open_s) + CLOSE_S)]
    if set(plan.stages) & {"idle", "heartbeat"}:
        beside.append(("idle", plan.idle.max_idle_s + MAX_PING_TIMEOUT_S + open_s + CLOSE_S))
    if "stability" in plan.stages:
        beside.append(("stability", plan.stability.duration_s + open_s + MAX_PING_TIMEOUT_S))
    return max(beside, key=lambda part: part[1])


def capacity_budget(capacity_plan: Any, open_timeout_s: float, max_time_s: float | None) -> Budget:
    """The budget of ``wsdoctor capacity``: a handshake, each level of the ramp, storms."""
    from wsdoctor.probes.capacity import (
        RECOVERY_BUDGET_S,
        STORM_ATTEMPTS,
        STORM_BACKOFF,
        ramp_levels,
    )

    plan = capacity_plan
    levels = ramp_levels(plan.max_connections)
    ramp = plan.max_connections / plan.rate_per_s + len(levels) * (
        open_timeout_s + plan.hold_s + plan.ping_timeout_s + CLOSE_S
    )
    parts = [("handshake", open_timeout_s + CLOSE_S), ("ramp", ramp)]
    parts.append(("recovery", RECOVERY_BUDGET_S + open_timeout_s))
    if plan.storm:
        attempt = open_timeout_s + STORM_BACKOFF.max_s + plan.ping_timeout_s
        parts.append(("storms", 2 * STORM_ATTEMPTS * attempt + 2 * CLOSE_S))
    return limited(parts, max_time_s)


def watch_budget(duration_s: float | None, max_time_s: float | None) -> Budget | None:
    """``wsdoctor watch`` runs until stopped: a budget only when ``--max-time`` is given."""
    if max_time_s is None:
        return None
    parts = [("watch", duration_s)] if duration_s is not None else []
    return limited(parts, max_time_s)


class Watchdog:
    """A daemon thread that enforces a deadline whatever the event loop is doing.

    With no deadline (``budget_s`` None: a watch without ``--max-time``) it only guards the
    exit after the report.

    At ``deadline`` it calls ``on_deadline()`` (which asks the loop to stop the run); if
    ``done()`` is not called within ``grace_s`` after that, it calls ``on_stuck()``, which
    must end the process. After ``done(code)``, the process has ``EXIT_GRACE_S`` to exit,
    else ``on_exit_stuck(code)`` ends it.
    """

    def __init__(
        self,
        budget_s: float | None,
        on_deadline: Callable[[], None],
        on_stuck: Callable[[], None],
        on_exit_stuck: Callable[[int], None],
        grace_s: float = GRACE_S,
    ) -> None:
        self.started = time.monotonic()
        self.deadline = None if budget_s is None else self.started + budget_s
        self.grace_s = grace_s
        self.on_deadline = on_deadline
        self.on_stuck = on_stuck
        self.on_exit_stuck = on_exit_stuck
        self.fired = False
        self._finished = threading.Event()
        self._code = 0
        self._guard_exit = False
        self._thread = threading.Thread(target=self._watch, name="wsdoctor-watchdog", daemon=True)

    def start(self) -> Watchdog:
        """Start watching; returns self."""
        self._thread.start()
        return self

    def done(self, code: int, guard_exit: bool = False) -> None:
        """The report is written; with ``guard_exit``, the process exit is watched from now on."""
        self._code = code
        self._guard_exit = guard_exit
        self._finished.set()

    def _watch(self) -> None:
        timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        if not self._finished.wait(timeout):
            self.fired = True
            _guarded(self.on_deadline)
            if not self._finished.wait(self.grace_s):
                _guarded(self.on_stuck)
                os._exit(EXIT_INCONCLUSIVE)  # on_stuck should have ended the process
        if not self._guard_exit:
            return
        time.sleep(EXIT_GRACE_S)
        _guarded(lambda: self.on_exit_stuck(self._code))
        os._exit(self._code)


def _guarded(call: Callable[[], None]) -> None:
    """Call ``call``: whatever it raises, the watchdog must reach its exit."""
    with contextlib.suppress(BaseException):
        call()
