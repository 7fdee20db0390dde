"""How a connection ended, or why its opening failed: one classifier for every transport.

The asyncio probes (``probes/connection.py``) and the Locust engine's gevent client
(``loadgen/wsclient.py``) both drive websockets' Sans-I/O protocol; each records what its
transport saw (FIN, RST, the moment the last byte went either way) in :class:`LinkFacts` and
hands it, with the protocol, to :func:`classify_ending`. Handshake errors go through
:func:`upgrade_failure` and :func:`connect_failure`; :func:`failure_key` names a failure the
way the capacity steps count it. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl
from dataclasses import dataclass, field

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)
from websockets.protocol import Protocol

from wsdoctor.observations import Ending, HandshakeFailure, HandshakeFailureReason
from wsdoctor.redact import redact_headers, redact_url

REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
TLS_RECORD_TYPES = {0x15: "alert", 0x16: "handshake"}
TLS_SILENT = b"\x16\x03"
"""Stands for the first bytes of a port that closed on ws:// but completed a TLS handshake."""
HTTPS_PORT_BODIES = (
    b"plain HTTP request was sent to HTTPS port",  # nginx
    b"Client sent an HTTP request to an HTTPS server",  # Go net/http
)
CLIENT_ERRNOS = {
    errno.EMFILE: "client_fd_limit",
    errno.ENFILE: "client_fd_limit",
    errno.EADDRNOTAVAIL: "client_ports",
}
"""Errors that are the client's own limits, never the server's."""
TIMEOUTS = (asyncio.TimeoutError, TimeoutError, socket.timeout)


@dataclass
class LinkFacts:
    """What a transport saw of one connection, on the monotonic clock."""

    established_at: float
    last_rx: float
    last_tx: float
    lost_at: float | None = None  # the transport is gone
    lost_exc: BaseException | None = None  # what it was lost with
    eof_at: float | None = None  # TCP FIN received
    close_rcvd_at: float | None = None  # the server's close frame arrived
    silent_at: float | None = None  # a ping sent then went unanswered
    closed_locally: bool = False  # the probe closed it on purpose
    cause: BaseException | None = None  # why the client library failed the connection


@dataclass
class Refusal:
    """Why an opening handshake failed: a :class:`HandshakeFailure` and the response headers."""

    reason: HandshakeFailureReason
    message: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def failure(self) -> HandshakeFailure:
        """The report's handshake failure."""
        return HandshakeFailure(reason=self.reason, message=self.message, status=self.status)


def _idle_at(link: LinkFacts, moment: float) -> float:
    """Seconds without a byte either way before ``moment`` (what came later is ignored)."""
    before = [t for t in (link.last_rx, link.last_tx) if t <= moment]
    return round(max(0.0, moment - max(before, default=link.established_at)), 4)


def classify_ending(link: LinkFacts, proto: Protocol, now: float) -> Ending:
    """How the connection ended (``open`` if it had not by ``now``)."""
    if link.silent_at is not None:
        end = link.silent_at
        return Ending(
            kind="silent",
            age_s=round(end - link.established_at, 4),
            idle_s=_idle_at(link, end),
            detail="ping unanswered; nothing received",
        )
    end = link.lost_at if link.lost_at is not None else now
    age = round(end - link.established_at, 4)
    idle = _idle_at(link, end)
    if proto.close_rcvd is not None and (proto.close_sent is None or proto.close_rcvd_then_sent):
        end = link.close_rcvd_at or end
        return Ending(
            kind="close_frame",
            age_s=round(end - link.established_at, 4),
            idle_s=_idle_at(link, end),
            code=proto.close_rcvd.code,
            reason=proto.close_rcvd.reason or None,
            initiator="server",
        )
    if link.closed_locally:
        return Ending(kind="local", age_s=age, idle_s=idle, initiator="client")
    if proto.close_sent is not None:  # the client library failed the connection itself
        cause = proto.parser_exc or link.cause
        return Ending(
            kind="close_frame",
            age_s=age,
            idle_s=idle,
            code=proto.close_sent.code,
            reason=proto.close_sent.reason or None,
            initiator="client",
            detail="the server broke the protocol: "
            + (str(cause)[:200] if cause else f"close {proto.close_sent.code}"),
        )
    if link.lost_at is None:
        return Ending(kind="open", age_s=age, idle_s=idle)
    if isinstance(link.lost_exc, ConnectionResetError):
        return Ending(kind="reset", age_s=age, idle_s=idle, detail="TCP RST")
    if link.eof_at is not None:
        idle = _idle_at(link, link.eof_at)
        age = round(link.eof_at - link.established_at, 4)
        return Ending(kind="eof", age_s=age, idle_s=idle, detail="TCP FIN, no close frame")
    detail = type(link.lost_exc).__name__ if link.lost_exc else "transport closed"
    return Ending(kind="reset", age_s=age, idle_s=idle, detail=detail)


def shed_key(ending: Ending) -> str:
    """The capacity failure key of a held connection that was lost: ``shed_<ending>``."""
    return f"shed_{'silent' if ending.kind == 'open' else ending.kind}"


def connect_failure(exc: OSError, host: str, port: int) -> Refusal:
    """Why the TCP connection to ``host:port`` could not be opened."""
    if isinstance(exc, socket.gaierror):
        return Refusal("dns", f"cannot resolve {host!r}: {exc.strerror or exc}")
    if isinstance(exc, TIMEOUTS):
        return Refusal("timeout", f"TCP connect to {host}:{port} timed out")
    if isinstance(exc, ConnectionRefusedError):
        return Refusal("refused", f"connection refused by {host}:{port}")
    return Refusal("other", f"cannot connect to {host}:{port}: {exc}")


def _not_http(first_bytes: bytes, secure: bool) -> Refusal | None:
    """The refusal when the answer was not HTTP at all, else None."""
    if not first_bytes or first_bytes.startswith(b"HTTP/"):
        return None
    record = TLS_RECORD_TYPES.get(first_bytes[0])
    if first_bytes == TLS_SILENT and not secure:
        what = "it closed the plain request, and completes a TLS handshake"
        return Refusal("tls", f"this port speaks TLS ({what}): use wss://")
    if not secure and record is not None and first_bytes[1:2] == b"\x03":
        what = f"it answered with a TLS {record} record"
        return Refusal("tls", f"this port speaks TLS ({what}): use wss://")
    return Refusal("upgrade_not_performed", f"not an HTTP response to the upgrade: {first_bytes!r}")


def _http_refusal(exc: InvalidStatus, secure: bool) -> Refusal:
    response = exc.response
    headers = redact_headers(dict(response.headers.raw_items()))
    for name in [n for n in headers if n.lower() == "location"]:
        headers[name] = redact_url(headers[name])  # its query may carry a token
    status = response.status_code
    message = f"server answered the upgrade with HTTP {status}"
    location = response.headers.get("Location")
    if status in REDIRECT_STATUSES and location:
        message += f", a redirect to {redact_url(location)} (not followed)"
    if not secure and any(text in (response.body or b"") for text in HTTPS_PORT_BODIES):
        why = f"it answered HTTP {status}: a plain HTTP request was sent to an HTTPS port"
        return Refusal("tls", f"this port speaks TLS ({why}): use wss://", status=status)
    return Refusal("http_status", message, status=status, headers=headers)


def _invalid_message(exc: InvalidMessage, host: str) -> Refusal:
    cause = exc.__cause__
    old_http = re.search(r"HTTP/1\.0 (\d{3})", str(cause))
    if old_http:
        status = int(old_http.group(1))
        message = f"server answered the upgrade with HTTP/1.0 {status}"
        return Refusal("http_status", message, status=status)
    if isinstance(cause, (EOFError, ConnectionError)):
        return Refusal("reset", "connection closed during the upgrade")
    if isinstance(cause, ssl.SSLError):
        return Refusal("tls", f"TLS handshake with {host} failed: {cause}")
    return Refusal("upgrade_not_performed", f"not an HTTP response to the upgrade: {cause}")


def upgrade_failure(
    exc: BaseException, host: str, secure: bool = False, first_bytes: bytes = b""
) -> Refusal | None:
    """Why the WebSocket upgrade failed with ``exc``; None for an error that is not a refusal.

    ``first_bytes`` is the start of what the server sent, which names a port that does not
    speak HTTP.
    """
    if isinstance(exc, InvalidStatus):
        return _http_refusal(exc, secure)
    not_http = _not_http(first_bytes, secure)
    if not_http is not None and not isinstance(exc, TIMEOUTS):
        return not_http
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Refusal("tls", f"TLS certificate of {host} rejected: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return Refusal("tls", f"TLS handshake with {host} failed: {exc.reason or exc}")
    if isinstance(exc, TIMEOUTS):
        return Refusal("timeout", "no answer to the WebSocket upgrade in time")
    if isinstance(exc, InvalidMessage):
        return _invalid_message(exc, host)
    if isinstance(exc, InvalidURI):
        return Refusal("other", "invalid WebSocket URL")
    if isinstance(exc, InvalidHandshake):
        return Refusal("upgrade_not_performed", f"upgrade not performed: {exc}")
    if isinstance(exc, ConnectionError | ConnectionClosed):
        return Refusal("reset", "connection closed during the upgrade")
    if isinstance(exc, OSError):
        return Refusal("other", f"connection failed: {exc}")
    return None


def failure_key(failure: HandshakeFailure) -> str:
    """A short name for a failed opening: ``http_503``, ``refused``, ``client_ports`` ..."""
    if failure.reason == "http_status":
        return f"http_{failure.status}"
    if f"[Errno {errno.EADDRNOTAVAIL}]" in failure.message:
        return "client_ports"
    return failure.reason


def client_limit_key(exc: BaseException) -> str | None:
    """``client_fd_limit`` or ``client_ports`` when ``exc`` is the client's own limit."""
    return CLIENT_ERRNOS.get(exc.errno) if isinstance(exc, OSError) and exc.errno else None
