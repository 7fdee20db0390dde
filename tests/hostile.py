"""Hostile and broken endpoints on loopback, each a raw asyncio TCP server in a thread."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import socket
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_BEHAVIOUR_S = 30.0


async def read_request(reader: asyncio.StreamReader) -> dict[str, str]:
    """Read one HTTP request head; return its headers (lower-cased names)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines) if k
    }


def switching_protocols(key: str, accept: str | None = None) -> bytes:
    """A 101 response, with the right Sec-WebSocket-Accept unless ``accept`` is given."""
    digest = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept or digest}\r\n\r\n"
    ).encode()


async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Complete a valid upgrade."""
    headers = await read_request(reader)
    writer.write(switching_protocols(headers.get("sec-websocket-key", "")))
    await writer.drain()


async def hold(reader: asyncio.StreamReader) -> None:
    """Read and discard until the client goes, for at most MAX_BEHAVIOUR_S."""
    try:
        async with asyncio.timeout(MAX_BEHAVIOUR_S):
            while await reader.read(65536):
                pass
    except (TimeoutError, OSError):
        pass


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextmanager
def in_thread(server: Callable[[], AbstractAsyncContextManager[int]]) -> Iterator[int]:
    """Run the async context manager ``server()`` (it yields a port) on a loop in a thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []
    stop = asyncio.Event()

    async def main() -> None:
        async with server() as bound:
            port.append(bound)
            started.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MAX_BEHAVIOUR_S * 4)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(5), "the test server did not start"
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@contextmanager
def raw_server(behaviour: Behaviour, host: str = "127.0.0.1") -> Iterator[int]:
    """Run ``behaviour`` for every connection on a free port, in a background thread."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await behaviour(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.transport.abort()

    @asynccontextmanager
    async def server() -> AsyncIterator[int]:
        listener = await asyncio.start_server(handle, host, 0)
        async with listener:
            yield listener.sockets[0].getsockname()[1]
            listener.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

    with in_thread(server) as port:
        yield port


@contextmanager
def tls_echo_server(context: ssl.SSLContext) -> Iterator[int]:
    """A real WebSocket echo server (websockets) with TLS ``context``; yields its port."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    @asynccontextmanager
    async def server() -> AsyncIterator[int]:
        async with serve(echo, "127.0.0.1", 0, ssl=context) as running:
            yield running.sockets[0].getsockname()[1]

    with in_thread(server) as port:
        yield port
