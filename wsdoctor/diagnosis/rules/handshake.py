"""Handshake rules: unreachable, TLS, rejected, upgrade blocked, 429 and 503 answers."""

from __future__ import annotations

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.catalogue import entry, finding, verdict_texts
from wsdoctor.diagnosis.model import Hop
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.observations import HandshakeFailure, Observations, PathResult

_UPGRADE_BLOCKED_STATUSES = {200, 400, 426, 505}
_GATEWAY_STATUSES = {502, 504}
_REDIRECT_STATUSES = {300, 301, 302, 303, 307, 308}
NOT_HTTP = "not an HTTP response"
"""How ``probes.connection`` starts the message of an answer that is not HTTP at all."""
TLS_ON_PLAIN_PORT = "this port speaks TLS"
"""How ``probes.connection`` starts the message of a TLS record answering a ws:// request."""
_CONFIDENCE = {
    "tls_error": 0.95,
    "rate_limit.handshake": 0.85,
    "server_limits.handshake": 0.6,
    "upgrade_blocked": 0.85,
    "unreachable.gateway": 0.8,
    "unreachable": 0.95,
}
"""How sure each answer is; the rest (``handshake_rejected`` and its variants) 0.9."""
_UPGRADE_HINTS = {
    505: "505 means the request reached the backend as HTTP/1.0, which cannot upgrade: "
    "nginx proxies with HTTP/1.0 unless proxy_http_version 1.1 is set",
    426: "426 means the Upgrade request did not reach the backend as an upgrade",
}


def _key(failure: HandshakeFailure) -> str:
    """The catalogue key of a failed first handshake."""
    reason, status = failure.reason, failure.status
    if reason == "http_status" and status in _REDIRECT_STATUSES:
        return "handshake_rejected.redirect"
    if reason == "tls" and failure.message.startswith(TLS_ON_PLAIN_PORT):
        return "handshake_rejected.tls_on_plain_port"
    if reason == "upgrade_not_performed" and failure.message.startswith(NOT_HTTP):
        return "handshake_rejected.not_http"
    if reason == "tls":
        return "tls_error"
    if reason == "http_status" and status == 429:
        return "rate_limit.handshake"
    if reason == "http_status" and status == 503:
        return "server_limits.handshake"
    if reason == "upgrade_not_performed" or (
        reason == "http_status" and status in _UPGRADE_BLOCKED_STATUSES
    ):
        return "upgrade_blocked"
    if reason == "http_status" and status in _GATEWAY_STATUSES:
        return "unreachable.gateway"
    if reason == "http_status":
        return "handshake_rejected"
    return "unreachable"


def _handshake_judgement(path: PathResult, failure: HandshakeFailure) -> Judgement:
    key = _key(failure)
    where = f"on the {path.name} path ({path.url})"
    status = failure.status
    evidence = [f"{failure.message} {where}"]
    hop: Hop | None = None
    values: dict[str, object] = {"where": where, "status": status, "message": failure.message}
    if key in ("rate_limit.handshake", "server_limits.handshake"):
        evidence = [f"HTTP {status} {where}"]
    if key == "upgrade_blocked":
        hint = _UPGRADE_HINTS.get(status or 0, "the reply did not switch protocols")
        evidence.append(hint)
        values.update(hint=hint, with_status=f"with HTTP {status} " if status else "")
        hop = "proxy" if path.name != "direct" else None
    if key == "unreachable.gateway":
        hop = "proxy"
    summary, remedies = verdict_texts(key, **values)
    return Judgement(
        finding(key, evidence, **values),
        culprit=entry(key).culprit,
        hop=hop,
        confidence=_CONFIDENCE.get(key, 0.9),
        kind="handshake_failed",
        summary=summary,
        remedies=remedies,
    )


def judge_handshake(obs: Observations) -> list[Judgement]:
    """Failed first handshakes: unreachable, TLS, rejected, upgrade blocked, 429, 503."""
    out = []
    for path in obs.paths:
        failure = facts.handshake_failure(path)
        if failure is not None:
            out.append(_handshake_judgement(path, failure))
    if out and len(out) < len(obs.paths):
        for judgement in out:
            judgement.kind = "handshake_failed_elsewhere"  # a working path may say more
    return out
