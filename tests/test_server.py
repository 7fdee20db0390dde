"""Reference server: echo, application pings, server pings, idle and age timers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from wsdoctor.server import ServeOptions, running_server


def options(**kwargs: object) -> ServeOptions:
    return ServeOptions(port=0, **kwargs)  # type: ignore[arg-type]


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/"


class PingCountingClient(ClientConnection):
    """Client connection that counts Ping frames received from the server."""

    pings_received = 0

    def process_event(self, event: Event) -> None:
        super().process_event(event)
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings_received += 1


async def raw_upgrade(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a WebSocket by hand so tests see the exact bytes (or lack of them) at the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def read_to_end(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, str]:
    """Everything received until the connection ends, and how it ended: 'eof' or 'reset'."""
    received = bytearray()

    async def drain() -> None:
        while data := await reader.read(65536):
            received.extend(data)

    try:
        await asyncio.wait_for(drain(), timeout)
    except ConnectionResetError:
        return bytes(received), "reset"
    return bytes(received), "eof"


def test_echoes_text_and_binary() -> None:
    async def main() -> None:
        async with running_server(options()) as port, connect(url(port), ping_interval=None) as ws:
            for message in ["hello", b"\x00\x01\xff", '{"type": "other", "id": 1}', "{not json"]:
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), 2) == message

    asyncio.run(main())


def test_application_ping_gets_pong() -> None:
    async def main() -> None:
        async with running_server(options()) as port, connect(url(port), ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "ping", "id": 7}))
            pong = json.loads(await asyncio.wait_for(ws.recv(), 2))
            assert pong["type"] == "pong" and pong["echo"] == 7
            assert abs(pong["server_time"] - time.time()) < 5
            await ws.send('{"type": "ping"}')
            assert json.loads(await asyncio.wait_for(ws.recv(), 2))["echo"] is None

    asyncio.run(main())


def test_message_size_limit_closes_1009() -> None:
    async def main() -> None:
        async with (
            running_server(options(max_message_bytes=1000)) as port,
            connect(url(port), ping_interval=None) as ws,
        ):
            await ws.send(b"x" * 1000)
            assert await asyncio.wait_for(ws.recv(), 2) == b"x" * 1000
            await ws.send(b"x" * 1001)
            await asyncio.wait_for(ws.wait_closed(), 2)
            assert ws.close_code == 1009

    asyncio.run(main())


@pytest.mark.parametrize(("interval", "expected"), [(0.2, range(2, 5)), (None, range(0, 1))])
def test_server_pings_only_when_asked(interval: float | None, expected: range) -> None:
    async def main() -> None:
        async with (
            running_server(options(ping_interval_s=interval)) as port,
            connect(url(port), ping_interval=None, create_connection=PingCountingClient) as ws,
        ):
            await asyncio.sleep(0.7)
            assert isinstance(ws, PingCountingClient)
            assert ws.pings_received in expected

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["frame", "fin", "rst"])
def test_idle_timeout_close_kinds(kind: str) -> None:
    async def main() -> None:
        async with running_server(options(idle_timeout_s=0.4, idle_close=kind)) as port:
            reader, writer = await raw_upgrade(port)
            start = time.monotonic()
            if kind == "frame":
                head = await asyncio.wait_for(reader.readexactly(2), 2)
                elapsed = time.monotonic() - start
                assert head[0] == 0x88  # FIN bit + close opcode
                payload = await reader.readexactly(head[1])
                assert struct.unpack("!H", payload[:2])[0] == 1000
                assert payload[2:] == b"idle timeout"
            else:
                received, end = await read_to_end(reader, 2)
                elapsed = time.monotonic() - start
                assert received == b""  # no close frame
                assert end == {"fin": "eof", "rst": "reset"}[kind]
            assert abs(elapsed - 0.4) < 0.15
            writer.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("ignores_pings", "send", "survives"),
    [(False, "ping", True), (True, "ping", False), (True, "message", True)],
)
def test_idle_timer_and_protocol_pings(ignores_pings: bool, send: str, survives: bool) -> None:
    async def main() -> None:
        opts = options(idle_timeout_s=0.5, idle_ignores_pings=ignores_pings)
        async with running_server(opts) as port, connect(url(port), ping_interval=None) as ws:
            start = time.monotonic()

            async def closed_at() -> float:
                await ws.wait_closed()
                return time.monotonic()

            closed = asyncio.create_task(closed_at())
            for _ in range(8):  # client traffic every 0.15 s for 1.2 s
                if closed.done():
                    break
                if send == "ping":
                    await ws.ping()
                else:
                    await ws.send("x")
                    await asyncio.wait_for(ws.recv(), 1)
                await asyncio.sleep(0.15)
            if survives:
                assert not closed.done()
            else:
                assert closed.done()
                assert abs(closed.result() - start - 0.5) < 0.15
                assert (ws.close_code, ws.close_reason) == (1000, "idle timeout")
            closed.cancel()

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["frame", "fin"])
def test_max_age_closes_busy_connection(kind: str) -> None:
    async def main() -> None:
        opts = options(idle_timeout_s=0.3, max_age_s=0.6, max_age_close=kind)
        async with running_server(opts) as port, connect(url(port), ping_interval=None) as ws:
            start = time.monotonic()
            with pytest.raises(ConnectionClosedError if kind == "fin" else ConnectionClosedOK):
                for i in range(30):  # a message every 0.05 s keeps the idle timer from firing
                    await ws.send(str(i))
                    assert await asyncio.wait_for(ws.recv(), 1) == str(i)
                    await asyncio.sleep(0.05)
            assert abs(time.monotonic() - start - 0.6) < 0.15
            if kind == "frame":
                assert (ws.close_code, ws.close_reason) == (1000, "max age")
            else:
                assert ws.close_code == 1006 and ws.protocol.close_rcvd is None

    asyncio.run(main())
