"""The one run pipeline every command goes through.

A command parses its options into a :class:`Gatherer` (what to gather and how to show it) and
hands it to :func:`execute`, which does the rest the same way for all of them: the run budget
and its watchdog, Ctrl-C and SIGTERM, an event loop whose shutdown cannot block forever, the
diagnosis, every requested output (the JSON report on every path, internal errors included)
and the exit code.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn

from wsdoctor.exitcodes import EXIT_HEALTHY as EXIT_HEALTHY
from wsdoctor.exitcodes import EXIT_INCONCLUSIVE, exit_code

if TYPE_CHECKING:
    import asyncio

    from wsdoctor.budget import Budget
    from wsdoctor.diagnosis.model import Diagnosis, Finding
    from wsdoctor.observations import Observations
    from wsdoctor.runguard import RunGuard

LIVE_REFRESH_S = 0.5
PLAIN_WIDTH = 10_000  # piped: a line is as long as its content, never wrapped
STACKS_SUFFIX = ".stacks.txt"


@dataclass(frozen=True)
class Outputs:
    """Where the report goes: the terminal (colour or plain), JSON, HTML, and ``--debug``."""

    json_path: str | None = None
    html_path: str | None = None
    color: bool = True
    debug: bool = False
    verbosity: int = 0  # -1: the verdict line only (-q); 0: a screen; 1: every detail (-v)

    @property
    def quiet(self) -> bool:
        """``-q``: no progress, and the verdict line instead of the report."""
        return self.verbosity < 0

    @property
    def verbose(self) -> bool:
        """``-v``: stage tables and every connection too."""
        return self.verbosity > 0

    @property
    def stacks_path(self) -> str | None:
        """Where a stack dump goes when the budget fires: next to the JSON report file."""
        if self.json_path is None or self.json_path == "-":
            return None
        return self.json_path + STACKS_SUFFIX


def make_console(outputs: Outputs, stderr: bool | None = None) -> Any:
    """The rich console of a report: stdout (stderr when JSON goes to stdout), plain width."""
    from rich.console import Console

    to_stderr = outputs.json_path == "-" if stderr is None else stderr
    console = Console(stderr=to_stderr, no_color=not outputs.color, highlight=False)
    if not console.is_terminal:
        console.width = PLAIN_WIDTH
    return console


def print_verdict_line(diagnosis: Diagnosis, outputs: Outputs) -> None:
    """``-q``: the verdict on one line, where the report would have gone."""
    from wsdoctor.report.text import verdict_line

    stream = sys.stderr if outputs.json_path == "-" else sys.stdout
    print(verdict_line(diagnosis.verdict), file=stream, flush=True)


def progress_console(color: bool) -> Any:
    """The console that progress goes to while a run gathers: standard error."""
    from rich.console import Console

    console = Console(stderr=True, no_color=not color, highlight=False)
    if not console.is_terminal:
        console.soft_wrap = True  # a progress line piped to a log stays one line
    return console


# --- findings the pipeline itself adds ----------------------------------------------------


def internal_error_finding(exc: BaseException) -> Finding:
    """``internal_error``: wsdoctor itself failed; the report keeps what was gathered."""
    import traceback

    from wsdoctor.diagnosis.catalogue import finding

    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    evidence = [f"{type(exc).__name__}: {exc}"]
    evidence += [f"at {os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in where]
    return finding("internal_error", evidence)


def exit_code_for(diagnosis: Diagnosis, stopped_by: int | None) -> int:
    """The contract's exit code for a verdict (or for the signal that stopped the run)."""
    return exit_code(diagnosis.verdict.status, stopped_by)


def with_incident(diagnosis: Diagnosis, incident: Finding | None) -> Diagnosis:
    """``diagnosis`` made inconclusive by ``incident`` (listed first), or unchanged."""
    from wsdoctor.diagnosis.model import Diagnosis

    if incident is None:
        return diagnosis
    verdict = replace(
        diagnosis.verdict,
        status="inconclusive",
        summary=f"{incident.title}. {diagnosis.verdict.summary}",
        remedies=[incident.remedy or "", *diagnosis.verdict.remedies],
    )
    return Diagnosis(findings=[incident, *diagnosis.findings], verdict=verdict)


def safe_diagnose(observations: Observations) -> tuple[Diagnosis, Finding | None]:
    """The diagnosis of ``observations``; an empty one and the error when a rule fails."""
    from wsdoctor.diagnosis.engine import diagnose
    from wsdoctor.diagnosis.model import Diagnosis, Verdict

    try:
        return diagnose(observations), None
    except Exception as exc:  # noqa: BLE001 - the report must be written anyway
        empty = Verdict(status="inconclusive", culprit="none", hop=None, summary="", confidence=0.0)
        return Diagnosis(findings=[], verdict=empty), internal_error_finding(exc)


# --- gatherers ------------------------------------------------------------------------------


class Gatherer:
    """One command's work: gather observations and show progress. The pipeline does the rest.

    Subclasses implement :meth:`gather`, and override the other hooks where the command
    differs (progress display, rendering, how the outcome maps to an exit code).
    """

    observations: Observations
    status: Any = None

    def budget(self) -> Budget | None:
        """The run's budget, or None for a run that may go on until it is stopped."""
        return None

    def prepare(self) -> None:
        """Set-up in the main thread before the event loop starts (imports, files)."""
        preload_probes()

    async def gather(self) -> None:
        """Gather the observations (cancelled by a signal or the budget)."""
        raise NotImplementedError

    async def progress(self, work: asyncio.Task[None], outputs: Outputs) -> None:
        """Show progress while ``work`` runs."""
        await show_progress(work, outputs, self.status)

    def where(self) -> str:
        """Where the run is now, in words: the stage of each path."""
        paths = getattr(self.status, "paths", None) or {}
        stages = [f"{name}: {p.stage}" for name, p in list(paths.items())]
        return ", ".join(stages) or "starting"

    def mark_interrupted(self) -> None:
        """The run was stopped before the end."""
        self.observations.interrupted = True

    def cleanup(self) -> None:
        """Release what the gathering holds (files, servers), in the main thread."""

    def diagnose(self, incident: Finding | None) -> Diagnosis:
        """The verdict on the observations, made inconclusive by an incident."""
        diagnosis, error = safe_diagnose(self.observations)
        return with_incident(diagnosis, incident or error)

    def render(self, diagnosis: Diagnosis, outputs: Outputs) -> None:
        """Print the terminal report."""
        from wsdoctor.report.terminal import render_terminal

        render_terminal(self.observations, diagnosis, make_console(outputs), outputs.verbose)

    def report(self, diagnosis: Diagnosis) -> dict[str, Any]:
        """The JSON report."""
        from wsdoctor.report.json_report import build_report

        return build_report(self.observations, diagnosis)

    def conclude(self, outputs: Outputs, stopped_by: int | None, incident: Finding | None) -> int:
        """Diagnose, render, write the JSON report and the HTML page; return the exit code."""
        from wsdoctor.report.json_report import write_json

        diagnosis = self.diagnose(incident)
        failed: Exception | None = None
        try:
            if outputs.quiet:
                print_verdict_line(diagnosis, outputs)
            else:
                self.render(diagnosis, outputs)
        except Exception as exc:  # noqa: BLE001 - a broken terminal must not cost the report
            failed = exc
        report = self.report(diagnosis) if outputs.json_path or outputs.html_path else {}
        if outputs.json_path:
            write_json(report, outputs.json_path)
        if outputs.html_path:
            from wsdoctor.report.html import write_html

            write_html(report, outputs.html_path)
        if failed is not None:
            raise failed
        return exit_code(diagnosis.verdict.status, stopped_by)

    def emergency_report(self, incident: Finding) -> dict[str, Any]:
        """The JSON report from whatever was gathered, when the run cannot finish itself."""
        self.mark_interrupted()
        elapsed = getattr(self.status, "elapsed", None)
        if not self.observations.duration_s and elapsed is not None:
            self.observations.duration_s = round(elapsed(), 3)
        return self.report(self.diagnose(incident))


class PlanGatherer(Gatherer):
    """``probe``, ``compare`` and ``demo``: a plan's stages over its paths."""

    def __init__(
        self,
        plan: Any,
        max_time_s: float | None = None,
        fixture: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        from wsdoctor.observations import Observations
        from wsdoctor.status import RunStatus

        self.plan = plan
        self.max_time_s = max_time_s
        self.fixture = fixture
        self.status = RunStatus()
        self.observations = Observations(started_at="", duration_s=0.0)

    def budget(self) -> Budget:
        from wsdoctor.budget import plan_budget

        return plan_budget(self.plan, self.max_time_s)

    def prepare(self) -> None:
        preload_probes(self.plan)

    async def gather(self) -> None:
        from wsdoctor.probes.runner import run_plan

        async with self.fixture() if self.fixture else _nothing():
            await run_plan(self.plan, self.status, self.observations)


def preload_probes(plan: Any = None) -> None:
    """Import what probes use, in the main thread, before any worker thread runs.

    A module imported for the first time in a worker thread (httpx building its client, the
    IDNA codec that ``getaddrinfo`` loads for a host name) while the main thread imports too is
    a candidate for a rare hang on the import locks; and importing httpx on the loop once
    stages run would stall them. httpx is left out only for a ``plan`` that makes no HTTP
    request (a quick check: ``probes.runner.wants_fingerprints``).
    """
    import encodings.idna  # noqa: F401

    from wsdoctor.probes import runner  # websockets

    if plan is None or runner.wants_fingerprints(plan):
        import wsdoctor.probes.http_probe  # noqa: F401 - httpx


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


async def show_progress(work: asyncio.Task[None], outputs: Outputs, status: Any) -> None:
    """Show ``status`` while ``work`` runs: a live table on a terminal, else a line at times."""
    import asyncio

    from wsdoctor.report.live import progress_line, progress_table

    console = progress_console(outputs.color)
    if outputs.quiet:
        await asyncio.wait({work})
    elif console.is_terminal:
        from rich.live import Live

        with Live(progress_table(status), console=console, transient=True) as live:
            while not work.done():
                await asyncio.wait({work}, timeout=LIVE_REFRESH_S)
                live.update(progress_table(status))
    else:
        last = ""
        while not work.done():
            await asyncio.wait({work}, timeout=5.0)
            line = progress_line(status)
            if line != last and not work.done():
                console.print(line, markup=False, highlight=False)
                last = line


# --- the pipeline ----------------------------------------------------------------------------


async def _gather(gatherer: Gatherer, outputs: Outputs, guard: RunGuard) -> int | None:
    """Gather with progress until done, a signal or the budget; return the stopping signal."""
    import asyncio

    from wsdoctor.signals import cancel_on_signals

    work = asyncio.create_task(gatherer.gather(), name="wsdoctor-gather")
    guard.attach(asyncio.get_running_loop(), work)
    with cancel_on_signals(work) as stopped_by:
        await gatherer.progress(work, outputs)
        await asyncio.wait({work})
    if work.cancelled():
        gatherer.mark_interrupted()
    elif work.exception() is not None:
        raise work.exception()  # type: ignore[misc]
    return stopped_by[0] if stopped_by else None


def execute(gatherer: Gatherer, outputs: Outputs) -> int:
    """Gather, diagnose, render; return the exit code. A report is written on every path."""
    import signal

    from wsdoctor.eventloop import run_bounded
    from wsdoctor.runguard import RunGuard

    budget = gatherer.budget()
    if outputs.debug and budget is not None:
        print(f"wsdoctor: {budget.describe()}", file=sys.stderr, flush=True)
    guard = RunGuard(gatherer, outputs, budget)
    stopped_by: int | None = None
    incident: Finding | None = None
    try:
        gatherer.prepare()
        stopped_by = run_bounded(_gather(gatherer, outputs, guard))
    except KeyboardInterrupt:
        stopped_by = signal.SIGINT
        gatherer.mark_interrupted()
    except Exception as exc:  # noqa: BLE001 - reported, with the traceback under --debug
        incident = internal_error_finding(exc)
        _report_error(exc, outputs)
    finally:
        try:
            gatherer.cleanup()
        except Exception as exc:  # noqa: BLE001 - reported; the report is still written
            incident = incident or internal_error_finding(exc)
            _report_error(exc, outputs)
    if guard.cut is not None:
        incident = guard.cut.finding()
        stopped_by = None
        print(f"wsdoctor: error: {guard.cut.finding().title}", file=sys.stderr, flush=True)
    try:
        code = gatherer.conclude(outputs, stopped_by, incident)
    except Exception as exc:  # noqa: BLE001 - one line for users, traceback with --debug
        _report_error(exc, outputs)
        code = EXIT_INCONCLUSIVE
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    guard.done(code)
    return code


def _report_error(exc: BaseException, outputs: Outputs) -> None:
    import traceback

    if outputs.debug:
        traceback.print_exception(exc)
    elif isinstance(exc, OSError):
        print(f"wsdoctor: error: {exc}", file=sys.stderr)
    else:
        print(f"wsdoctor: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)


def run_command(gatherer: Gatherer, outputs: Outputs) -> NoReturn:
    """Execute ``gatherer`` and exit with the contract's code."""
    import typer

    raise typer.Exit(execute(gatherer, outputs))
