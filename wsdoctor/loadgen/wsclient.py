"""A WebSocket client over a plain blocking socket, driven by websockets' Sans-I/O protocol.

Locust workers run on gevent, whose monkey-patching makes these sockets, locks and events
cooperative; nothing here imports gevent, so the module works on threads too. What the
transport sees goes into the shared classifier's :class:`LinkFacts`: a close here is the same
close the asyncio probes report.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

from wsdoctor import __version__
from wsdoctor.observations import Ending
from wsdoctor.probes.classify import (
    LinkFacts,
    Refusal,
    classify_ending,
    client_limit_key,
    connect_failure,
    failure_key,
    upgrade_failure,
)
from wsdoctor.tls import client_context

USER_AGENT = f"wsdoctor/{__version__} (locust)"
READ_SIZE = 65536
FIRST_BYTES = 16
CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ClientOptions:
    """How to open a connection: what ``wsdoctor capacity``'s connection options say."""

    url: str
    open_timeout_s: float = 5.0
    headers: tuple[tuple[str, str], ...] = ()
    origin: str | None = None
    subprotocols: tuple[str, ...] = ()
    insecure: bool = False
    cacert: str | None = None
    client_cert: str | None = None  # PEM, for mutual TLS
    client_key: str | None = None  # PEM; None: the key is in client_cert
    max_message_bytes: int | None = 2**20
    heartbeat_s: float = 20.0


@dataclass(repr=False)
class OpenFailed(Exception):
    """The opening failed: ``key`` as capacity steps count it, and why in words."""

    key: str
    message: str
    elapsed_s: float

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"

    def __repr__(self) -> str:  # Locust groups failures by repr: no timing in it
        return f"OpenFailed({self})"


@dataclass
class WsClient:
    """One open connection: its socket, its protocol and what its transport saw."""

    sock: socket.socket
    proto: ClientProtocol
    link: LinkFacts
    handshake_s: float
    heartbeat_s: float
    serving: bool = False  # a greenlet is in serve(), reading the socket
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    _pongs: dict[bytes, threading.Event] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        """True until the transport is gone or a ping went unanswered."""
        return self.link.lost_at is None and self.link.silent_at is None

    def ending(self) -> Ending:
        """How the connection ended, by the shared classifier (``open`` while it has not)."""
        return classify_ending(self.link, self.proto, time.monotonic())

    def _flush(self) -> None:
        data = self.proto.data_to_send()
        if not data:
            return
        with self._write_lock:
            for chunk in data:
                if chunk:
                    self.sock.sendall(chunk)
                    self.link.last_tx = time.monotonic()

    def _lost(self, exc: BaseException | None) -> None:
        if self.link.lost_at is None:
            self.link.lost_at = time.monotonic()
            self.link.lost_exc = exc
        for waiter in self._pongs.values():
            waiter.set()

    def _take(self, events: Iterable[object]) -> None:
        now = time.monotonic()
        for event in events:
            if not isinstance(event, Frame):
                continue
            if event.opcode is Opcode.CLOSE:
                self.link.close_rcvd_at = now
                continue
            self.link.last_rx = now
            if event.opcode is Opcode.PONG:
                waiter = self._pongs.pop(bytes(event.data), None)
                if waiter is not None:
                    waiter.set()

    def serve(self) -> Ending:
        """Read until the connection ends, pinging every ``heartbeat_s`` of silence.

        A heartbeat still unanswered at the next one marks the connection silent.
        """
        heartbeat: bytes | None = None
        self.serving = True
        try:
            while self.is_open:
                if self._read(self.heartbeat_s):
                    continue
                if heartbeat is not None and heartbeat in self._pongs:
                    self.link.silent_at = time.monotonic() - self.heartbeat_s
                    break
                try:
                    heartbeat = self._send_ping()[0]
                except OSError as exc:
                    self._lost(exc)
        finally:
            self.serving = False
        self._release()
        return self.ending()

    def _read(self, timeout_s: float) -> bool:
        """Read once and feed the protocol; False when nothing came within ``timeout_s``."""
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(READ_SIZE)
        except TimeoutError:
            return False
        except OSError as exc:
            self._lost(exc)
            return True
        if data:
            self.proto.receive_data(data)
        else:
            self.link.eof_at = time.monotonic()
            self.proto.receive_eof()
        self._take(self.proto.events_received())
        try:
            self._flush()
        except OSError as exc:
            self._lost(exc)
        if not data or self.proto.state is State.CLOSED:
            self._lost(None)
        return True

    def _send_ping(self) -> tuple[bytes, threading.Event]:
        payload = os.urandom(4)
        waiter = self._pongs[payload] = threading.Event()
        self.proto.send_ping(payload)
        self._flush()
        return payload, waiter

    def ping(self, timeout_s: float) -> float | None:
        """A protocol ping: the RTT in ms, or None (and the connection is marked silent).

        Needs :meth:`serve` running in another greenlet to read the pong.
        """
        sent_at = time.monotonic()
        try:
            _, waiter = self._send_ping()
        except OSError as exc:
            self._lost(exc)
            return None
        answered = waiter.wait(timeout_s)
        if not self.is_open:
            return None
        if not answered:
            self.link.silent_at = sent_at
            self._release()
            return None
        return (time.monotonic() - sent_at) * 1000

    def close(self) -> None:
        """Close on purpose: a close frame, a moment for the server's answer, the socket."""
        if self.is_open:
            self.link.closed_locally = True
            try:
                self.proto.send_close(1000)
                self._flush()
            except OSError as exc:
                self._lost(exc)
            deadline = time.monotonic() + CLOSE_TIMEOUT_S
            while self.link.lost_at is None and time.monotonic() < deadline:
                if self.serving:  # the reader sees the server's answer
                    time.sleep(0.02)
                else:
                    self._read(max(0.01, deadline - time.monotonic()))
        self._release()

    def _release(self) -> None:
        try:
            self.sock.close()
        finally:
            self._lost(None)


def _context(options: ClientOptions) -> ssl.SSLContext:
    return client_context(options.cacert, options.insecure, options.client_cert, options.client_key)


def _refused(refusal: Refusal, began: float) -> OpenFailed:
    return OpenFailed(failure_key(refusal.failure), refusal.message, time.monotonic() - began)


def _upgrade(sock: socket.socket, proto: ClientProtocol, deadline: float) -> bytes:
    """Send the upgrade and read until the protocol has a response; the first bytes read."""
    first = b""
    while proto.handshake_exc is None and proto.state is State.CONNECTING:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(READ_SIZE)
        first += data[: FIRST_BYTES - len(first)]
        if data:
            proto.receive_data(data)
        else:
            proto.receive_eof()
    return first


def open_client(options: ClientOptions) -> WsClient:
    """Open one connection; raise :class:`OpenFailed` with the shared classifier's key."""
    parts = urlsplit(options.url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    began = time.monotonic()
    deadline = began + options.open_timeout_s
    try:
        sock = socket.create_connection((host, port), timeout=options.open_timeout_s)
    except OSError as exc:
        limit = client_limit_key(exc)
        if limit is not None:
            raise OpenFailed(limit, str(exc), time.monotonic() - began) from None
        raise _refused(connect_failure(exc, host, port), began) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    proto = ClientProtocol(
        parse_uri(options.url),
        origin=Origin(options.origin) if options.origin else None,
        subprotocols=[Subprotocol(s) for s in options.subprotocols] or None,
        max_size=options.max_message_bytes,
    )
    first = b""
    try:
        if secure:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock = _context(options).wrap_socket(sock, server_hostname=host)
        request = proto.connect()
        request.headers["User-Agent"] = USER_AGENT
        for name, value in options.headers:
            request.headers[name] = value
        proto.send_request(request)
        sock.sendall(b"".join(proto.data_to_send()))
        first = _upgrade(sock, proto, deadline)
    except OSError as exc:
        sock.close()
        refusal = upgrade_failure(exc, host, secure, first)
        raise _refused(refusal or Refusal("other", str(exc)), began) from None
    if proto.handshake_exc is not None:
        sock.close()
        refusal = upgrade_failure(proto.handshake_exc, host, secure, first)
        raise _refused(refusal or Refusal("other", str(proto.handshake_exc)), began) from None
    now = time.monotonic()
    client = WsClient(
        sock=sock,
        proto=proto,
        link=LinkFacts(established_at=now, last_rx=now, last_tx=now),
        handshake_s=now - began,
        heartbeat_s=options.heartbeat_s,
    )
    client._take([e for e in proto.events_received() if not isinstance(e, Response)])
    client._flush()
    return client
