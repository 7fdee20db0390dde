"""The run budget's side of a run: the watchdog, the cut, the stack dump, the last resort.

``RunGuard`` connects a :class:`wsdoctor.budget.Watchdog` thread to a running gatherer. At the
deadline it asks the event loop to note where the run is, dump the stacks and cancel the run
(which then reports as usual, with the :class:`Cut`'s finding). When the loop does not stop in
time (stuck in a blocking call, or a task that ignores cancellation), it writes the report from
the watchdog's thread and ends the process with exit code 3. Once the report is written, it ends
a process whose exit hangs.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.diagnosis.catalogue import finding
from wsdoctor.exitcodes import EXIT_INCONCLUSIVE

if TYPE_CHECKING:
    import asyncio

    from wsdoctor.budget import Budget, Watchdog
    from wsdoctor.diagnosis.model import Finding
    from wsdoctor.execute import Gatherer, Outputs
    from wsdoctor.stackdump import PendingTask

SHOWN_TASKS = 5
_process = {"guard_exit": False}


def guard_process_exit() -> None:
    """Called by the real command line only: end the process if exiting hangs after a report."""
    _process["guard_exit"] = True


@dataclass
class Cut:
    """The budget fired: where the run was, what had not finished, where the dump went."""

    budget: Budget
    where: str
    tasks: list[PendingTask]
    stacks_path: str | None = None
    blocked_in: str | None = None
    """Where the event loop's thread was stuck when it did not stop (a blocking call)."""

    def finding(self) -> Finding:
        """``run_budget_exceeded``: the stage and the tasks that did not finish."""
        evidence = [self.budget.describe(), f"not finished: {self.where}"]
        if self.blocked_in:
            evidence.append(f"the event loop's thread is blocked in {self.blocked_in}")
        evidence += [f"task {t.name} waiting in {t.where()}" for t in self.stuck_tasks()]
        if self.stacks_path:
            evidence.append(f"stack dump: {self.stacks_path}")
        return finding(
            "run_budget_exceeded", evidence, budget=self.budget.total_s, where=self.where
        )

    def stuck_tasks(self) -> list[PendingTask]:
        """The tasks working in wsdoctor's probes (not the pipeline's own), deepest first."""
        mine = ("execute.py", "budget.py")
        work = [
            t for t in self.tasks if any(f.ours and not f.filename.endswith(mine) for f in t.chain)
        ]
        return sorted(work, key=lambda t: -len(t.chain))[:SHOWN_TASKS]


class RunGuard:
    """Connects the watchdog thread to the run: cancels it, dumps stacks, or ends the process."""

    def __init__(self, gatherer: Gatherer, outputs: Outputs, budget: Budget | None) -> None:
        import threading

        from wsdoctor.budget import Watchdog

        self.gatherer = gatherer
        self.outputs = outputs
        self.budget = budget
        self.loop: asyncio.AbstractEventLoop | None = None
        self.work: asyncio.Task[None] | None = None
        self.cut: Cut | None = None
        self.loop_thread: int | None = None
        self._lock = threading.Lock()
        self.watchdog: Watchdog | None = None
        limit = budget.total_s if budget is not None else math.inf
        if limit != math.inf or _process["guard_exit"]:
            self.watchdog = Watchdog(
                limit if limit != math.inf else None,
                self._on_deadline,
                self._on_stuck,
                self._on_exit_stuck,
            ).start()

    def attach(self, loop: asyncio.AbstractEventLoop, work: asyncio.Task[None]) -> None:
        """Called in the loop's thread once the run has started."""
        import threading

        self.loop, self.work = loop, work
        self.loop_thread = threading.get_ident()

    def _on_deadline(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._cut_in_loop)

    def _record_cut(self, blocked_in: str | None = None) -> Cut:
        """Note where the run is and dump the stacks (once, from whichever thread is first)."""
        import time

        from wsdoctor.stackdump import dump_to_file, dump_to_stderr, pending_tasks

        with self._lock:
            if self.cut is not None:
                return self.cut
            assert self.budget is not None
            tasks = pending_tasks(self.loop) if self.loop is not None else []
            cut = Cut(self.budget, self.gatherer.where(), tasks, blocked_in=blocked_in)
            header = (
                f"wsdoctor {' '.join(sys.argv[1:2])}: {cut.finding().title}\n"
                f"{self.budget.describe()}\npid {os.getpid()}, "
                f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}"
            )
            if blocked_in:
                header += f"\nThe event loop's thread is blocked in {blocked_in}"
            if self.outputs.stacks_path:
                cut.stacks_path = dump_to_file(self.outputs.stacks_path, header, tasks)
            if self.outputs.debug:
                dump_to_stderr(header, tasks)
            self.cut = cut
            return cut

    def _cut_in_loop(self) -> None:
        self._record_cut()
        if self.work is not None:
            self.work.cancel()

    def _on_stuck(self) -> None:
        """The loop did not stop in time: write the report from here and end the process."""
        from wsdoctor.stackdump import innermost_ours, thread_frames

        frames = thread_frames(self.loop_thread)
        blocked_in = None
        if frames and not frames[-1].filename.endswith("selectors.py"):  # not waiting for I/O
            frame = innermost_ours(frames, skip=("execute.py", "eventloop.py")) or frames[-1]
            blocked_in = str(frame)
        cut = self._record_cut(blocked_in)
        cut.blocked_in = cut.blocked_in or blocked_in
        _say(f"wsdoctor: error: {cut.finding().title}; the run did not stop, ending it")
        if self.outputs.json_path:
            from wsdoctor.report.json_report import write_json

            report = self.gatherer.emergency_report(cut.finding())
            if self.outputs.json_path == "-":
                import json

                _write_fd(1, json.dumps(report, indent=2) + "\n")
            else:
                write_json(report, self.outputs.json_path)
        os._exit(EXIT_INCONCLUSIVE)

    def _on_exit_stuck(self, code: int) -> None:
        _say(f"wsdoctor: error: the process did not exit {EXIT_GRACE_NOTE}; ending it")
        if self.outputs.debug:
            from wsdoctor.stackdump import dump_to_stderr

            dump_to_stderr("wsdoctor: stuck at exit", [])

    def done(self, code: int) -> None:
        if self.watchdog is not None:
            self.watchdog.done(code, guard_exit=_process["guard_exit"])


EXIT_GRACE_NOTE = "after its report was written"


def _write_fd(fd: int, text: str) -> None:
    """Write to a file descriptor without Python's stream locks (another thread may hold them)."""
    data = text.encode("utf-8", "replace")
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data) :]


def _say(line: str) -> None:
    _write_fd(2, line + "\n")
