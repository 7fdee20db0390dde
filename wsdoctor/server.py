"""`wsdoctor serve`: a reference WebSocket endpoint with configurable timeouts.

It echoes messages, answers JSON application pings, and can end connections after an idle time or
a maximum age the way real servers do: with a close frame, a bare TCP FIN, or a TCP RST.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import DATA_OPCODES, Frame
from websockets.http11 import Request, Response
from websockets.protocol import Event

from wsdoctor.signals import on_stop_signals

CloseKind = Literal["frame", "fin", "rst"]
Gate = Callable[[ServerConnection, Request], Response | None]

LISTEN_BACKLOG = 1024  # room for bursts of new connections (asyncio's default is 100)


@dataclass
class ServeOptions:
    """How the reference endpoint listens, pings and times connections out."""

    host: str = "127.0.0.1"
    port: int = 8765
    ping_interval_s: float | None = None
    idle_timeout_s: float | None = None
    idle_ignores_pings: bool = False
    idle_close: CloseKind = "frame"
    max_age_s: float | None = None
    max_age_close: CloseKind = "frame"
    max_message_bytes: int = 1 << 20
    max_messages_per_s: float | None = None
    rate_close_code: int = 1008
    max_connections: int | None = None  # answer HTTP 503 to handshakes beyond this many open
    open_timeout_s: float = 10.0  # drop clients that have not completed the handshake by then
    token: str | None = field(default=None, repr=False)  # else HTTP 401; never printed


class _TrackedConnection(ServerConnection):
    """Server connection that timestamps received frames, for idle timers."""

    last_frame_at = 0.0
    last_data_at = 0.0

    def process_event(self, event: Event) -> None:
        super().process_event(event)
        if isinstance(event, Frame):
            self.last_frame_at = self.loop.time()
            if event.opcode in DATA_OPCODES:
                self.last_data_at = self.last_frame_at


def _reply(message: str | bytes) -> str | bytes:
    """The echo of a message, or a pong for a JSON application ping."""
    if isinstance(message, str):
        try:
            data = json.loads(message)
        except ValueError:
            return message
        if isinstance(data, dict) and data.get("type") == "ping":
            return json.dumps({"type": "pong", "server_time": time.time(), "echo": data.get("id")})
    return message


async def _echo(ws: ServerConnection, options: ServeOptions) -> None:
    """Answer every message; close when more than ``max_messages_per_s`` arrive in 1 s."""
    limit = options.max_messages_per_s
    arrivals: collections.deque[float] = collections.deque()
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            if limit is not None:
                now = ws.loop.time()
                arrivals.append(now)
                while arrivals[0] <= now - 1.0:
                    arrivals.popleft()
                if len(arrivals) > limit:
                    await ws.close(options.rate_close_code, "message rate limit")
                    return
            await ws.send(_reply(message))


async def _due(ws: _TrackedConnection, options: ServeOptions) -> tuple[CloseKind, str]:
    """Sleep until the idle or age deadline passes; return how and why to close."""
    opened_at = ws.last_frame_at = ws.last_data_at = ws.loop.time()
    while True:  # each round sleeps until a deadline that lies in the future
        now = ws.loop.time()
        deadlines = []
        if options.max_age_s is not None:
            if now >= opened_at + options.max_age_s:
                return options.max_age_close, "max age"
            deadlines.append(opened_at + options.max_age_s)
        if options.idle_timeout_s is not None:
            last = ws.last_data_at if options.idle_ignores_pings else ws.last_frame_at
            if now >= last + options.idle_timeout_s:
                return options.idle_close, "idle timeout"
            deadlines.append(last + options.idle_timeout_s)
        await asyncio.sleep(min(deadlines) - now)


async def _close(ws: ServerConnection, kind: CloseKind, reason: str) -> None:
    """End a connection with a close frame (1000), a bare FIN, or an RST."""
    if kind == "frame":
        await ws.close(1000, reason)
        return
    if kind == "rst":
        sock = ws.transport.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()
    else:
        ws.transport.close()
    await ws.wait_closed()


async def _handle(ws: _TrackedConnection, options: ServeOptions) -> None:
    if options.idle_timeout_s is None and options.max_age_s is None:
        await _echo(ws, options)
        return
    echo = asyncio.create_task(_echo(ws, options))
    due = asyncio.create_task(_due(ws, options))
    try:
        done, _ = await asyncio.wait({echo, due}, return_when=asyncio.FIRST_COMPLETED)
        if due in done:
            echo.cancel()
            await _close(ws, *due.result())
    finally:
        echo.cancel()
        due.cancel()
        await asyncio.gather(echo, due, return_exceptions=True)


def _admission(limit: int | None) -> Gate | None:
    """A handshake gate answering HTTP 503 while ``limit`` connections are open."""
    if limit is None:
        return None
    admitted: set[ServerConnection] = set()

    def admit(ws: ServerConnection, request: Request) -> Response | None:
        if len(admitted) >= limit:
            return ws.respond(503, "Too many connections\n")
        admitted.add(ws)
        ws.connection_lost_waiter.add_done_callback(lambda _: admitted.discard(ws))
        return None

    return admit


def _same(given: str, expected: bytes) -> bool:
    """Compare a client's token in constant time."""
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogatepass"), expected)


def presents_token(request: Request, token: str) -> bool:
    """True when the request carries ``Authorization: Bearer <token>`` or ``?token=<token>``."""
    expected = token.encode("utf-8", "surrogatepass")
    for header in request.headers.get_all("Authorization"):
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and _same(value, expected):
            return True
    query = urlsplit(request.path).query
    return any(
        name == "token" and _same(value, expected)
        for name, value in parse_qsl(query, keep_blank_values=True)
    )


def _token_gate(token: str | None) -> Gate | None:
    """A handshake gate answering HTTP 401 to clients without the token."""
    if token is None:
        return None

    def check(ws: ServerConnection, request: Request) -> Response | None:
        if presents_token(request, token):
            return None
        response = ws.respond(401, "Missing or wrong token\n")
        response.headers["WWW-Authenticate"] = 'Bearer realm="wsdoctor"'
        return response

    return check


def _gates(options: ServeOptions) -> Gate | None:
    """The ``process_request`` hook: the token first, then the connection limit."""
    gates = [g for g in (_token_gate(options.token), _admission(options.max_connections)) if g]
    if not gates:
        return None

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        for gate in gates:
            response = gate(ws, request)
            if response is not None:
                return response
        return None

    return process_request


@asynccontextmanager
async def running_server(options: ServeOptions) -> AsyncIterator[int]:
    """Serve while the context is open; yield the bound port (options.port may be 0)."""

    async def handler(ws: ServerConnection) -> None:
        assert isinstance(ws, _TrackedConnection)
        await _handle(ws, options)

    async with serve(
        handler,
        options.host,
        options.port,
        ping_interval=options.ping_interval_s,
        max_size=options.max_message_bytes,
        create_connection=_TrackedConnection,
        process_request=_gates(options),
        open_timeout=options.open_timeout_s,
        backlog=LISTEN_BACKLOG,
    ) as server:
        yield server.sockets[0].getsockname()[1]


async def serve_until_signalled(
    options: ServeOptions, ready: Callable[[int], object] | None = None
) -> int:
    """Serve until SIGINT or SIGTERM; close every connection (1001) and return the signal."""
    stop: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def stop_on(signum: int) -> None:
        if not stop.done():
            stop.set_result(signum)

    with on_stop_signals(stop_on):
        async with running_server(options) as port:
            if ready is not None:
                ready(port)
            return await stop
