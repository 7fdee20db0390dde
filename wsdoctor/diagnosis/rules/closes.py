"""Close rules: the server ending connections on purpose, at once or later, and why."""

from __future__ import annotations

from collections import Counter

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.catalogue import finding, remedy_text
from wsdoctor.diagnosis.model import Culprit
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.observations import ConnectionRecord, Observations, PathResult
from wsdoctor.units import seconds as _seconds

RESTART_CODES = {1001, 1012}
OVERLOAD_CODES = {1013}


def _describe(records: list[ConnectionRecord]) -> str:
    counts = Counter(
        f"close {c.ending.code}" + (f" ({c.ending.reason})" if c.ending.reason else "")
        if c.ending.kind == "close_frame"
        else {"eof": "FIN", "reset": "RST"}[c.ending.kind]
        for c in records
    )
    return ", ".join(f"{n} x {how}" for how, n in counts.most_common())


def _refusal_culprit(records: list[ConnectionRecord]) -> Culprit:
    codes = {c.ending.code for c in records}
    if codes & OVERLOAD_CODES or all(c.ending.kind != "close_frame" for c in records):
        return "server_limits"
    if codes <= RESTART_CODES:
        return "restart"
    return "handshake_rejected"


def _immediate(path: PathResult, records: list[ConnectionRecord]) -> Judgement:
    culprit = _refusal_culprit(records)
    how = _describe(records)
    key = f"closed_on_open.{culprit}"
    found = finding(
        key,
        [
            f"{path.name}: {len(records)} connection(s) ended within "
            f"{_seconds(facts.IMMEDIATE_CLOSE_S)} of the upgrade: {how}"
        ],
    )
    return Judgement(
        found,
        culprit=culprit,
        hop="server" if culprit != "server_limits" else None,
        confidence=0.8,
        kind="closed_on_open",
        summary=f"The {path.name} path accepts the upgrade, then the server ends the connection "
        f"at once ({how}).",
        remedies=[remedy_text(key)],
    )


def _later(path: PathResult, records: list[ConnectionRecord]) -> Judgement:
    codes = {c.ending.code for c in records}
    restart = bool(codes) and codes <= RESTART_CODES
    ages = ", ".join(sorted({_seconds(c.ending.age_s) for c in records}))
    return Judgement(
        finding(
            "server_closed.restart" if restart else "server_closed",
            [f"{path.name}: {_describe(records)} at age {ages}, not tied to idle time"],
        ),
        culprit="restart" if restart and len(records) >= 2 else None,
        hop="server",
        confidence=0.6,
        kind="restart",
        summary=f"The server on the {path.name} path went away or restarted "
        f"({_describe(records)}).",
        remedies=[remedy_text("server_closed.restart")],
    )


def _violations(path: PathResult, records: list[ConnectionRecord]) -> Judgement:
    details = sorted({c.ending.detail or f"close {c.ending.code}" for c in records})
    codes = ", ".join(sorted({str(c.ending.code) for c in records}))
    return Judgement(
        finding(
            "protocol_error",
            [
                f"{path.name}: {len(records)} connection(s) closed by wsdoctor with {codes}: "
                + "; ".join(details[:3])
            ],
        ),
        culprit="none",
        hop=None,
        confidence=0.7,
        kind="protocol_error",
        status="inconclusive",
        summary=f"The {path.name} path broke the WebSocket protocol ({details[0]}); no drop "
        f"cause could be measured past it.",
        remedies=["Fix what sends invalid frames on this path, then probe again."],
    )


def judge_server_closes(obs: Observations) -> list[Judgement]:
    """Connections the server ended on purpose: at once (a refusal) or later, unexplained;
    and connections wsdoctor had to close because the server broke the protocol."""
    out = []
    for path in obs.paths:
        violations = facts.protocol_violations(path)
        if violations:
            out.append(_violations(path, violations))
        immediate = facts.immediate_closes(path)
        if immediate:
            out.append(_immediate(path, immediate))
        later = facts.server_closes(path)
        if later:
            out.append(_later(path, later))
    return out


def _refused(path: PathResult, records: list[ConnectionRecord]) -> Judgement:
    reasons = Counter(
        f"HTTP {c.handshake.failure.status}"
        if c.handshake.failure and c.handshake.failure.status
        else (c.handshake.failure.reason if c.handshake.failure else "unknown")
        for c in records
    )
    how = ", ".join(f"{n} x {reason}" for reason, n in reasons.most_common())
    rate_limited = "HTTP 429" in reasons
    held = facts.opened_in(path, "idle") + facts.opened_in(path, "heartbeat")
    culprit: Culprit = "rate_limit" if rate_limited else "server_limits"
    key = "connections_refused.rate_limit" if rate_limited else "connections_refused"
    found = finding(
        key,
        [
            f"{path.name}: {len(records)} of {len(records) + held} concurrent probe "
            f"connections could not open ({how}) while {held} were open"
        ],
    )
    return Judgement(
        found,
        culprit=culprit,
        hop="server",
        confidence=0.6,
        kind="connections_refused",
        connection_limit=None if rate_limited else held or None,
        summary=f"The server on the {path.name} path refused new connections while {held} were "
        f"open ({how}).",
        remedies=[remedy_text(key)],
    )


def judge_refused_opens(obs: Observations) -> list[Judgement]:
    """Probe connections the server would not open once others were: a limit or a rate."""
    out = []
    for path in obs.paths:
        refused = facts.refused_opens(path)
        if refused:
            out.append(_refused(path, refused))
    return out
