"""A Markdown summary of ``wsdoctor check`` (for a CI job's summary page or a pull request).

One headline, then per target a compact table: the verdict and each expectation, with what was
required, what was measured and whether it held; the verdict's figures and summary follow.
"""

from __future__ import annotations

from wsdoctor.diagnosis.expectations import Outcome, TargetCheck, worst
from wsdoctor.report.text import format_confidence, verdict_figures
from wsdoctor.units import seconds_tenths

ICONS: dict[Outcome, str] = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}


def _cell(text: str) -> str:
    """Text safe inside a table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    """An inline code span that survives backticks in ``text``."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _headline(checks: list[TargetCheck], interrupted: bool) -> str:
    overall = worst(c.outcome for c in checks)
    if len(checks) == 1:
        text = {"pass": "passed", "fail": "failed", "inconclusive": "inconclusive"}[overall]
    elif overall == "pass":
        text = f"all {len(checks)} targets passed"
    else:
        count = sum(1 for c in checks if c.outcome == overall)
        word = "failed" if overall == "fail" else "inconclusive"
        text = f"{count} of {len(checks)} targets {word}"
    if interrupted:
        text += " (interrupted: partial results)"
    return f"## {ICONS[overall]} wsdoctor check: {text}"


def _verdict_line(check: TargetCheck) -> str:
    verdict = check.diagnosis.verdict
    parts = [f"**{verdict.status}**", _code(verdict.culprit)]
    if verdict.hop:
        parts.append(f"hop {verdict.hop}")
    parts.extend(f"{label.lower()} {value}" for label, value in verdict_figures(verdict))
    parts.append(f"confidence {format_confidence(verdict.confidence)}")
    return "Verdict: " + " · ".join(parts) + f". {_cell(verdict.summary)}"


def _target(check: TargetCheck) -> list[str]:
    lines = [f"### {ICONS[check.outcome]} {_cell(check.name)}: {check.outcome}", ""]
    paths = [
        f"{p.name} {_code(p.url)}" + (f" via {_code(p.proxy)}" if p.proxy else "")
        for p in check.observations.paths
    ]
    if paths:
        took = seconds_tenths(check.observations.duration_s)
        lines += [f"Probed {', '.join(paths)} in {took}.", ""]
    lines += ["| Expectation | Required | Measured | Result |", "|---|---|---|---|"]
    lines += [
        f"| {r.name} | {_cell(r.required)} | {_cell(r.measured)} | {ICONS[r.outcome]} {r.outcome} |"
        for r in check.results
    ]
    lines += ["", _verdict_line(check), ""]
    lines += [f"- **{r.name}**: {_cell(r.detail)}" for r in check.results if r.outcome != "pass"]
    if lines[-1]:
        lines.append("")
    return lines


def render_markdown(checks: list[TargetCheck], interrupted: bool = False) -> str:
    """The whole check as Markdown, ending with a newline."""
    lines = [_headline(checks, interrupted), ""]
    for check in checks:
        lines += _target(check)
    return "\n".join(lines).rstrip("\n") + "\n"
