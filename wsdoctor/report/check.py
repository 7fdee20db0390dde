"""What ``wsdoctor check`` shows: its progress table or lines, and its summary of outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

import typer

from wsdoctor.units import seconds_tenths

if TYPE_CHECKING:
    from rich.table import Table

    from wsdoctor.diagnosis.expectations import Outcome, TargetCheck
    from wsdoctor.status import RunStatus


class TargetProgress(Protocol):
    """What the progress display reads of one target while it runs."""

    @property
    def name(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def status(self) -> RunStatus: ...


def progress_table(targets: Sequence[TargetProgress]) -> Table:
    """One row per target: its stage, time, connections open and drops seen."""
    from rich.table import Table

    grid = Table(title="wsdoctor check", title_justify="left")
    for column in ("target", "stage", "elapsed", "open", "drops"):
        grid.add_column(column)
    for target in targets:
        paths = target.status.paths.values()
        grid.add_row(
            target.name,
            target.stage,
            seconds_tenths(target.status.elapsed()),
            str(sum(p.open_connections for p in paths)),
            str(sum(p.drops for p in paths)),
        )
    return grid


def progress_line(target: TargetProgress) -> str:
    """One plain line of a target's progress, for logs."""
    return f"[{target.status.elapsed():6.1f} s] {target.name}: {target.stage}"


def render_check_summary(
    checks: list[TargetCheck],
    outcome: Outcome,
    interrupted: bool,
    color: bool,
    stream: TextIO,
    quiet: bool = False,
) -> None:
    """One line per target and per expectation; evidence under those that did not pass.

    ``quiet`` (``-q``): the last line only, how many targets passed.
    """
    styles = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    paint = color and stream.isatty()

    def mark(word: str) -> str:
        text = word.upper()
        return typer.style(text, fg=styles[word], bold=True) if paint else text

    lines = []
    for check in checks:
        verdict = check.diagnosis.verdict
        lines.append(f"{mark(check.outcome)} {check.name}: {verdict.status}, {verdict.culprit}")
        for result in check.results:
            unmeasured = result.no_connection is not None and result.measured == "-"
            measured = "not measured" if unmeasured else result.measured
            lines.append(
                f"  {result.outcome:<12} {result.name:<17} {result.required:<28} {measured}"
            )
            if result.no_connection is not None:
                lines.append(f"  {'':<12} could not connect: {result.no_connection}")
            elif result.outcome != "pass":
                lines.append(f"  {'':<12} {result.detail}")
    count = sum(1 for c in checks if c.outcome == outcome)
    words = {"pass": "passed", "fail": "failed", "inconclusive": "inconclusive"}
    noun = "target" if len(checks) == 1 else "targets"
    tail = f"wsdoctor check: {count} of {len(checks)} {noun} {words[outcome]}"
    lines.append(tail + (" (interrupted: partial results)" if interrupted else ""))
    if quiet:
        lines = lines[-1:]
    stream.write("\n".join(lines) + "\n")
    stream.flush()
