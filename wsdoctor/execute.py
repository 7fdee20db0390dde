"""Run a plan to the end: probes with a live display, diagnosis, every requested output.

Ctrl-C and SIGTERM stop the probes; whatever they learned is still diagnosed and written.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import Diagnosis
from wsdoctor.observations import Observations
from wsdoctor.plan import Plan
from wsdoctor.signals import cancel_on_signals

EXIT_HEALTHY = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
LIVE_REFRESH_S = 0.5
PLAIN_WIDTH = 110


@dataclass(frozen=True)
class Outputs:
    """Where the report goes: the terminal (colour or plain) and optionally JSON."""

    json_path: str | None = None
    color: bool = True
    quiet: bool = False


def exit_code_for(diagnosis: Diagnosis, stopped_by: int | None) -> int:
    """The contract's exit code for a verdict (or for the signal that stopped the run)."""
    if stopped_by == signal.SIGTERM:
        return EXIT_SIGTERM
    if stopped_by is not None:
        return EXIT_SIGINT
    return {"healthy": EXIT_HEALTHY, "problem": EXIT_PROBLEM}.get(
        diagnosis.verdict.status, EXIT_INCONCLUSIVE
    )


async def show_progress(work: asyncio.Task[None], outputs: Outputs, status: object) -> None:
    """Show ``status`` while ``work`` runs: a live table on a terminal, else a line at times."""
    from rich.console import Console
    from rich.live import Live

    from wsdoctor.report.live import progress_line, progress_table

    console = Console(stderr=True, no_color=not outputs.color)
    if outputs.quiet:
        await asyncio.shield(work)
    elif console.is_terminal:
        with Live(progress_table(status), console=console, transient=True) as live:  # type: ignore[arg-type]
            while not work.done():
                await asyncio.wait({work}, timeout=LIVE_REFRESH_S)
                live.update(progress_table(status))  # type: ignore[arg-type]
    else:
        last = ""
        while not work.done():
            await asyncio.wait({work}, timeout=5.0)
            line = progress_line(status)  # type: ignore[arg-type]
            if line != last and not work.done():
                console.print(line, markup=False, highlight=False)
                last = line


async def _run(
    plan: Plan,
    observations: Observations,
    outputs: Outputs,
    fixture: Callable[[], AbstractAsyncContextManager[None]] | None,
) -> int | None:
    from wsdoctor.probes.runner import run_plan
    from wsdoctor.probes.status import RunStatus

    status = RunStatus()
    async with fixture() if fixture else _nothing():
        work = asyncio.create_task(run_plan(plan, status, observations))
        with cancel_on_signals(work) as stopped_by:
            await show_progress(work, outputs, status)
            await work
    return stopped_by[0] if stopped_by else None


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def render(observations: Observations, diagnosis: Diagnosis, outputs: Outputs) -> None:
    """Print the terminal report and write the JSON report where asked."""
    from wsdoctor.report.json_report import build_report, write_json

    to_stdout_json = outputs.json_path == "-"
    if not outputs.quiet:
        from rich.console import Console

        from wsdoctor.report.terminal import render_terminal

        console = Console(stderr=to_stdout_json, no_color=not outputs.color, highlight=False)
        if not console.is_terminal:
            console.width = PLAIN_WIDTH
        render_terminal(observations, diagnosis, console)
    if outputs.json_path:
        write_json(build_report(observations, diagnosis), outputs.json_path)


def execute(
    plan: Plan,
    outputs: Outputs,
    fixture: Callable[[], AbstractAsyncContextManager[None]] | None = None,
) -> int:
    """Probe, diagnose, render; return the exit code. ``fixture`` wraps the probe run."""
    observations = Observations(started_at="", duration_s=0.0)
    try:
        stopped_by = asyncio.run(_run(plan, observations, outputs, fixture))
    except KeyboardInterrupt:
        stopped_by = signal.SIGINT
        observations.interrupted = True
    diagnosis = diagnose(observations)
    render(observations, diagnosis, outputs)
    sys.stdout.flush()
    return exit_code_for(diagnosis, stopped_by)
