"""An instrumented WebSocket client connection: phase timings, byte times and how it ended.

websockets' own keepalive is off on every probe connection: the probe decides when to ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidMessage
from websockets.frames import Frame, Opcode

from wsdoctor import __version__
from wsdoctor.observations import (
    ConnectionRecord,
    ConnectionRole,
    Ending,
    Event,
    EventKind,
    Handshake,
    HandshakeFailure,
)
from wsdoctor.plan import ConnectOptions, PathSpec
from wsdoctor.probes.classify import (
    TLS_SILENT,
    LinkFacts,
    classify_ending,
    connect_failure,
    upgrade_failure,
)
from wsdoctor.probes.forward_proxy import ForwardProxyError, open_tunnel
from wsdoctor.redact import redact_headers
from wsdoctor.tls import client_context

USER_AGENT = f"wsdoctor/{__version__}"
CLOSE_TIMEOUT_S = 2.0
FIRST_BYTES = 16
"""How much of the server's first answer is kept, to name what answered when it is not HTTP."""
TLS_CHECK_S = 2.0
"""How long the check whether a port that closed on a ws:// request speaks TLS may take."""


class InstrumentedConnection(ClientConnection):
    """A client connection that remembers when bytes arrived and how the transport ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made_at: float | None = None
        self.last_rx = time.monotonic()
        self.last_tx = self.last_rx
        self.eof_at: float | None = None
        self.lost_at: float | None = None
        self.lost_exc: BaseException | None = None
        self.server_ping_times: list[float] = []
        self.close_rcvd_at: float | None = None
        self.established = False
        self.first_bytes = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made_at = time.monotonic()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if len(self.first_bytes) < FIRST_BYTES:
            self.first_bytes += data[: FIRST_BYTES - len(self.first_bytes)]
        super().data_received(data)

    def eof_received(self) -> None:
        self.eof_at = time.monotonic()
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_at = time.monotonic()
        self.lost_exc = exc
        super().connection_lost(exc)

    def process_event(self, event: Any) -> None:
        if self.established and isinstance(event, Frame):
            now = time.monotonic()
            if event.opcode is Opcode.CLOSE:
                self.close_rcvd_at = now  # the closing handshake is not activity
            else:
                self.last_rx = now
            if event.opcode is Opcode.PING:
                self.server_ping_times.append(now)
                self.last_tx = now  # the protocol answers with a pong at once
        super().process_event(event)

    def mark_sent(self) -> None:
        """Note that the probe just wrote something."""
        self.last_tx = time.monotonic()


@dataclass
class ProbeConnection:
    """One probe connection and the record being written about it."""

    conn: InstrumentedConnection
    record_id: str
    role: ConnectionRole
    established_at: float
    opened_at: float
    handshake: Handshake
    planned_idle_s: float | None = None
    interval_s: float | None = None
    events: list[Event] = field(default_factory=list)
    closed_locally: bool = False
    silent_at: float | None = None

    def now(self) -> float:
        """Seconds since the handshake completed."""
        return time.monotonic() - self.established_at

    def log(self, kind: EventKind, size: int | None = None, rtt_ms: float | None = None) -> None:
        """Record one event at the current time."""
        self.events.append(Event(t=round(self.now(), 4), kind=kind, size=size, rtt_ms=rtt_ms))

    @property
    def is_open(self) -> bool:
        """True until the transport is gone or the probe declared it silent."""
        return self.conn.lost_at is None and self.silent_at is None

    def idle_s(self, at: float | None = None) -> float:
        """Seconds since the last byte in either direction."""
        at = time.monotonic() if at is None else at
        return at - max(self.conn.last_rx, self.conn.last_tx)

    async def ping(self, timeout_s: float) -> float | None:
        """Send a protocol ping; return the RTT in ms, or None (and mark silent) on timeout.

        Raises ConnectionClosed when the connection is already gone.
        """
        sent_at = time.monotonic()
        waiter = await self.conn.ping()
        self.conn.mark_sent()
        self.log("ping_sent")
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except TimeoutError:
            self.log("ping_timeout")
            self.silent_at = sent_at
            return None
        rtt_ms = (time.monotonic() - sent_at) * 1000
        self.log("pong_received", rtt_ms=round(rtt_ms, 3))
        return rtt_ms

    async def send(self, message: str | bytes) -> None:
        """Send one application message."""
        await self.conn.send(message)
        self.conn.mark_sent()
        self.log("message_sent", size=len(message))

    async def close(self) -> None:
        """Close on purpose: a close frame when the connection is alive, an abort otherwise."""
        if self.silent_at is not None:
            self.conn.transport.abort()
            return
        if self.conn.lost_at is not None:
            return
        self.closed_locally = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(), CLOSE_TIMEOUT_S)
        if self.conn.lost_at is None:
            self.conn.transport.abort()

    def record(self, stage_end: float | None = None) -> ConnectionRecord:
        """Freeze what is known about this connection into a ConnectionRecord."""
        return ConnectionRecord(
            id=self.record_id,
            role=self.role,
            opened_at=round(self.opened_at, 4),
            handshake=self.handshake,
            ending=self.ending(stage_end),
            planned_idle_s=self.planned_idle_s,
            interval_s=self.interval_s,
            events=list(self.events),
            server_pings=len(self.conn.server_ping_times),
            server_ping_interval_s=_median_gap(self.conn.server_ping_times),
        )

    def link(self) -> LinkFacts:
        """What the transport saw of this connection, for the shared classifier."""
        conn = self.conn
        return LinkFacts(
            established_at=self.established_at,
            last_rx=conn.last_rx,
            last_tx=conn.last_tx,
            lost_at=conn.lost_at,
            lost_exc=conn.lost_exc,
            eof_at=conn.eof_at,
            close_rcvd_at=conn.close_rcvd_at,
            silent_at=self.silent_at,
            closed_locally=self.closed_locally,
            cause=conn.connection_exc,
        )

    def ending(self, stage_end: float | None = None) -> Ending:
        """How this connection ended (or ``open`` if it had not by ``stage_end``)."""
        now = stage_end or time.monotonic()
        return classify_ending(self.link(), self.conn.protocol, now)


def _median_gap(times: list[float]) -> float | None:
    if len(times) < 2:
        return None
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return round(gaps[len(gaps) // 2], 3)


class HandshakeError(Exception):
    """The opening handshake failed; ``handshake`` says where and why."""

    def __init__(self, handshake: Handshake) -> None:
        assert handshake.failure is not None
        super().__init__(handshake.failure.message)
        self.handshake = handshake


def _ssl_context(url: str, options: ConnectOptions) -> ssl.SSLContext | None:
    if not url.startswith("wss://"):
        return None
    return client_context(options.cacert, options.insecure, options.client_cert, options.client_key)


def _fail(timings: dict[str, float | None], reason: str, message: str, **extra: Any) -> None:
    failure = HandshakeFailure(reason=reason, message=message, status=extra.pop("status", None))  # type: ignore[arg-type]
    handshake = Handshake(
        ok=False,
        failure=failure,
        dns_s=timings.get("dns_s"),
        tcp_s=timings.get("tcp_s"),
        tls_s=timings.get("tls_s"),
        upgrade_s=timings.get("upgrade_s"),
        **extra,
    )
    raise HandshakeError(handshake)


async def _tcp_connect(
    host: str, port: int, deadline: float, timings: dict[str, float | None]
) -> socket.socket:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), deadline - started
        )
    except socket.gaierror as exc:
        _fail(timings, "dns", f"cannot resolve {host!r}: {exc.strerror or exc}")
    except TimeoutError:
        _fail(timings, "timeout", f"DNS lookup of {host!r} timed out")
    timings["dns_s"] = round(time.monotonic() - started, 6)
    started = time.monotonic()
    last_error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, address), deadline - time.monotonic())
        except TimeoutError:
            sock.close()
            _fail(timings, "timeout", f"TCP connect to {host}:{port} timed out")
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        timings["tcp_s"] = round(time.monotonic() - started, 6)
        return sock
    refusal = connect_failure(last_error or OSError("no address"), host, port)
    _fail(timings, refusal.reason, refusal.message)
    raise AssertionError("unreachable")


async def open_probe_connection(
    path: PathSpec,
    options: ConnectOptions,
    record_id: str,
    role: ConnectionRole,
    run_started: float,
) -> ProbeConnection:
    """Open one instrumented connection over ``path``; raise HandshakeError on failure."""
    parts = urlsplit(path.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    timings: dict[str, float | None] = {"dns_s": None, "tcp_s": None, "tls_s": None}
    begun = time.monotonic()
    deadline = begun + options.open_timeout_s
    if path.proxy:
        try:
            sock = await open_tunnel(path.proxy, host, port, deadline - begun)
        except ForwardProxyError as exc:
            _fail(timings, exc.reason, str(exc), status=exc.status)
        timings["tcp_s"] = round(time.monotonic() - begun, 6)
    else:
        sock = await _tcp_connect(host, port, deadline, timings)
    tcp_done = time.monotonic()
    upgrade_began = tcp_done
    made: list[InstrumentedConnection] = []

    def instrumented(*args: Any, **kwargs: Any) -> InstrumentedConnection:
        made.append(InstrumentedConnection(*args, **kwargs))
        return made[-1]

    try:
        conn = await _ConnectOnce(
            path.url,
            sock=sock,
            ssl=_ssl_context(path.url, options),
            server_hostname=host if parts.scheme == "wss" else None,
            create_connection=instrumented,  # type: ignore[arg-type]
            additional_headers=list(options.headers),
            subprotocols=list(options.subprotocols) or None,  # type: ignore[arg-type]
            origin=options.origin,  # type: ignore[arg-type]
            user_agent_header=USER_AGENT,
            compression=None,
            proxy=None,
            open_timeout=max(0.1, deadline - time.monotonic()),
            ping_interval=None,
            ping_timeout=None,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=options.max_message_bytes,
        )
    except BaseException as exc:
        sock.close()
        if not isinstance(exc, Exception):
            raise
        first_bytes = made[-1].first_bytes if made else b""
        secure = parts.scheme == "wss"
        closed = isinstance(exc, InvalidMessage | ConnectionError) and not first_bytes
        if closed and not secure and not path.proxy:
            seconds = min(TLS_CHECK_S, max(0.5, deadline - time.monotonic()))
            if await _speaks_tls(host, port, seconds):
                first_bytes = TLS_SILENT
        _classify_upgrade_failure(exc, timings, host, secure, first_bytes)
        raise
    established = time.monotonic()
    assert isinstance(conn, InstrumentedConnection)  # built by ``instrumented`` above
    made_at = conn.made_at or tcp_done
    if parts.scheme == "wss":
        timings["tls_s"] = round(made_at - tcp_done, 6)
        upgrade_began = made_at
    conn.established = True
    conn.last_rx = established
    conn.last_tx = established
    response = conn.response
    handshake = Handshake(
        ok=True,
        dns_s=timings.get("dns_s"),
        tcp_s=timings.get("tcp_s"),
        tls_s=timings.get("tls_s"),
        upgrade_s=round(established - upgrade_began, 6),
        status=response.status_code if response else 101,
        headers=redact_headers(dict(response.headers.raw_items())) if response else {},
        subprotocol=conn.subprotocol,
    )
    return ProbeConnection(
        conn=conn,
        record_id=record_id,
        role=role,
        established_at=established,
        opened_at=established - run_started,
        handshake=handshake,
    )


async def _speaks_tls(host: str, port: int, timeout_s: float) -> bool:
    """True when a TLS handshake with ``host:port`` completes (certificates not checked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host or None),
            timeout_s,
        )
    except (TimeoutError, OSError, ValueError):
        return False
    writer.transport.abort()
    return True


class _ConnectOnce(connect):
    """websockets' ``connect`` without following redirects: a redirect is a finding."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


def _classify_upgrade_failure(
    exc: Exception,
    timings: dict[str, float | None],
    host: str,
    secure: bool = False,
    first_bytes: bytes = b"",
) -> None:
    refusal = upgrade_failure(exc, host, secure, first_bytes)
    if refusal is not None:
        extra = {"headers": refusal.headers} if refusal.headers else {}
        _fail(timings, refusal.reason, refusal.message, status=refusal.status, **extra)
