"""Handshake rules: unreachable, TLS, rejected, upgrade blocked, 429 and 503 answers."""

from __future__ import annotations

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.model import Finding
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.observations import HandshakeFailure, Observations, PathResult

_UPGRADE_BLOCKED_STATUSES = {200, 400, 426, 505}
_GATEWAY_STATUSES = {502, 504}
_REDIRECT_STATUSES = {300, 301, 302, 303, 307, 308}
NOT_HTTP = "not an HTTP response"
"""How ``probes.connection`` starts the message of an answer that is not HTTP at all."""
TLS_ON_PLAIN_PORT = "this port speaks TLS"
"""How ``probes.connection`` starts the message of a TLS record answering a ws:// request."""


def _rejected(path: PathResult, failure: HandshakeFailure) -> Judgement | None:
    """Answers that are no WebSocket handshake: a redirect, TLS on a ws:// port, not HTTP."""
    where = f"on the {path.name} path ({path.url})"
    if failure.reason == "http_status" and failure.status in _REDIRECT_STATUSES:
        title = f"Handshake answered with a redirect (HTTP {failure.status})"
        summary = f"The server redirected the WebSocket handshake {where}: {failure.message}."
        remedy = (
            "Use the URL it redirects to: most WebSocket clients, browsers included, do not "
            "follow redirects on the opening handshake."
        )
    elif failure.reason == "tls" and failure.message.startswith(TLS_ON_PLAIN_PORT):
        title = "A plain ws:// request reached a port that speaks TLS"
        summary = f"The server answered a plain ws:// handshake with TLS {where}: use wss://."
        remedy = "Use a wss:// URL for this port (or the server's plain-text port for ws://)."
    elif failure.reason == "upgrade_not_performed" and failure.message.startswith(NOT_HTTP):
        title = "The server did not answer with HTTP"
        summary = (
            f"Something that does not speak HTTP answered the WebSocket handshake {where}: "
            "check the port."
        )
        remedy = "Check the port: another service (not an HTTP or WebSocket server) listens there."
    else:
        return None
    return Judgement(
        Finding("handshake_rejected", "error", title, [f"{failure.message} {where}"], remedy),
        culprit="handshake_rejected",
        confidence=0.9,
        kind="handshake_failed",
        summary=summary,
        remedies=[remedy],
    )


def _handshake_judgement(path: PathResult, failure: HandshakeFailure) -> Judgement:
    where = f"on the {path.name} path ({path.url})"
    status = failure.status
    rejected = _rejected(path, failure)
    if rejected is not None:
        return rejected
    if failure.reason == "tls":
        return Judgement(
            Finding(
                "tls_error",
                "error",
                "TLS handshake failed",
                [f"{failure.message} {where}"],
                "Fix the certificate chain or host name; use --cacert for a private CA.",
            ),
            culprit="tls_error",
            confidence=0.95,
            kind="handshake_failed",
            summary=f"The TLS handshake failed {where}: {failure.message}.",
            remedies=[
                "Serve a certificate valid for this host name and not expired, with its "
                "full chain; for a private CA pass --cacert (or --insecure to look past it)."
            ],
        )
    if failure.reason == "http_status" and status == 429:
        return Judgement(
            Finding(
                "rate_limit",
                "error",
                "Handshake answered 429 Too Many Requests",
                [f"HTTP 429 {where}"],
                "Back off before reconnecting.",
            ),
            culprit="rate_limit",
            confidence=0.85,
            kind="handshake_failed",
            summary=f"The server rate-limited the WebSocket handshake with HTTP 429 {where}.",
            remedies=[
                "Reconnect with exponential backoff and jitter; raise the server's or "
                "gateway's connection rate limit if this load is expected."
            ],
        )
    if failure.reason == "http_status" and status == 503:
        return Judgement(
            Finding(
                "server_limits",
                "error",
                "Handshake answered 503 Service Unavailable",
                [f"HTTP 503 {where}"],
            ),
            culprit="server_limits",
            confidence=0.6,
            kind="handshake_failed",
            summary=f"The server or a proxy answered the handshake with HTTP 503 {where}.",
            remedies=[
                "Check the server's connection limits (ulimit -n, worker connections) "
                "and that the backend behind the proxy is up."
            ],
        )
    if failure.reason == "upgrade_not_performed" or (
        failure.reason == "http_status" and status in _UPGRADE_BLOCKED_STATUSES
    ):
        hint = {
            505: "505 means the request reached the backend as HTTP/1.0, which cannot upgrade: "
            "nginx proxies with HTTP/1.0 unless proxy_http_version 1.1 is set",
            426: "426 means the Upgrade request did not reach the backend as an upgrade",
        }.get(status or 0, "the reply did not switch protocols")
        return Judgement(
            Finding(
                "upgrade_blocked",
                "error",
                "The WebSocket upgrade was not performed",
                [f"{failure.message} {where}", hint],
            ),
            culprit="upgrade_blocked",
            hop="proxy" if path.name != "direct" else None,
            confidence=0.85,
            kind="handshake_failed",
            summary="An HTTP hop answered the WebSocket upgrade "
            + (f"with HTTP {status} " if status else "")
            + f"without switching protocols {where} ({hint}).",
            remedies=[
                "Pass the upgrade through every proxy. nginx: proxy_http_version 1.1; "
                'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";',
                "HAProxy and most load balancers pass upgrades by default: check that the "
                "route points at the WebSocket backend and that no WAF or CDN rule strips "
                "Upgrade/Connection.",
            ],
        )
    if failure.reason == "http_status" and status in _GATEWAY_STATUSES:
        return Judgement(
            Finding(
                "unreachable",
                "error",
                f"A gateway answered HTTP {status}: the backend behind it is unreachable",
                [f"{failure.message} {where}"],
            ),
            culprit="unreachable",
            hop="proxy",
            confidence=0.8,
            kind="handshake_failed",
            summary=f"A proxy answered the handshake with HTTP {status} {where}: it could not "
            "reach the WebSocket backend.",
            remedies=[
                "Check that the backend is up and that the proxy's upstream address, port and "
                "timeouts (proxy_connect_timeout, timeout connect) are right."
            ],
        )
    if failure.reason == "http_status":
        return Judgement(
            Finding(
                "handshake_rejected",
                "error",
                f"Handshake rejected with HTTP {status}",
                [f"{failure.message} {where}"],
            ),
            culprit="handshake_rejected",
            confidence=0.9,
            kind="handshake_failed",
            summary=f"The server rejected the WebSocket handshake with HTTP {status} {where}.",
            remedies=[
                "Check the URL path, credentials (-H 'Authorization: ...'), Origin "
                "(--origin) and subprotocol (--subprotocol) the server expects."
            ],
        )
    return Judgement(
        Finding("unreachable", "error", "Endpoint unreachable", [f"{failure.message} {where}"]),
        culprit="unreachable",
        confidence=0.95,
        kind="handshake_failed",
        summary=f"The endpoint could not be reached {where}: {failure.message}.",
        remedies=[
            "Check the host name, port and firewall rules, and that the server is listening."
        ],
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
