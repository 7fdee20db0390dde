"""Plain-text phrasing of observations and verdicts, shared by the human-readable reporters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from wsdoctor.diagnosis.model import Verdict
from wsdoctor.observations import (
    ConnectionRecord,
    Ending,
    EventKind,
    Handshake,
    HandshakeFailure,
    LoopLag,
    RttStats,
    StageResult,
    Step,
)
from wsdoctor.units import MISSING as MISSING  # the reporters' names for these units
from wsdoctor.units import seconds_as_ms as seconds_as_ms
from wsdoctor.units import seconds_tenths as format_seconds
from wsdoctor.units import size as size_text

_ENDING_LABELS = {
    "close_frame": "close frame",
    "eof": "FIN, no close frame",
    "reset": "RST",
    "silent": "silent, pings unanswered",
    "local": "closed by probe",
    "handshake_failed": "handshake failed",
    "open": "still open",
}
_NOT_DROPS = ("local", "open")


def format_confidence(confidence: float) -> str:
    """A 0..1 confidence as a whole percentage (``85 %``)."""
    return f"{confidence * 100:.0f} %"


def verdict_figures(verdict: Verdict) -> list[tuple[str, str]]:
    """The verdict's measured figures as (label, value) pairs, leaving out unmeasured ones."""
    figures: list[tuple[str, float | None, Callable[[Any], str]]] = [
        ("Idle timeout", verdict.idle_timeout_s, format_seconds),
        ("Lifetime cap", verdict.lifetime_cap_s, format_seconds),
        ("Connection limit", verdict.connection_limit, str),
        ("Max message size", verdict.max_message_bytes, lambda n: f"{n} bytes"),
    ]
    return [(label, show(value)) for label, value, show in figures if value is not None]


def describe_failure(failure: HandshakeFailure) -> str:
    """Why a handshake failed: reason, HTTP status when there was one, and the message."""
    text: str = failure.reason
    if failure.status is not None:
        text += f" {failure.status}"
    if failure.message:
        text += f" ({failure.message})"
    return text


def describe_ending(ending: Ending, failure: HandshakeFailure | None = None) -> str:
    """How a connection ended: kind, close code and reason, and which side ended it."""
    text = _ENDING_LABELS[ending.kind]
    if failure is not None:
        text += f": {describe_failure(failure)}"
    if ending.code is not None:
        text += f" {ending.code}"
    if ending.reason:
        text += f' "{ending.reason}"'
    if ending.initiator is not None and ending.kind != "local":
        text += f" by {ending.initiator}"
    return text


def describe_plan(connection: ConnectionRecord) -> str:
    """What the connection was meant to do: stay idle for a while, or act at an interval."""
    if connection.planned_idle_s is not None:
        return f"idle {format_seconds(connection.planned_idle_s)}"
    if connection.interval_s is not None:
        return f"every {format_seconds(connection.interval_s)}"
    return MISSING


def describe_handshake(handshake: Handshake) -> str:
    """The handshake's phase timings in milliseconds and its outcome."""
    timings = (
        f"dns {seconds_as_ms(handshake.dns_s)}, tcp {seconds_as_ms(handshake.tcp_s)}, "
        f"tls {seconds_as_ms(handshake.tls_s)}, upgrade {seconds_as_ms(handshake.upgrade_s)}"
    )
    if handshake.failure is not None:
        return f"{timings}; failed: {describe_failure(handshake.failure)}"
    status = f"; status {handshake.status}" if handshake.status is not None else ""
    return timings + status


def describe_rtt(rtt: RttStats, short: bool = False) -> str:
    """RTT percentiles, maximum and jitter of one kind of round trip (``short``: p50/p99)."""
    if short:
        return f"{rtt.kind} RTT p50 {rtt.p50_ms:.1f} / p99 {rtt.p99_ms:.1f} ms"
    return (
        f"{rtt.kind} RTT p50 {rtt.p50_ms:.1f} / p95 {rtt.p95_ms:.1f} / p99 {rtt.p99_ms:.1f}"
        f" / max {rtt.max_ms:.1f} / jitter {rtt.jitter_ms:.1f} ms"
        f" ({rtt.samples} samples, {rtt.lost} lost)"
    )


def describe_drops(stage: StageResult) -> str:
    """How many of the stage's connections dropped, and how (``2 of 3 dropped: eof 2``)."""
    kinds = Counter(c.ending.kind for c in stage.connections if c.ending.kind not in _NOT_DROPS)
    if not kinds:
        return f"none of {len(stage.connections)} dropped"
    how = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
    return f"{sum(kinds.values())} of {len(stage.connections)} dropped: {how}"


def _step_value(stage: StageResult, value: float) -> str:
    if stage.name == "size":
        return size_text(value)
    if stage.name == "rate":
        return f"{value:g}/s"
    return f"{value:g}"


def _step_outcome(step: Step) -> str:
    if step.ok:
        return "ok"
    ending = step.ending
    if ending is None:
        text = f"{step.failed} failed" if step.failed else "failed"
    elif ending.kind == "close_frame":
        text = f"closed {ending.code}"
    elif ending.kind == "handshake_failed":
        text = "refused" if step.status is None else f"refused {step.status}"
    else:
        text = {"eof": "FIN", "reset": "RST"}.get(ending.kind, ending.kind)
    if step.status is not None and (ending is None or ending.kind != "handshake_failed"):
        text += f", then HTTP {step.status}"
    return text


MAIN_PHASES = (None, "ramp", "bisect")
"""Phases of a stepped stage's own measurement; the others (a capacity ramp's recovery, its
storm) open new connections after it."""


def _side_step(step: Step) -> str:
    """A step of a side phase: how many new connections, and how they fared."""
    return f"{step.value:g} new connections {_step_outcome(step)}"


def describe_steps(stage: StageResult) -> str | None:
    """A stepped stage on one line, a part per phase: ``size: 256 B ok, ..., 128 KiB closed
    1009``; ``capacity: 10 ok, ..., 100 ok; recovery: 5 new connections ok``."""
    if not stage.steps:
        return None
    parts: list[tuple[str, list[str]]] = []
    for step in stage.steps:
        if step.phase in MAIN_PHASES:
            phase: str = stage.name
            text = f"{_step_value(stage, step.value)} {_step_outcome(step)}"
        else:
            phase, text = str(step.phase), _side_step(step)
        if not parts or parts[-1][0] != phase:
            parts.append((phase, []))
        parts[-1][1].append(text)
    return "; ".join(f"{phase}: {', '.join(texts)}" for phase, texts in parts)


def stage_results(stage: StageResult, short: bool = False) -> list[str]:
    """What a stage found, a line per fact; ``short``: the facts of the default report."""
    lines: list[str] = []
    if stage.name == "handshake":
        shown = stage.connections[:1] if short else stage.connections
        lines.extend(describe_handshake(c.handshake) for c in shown)
    lines.extend(describe_rtt(rtt, short) for rtt in stage.rtt)
    steps = _summarise_steps(stage) if short else [describe_steps(stage)]
    lines.extend(step for step in steps if step)
    if stage.app_echo is not None:
        lines.append(f"application echo: {'yes' if stage.app_echo else 'no'}")
    if stage.name in ("idle", "heartbeat"):
        lines.append(describe_drops(stage))
    if stage.max_idle_s is not None:
        lines.append(f"max idle {format_seconds(stage.max_idle_s)}")
    if short:
        if stage.notes:
            lines.append(f"{len(stage.notes)} note{'s' if len(stage.notes) > 1 else ''} (-v)")
        return lines
    if stage.ping_timeout_s is not None:
        lines.append(f"ping timeout {format_seconds(stage.ping_timeout_s)}")
    if stage.app_heartbeat_answered is not None:
        answered = "yes" if stage.app_heartbeat_answered else "no"
        lines.append(f"application heartbeat answered: {answered}")
    lines.extend(f"note: {note}" for note in stage.notes)
    return lines


def summarise(stage: StageResult) -> str:
    """What a stage found, on one line: the line of the default report."""
    return "; ".join(stage_results(stage, short=True)) or MISSING


def _summarise_steps(stage: StageResult) -> list[str]:
    """A stepped stage's phases in short: ``ok up to 1 MiB``, ``ok up to 32 KiB, then 64 KiB
    closed 1009``; ``recovery: 5 new connections ok``."""
    parts: list[str] = []
    main = [s for s in stage.steps if s.phase in MAIN_PHASES]
    if main:
        held = [s.value for s in main if s.ok]
        failed = next((s for s in main if not s.ok), None)
        text = f"ok up to {_step_value(stage, max(held))}" if held else ""
        if failed is not None:
            failure = f"{_step_value(stage, failed.value)} {_step_outcome(failed)}"
            text = f"{text}, then {failure}" if text else failure
        parts.append(text)
    parts.extend(f"{s.phase}: {_side_step(s)}" for s in stage.steps if s.phase not in MAIN_PHASES)
    return parts


def verdict_line(verdict: Verdict) -> str:
    """The verdict on one line, for ``-q`` and CI logs: status, culprit, hop and figures."""
    text = verdict.status.upper() + ("" if verdict.culprit == "none" else f" {verdict.culprit}")
    if verdict.hop:
        text += f" at the {verdict.hop} hop"
    figures = [f"{label.lower()} {value}" for label, value in verdict_figures(verdict)]
    figures.append(f"confidence {format_confidence(verdict.confidence)}")
    return f"{text} ({'; '.join(figures)})"


def describe_loop_lag(lag: LoopLag | None) -> str:
    """The probe's own event-loop lag: maximum and 99th percentile."""
    return MISSING if lag is None else f"max {lag.max_ms:.1f} / p99 {lag.p99_ms:.1f} ms"


def count_events(connection: ConnectionRecord, kind: EventKind) -> int:
    """How many events of ``kind`` the connection recorded."""
    return sum(1 for event in connection.events if event.kind == kind)
