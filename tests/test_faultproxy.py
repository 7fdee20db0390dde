"""Fault proxy: timers, actions and delays measured on loopback with real sockets."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.client import connect as ws_connect

from wsdoctor.lab import FaultConfig, FaultProxy
from wsdoctor.server import ServeOptions, running_server

HOST = "127.0.0.1"


class Upstream:
    """Loopback TCP server: echo, sink (read only) or tick (also pushes a byte every 0.1 s)."""

    def __init__(self, mode: str = "echo") -> None:
        self.mode = mode
        self.received = bytearray()
        self.ended = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[object]] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        if self._tasks:  # let handlers see their EOF rather than be cancelled by asyncio.run
            await asyncio.wait(self._tasks, timeout=1)
        await self._server.wait_closed()

    async def _tick(self, writer: asyncio.StreamWriter) -> None:
        for _ in range(100):
            writer.write(b"t")
            await writer.drain()
            await asyncio.sleep(0.1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        tick = asyncio.create_task(self._tick(writer)) if self.mode == "tick" else None
        try:
            while data := await reader.read(65536):
                self.received += data
                if self.mode == "echo":
                    writer.write(data)
                    await writer.drain()
        except OSError:
            pass
        finally:
            if tick is not None:
                tick.cancel()
            self.ended += 1
            writer.close()


def config(upstream: Upstream, **faults: object) -> FaultConfig:
    return FaultConfig(HOST, upstream.port, **faults)  # type: ignore[arg-type]


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port)


async def wait_end(reader: asyncio.StreamReader, timeout: float) -> str:
    """Read until the connection ends: 'eof', 'reset' or 'timeout'."""

    async def drain() -> None:
        while await reader.read(65536):
            pass

    try:
        await asyncio.wait_for(drain(), timeout)
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "timeout"
    return "eof"


async def rtt(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> float:
    start = time.monotonic()
    writer.write(data)
    assert await asyncio.wait_for(reader.readexactly(len(data)), 2) == data
    return time.monotonic() - start


async def poll(condition: object, timeout: float = 2.0) -> None:
    """Wait (bounded) until condition() is true."""
    for _ in range(int(timeout / 0.01)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize(("action", "outcome"), [("fin", "eof"), ("rst", "reset")])
def test_idle_closes_at_deadline(action: str, outcome: str) -> None:
    async def main() -> None:
        async with (
            Upstream() as up,
            FaultProxy(config(up, idle_timeout_s=0.5, idle_action=action)) as proxy,
        ):
            reader, writer = await connect(proxy.port)
            start = time.monotonic()
            assert await wait_end(reader, 2) == outcome
            assert abs(time.monotonic() - start - 0.5) < 0.15
            await poll(lambda: up.ended == 1)
            assert proxy.faults_fired == {f"idle_{action}": 1}
            writer.close()

    asyncio.run(main())


def test_idle_silent_black_holes_until_stop() -> None:
    async def main() -> None:
        async with Upstream() as up:
            proxy = FaultProxy(config(up, idle_timeout_s=0.3, idle_action="silent"))
            await proxy.start()
            reader, writer = await connect(proxy.port)
            await rtt(reader, writer, b"hello")
            await asyncio.sleep(0.5)
            assert proxy.faults_fired == {"idle_silent": 1}
            writer.write(b"ping")
            await writer.drain()
            assert await wait_end(reader, 0.5) == "timeout"  # no answer and no EOF
            assert bytes(up.received) == b"hello"
            assert proxy.active_connections == 1 and up.ended == 0
            await proxy.stop()
            assert await wait_end(reader, 1) == "eof"
            await poll(lambda: up.ended == 1)
            writer.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("counts", "mode", "cut"),
    [("both", "sink", False), ("downstream", "sink", True), ("downstream", "tick", False)],
)
def test_idle_timer_reset_by_counted_direction(counts: str, mode: str, cut: bool) -> None:
    async def main() -> None:
        async with (
            Upstream(mode) as up,
            FaultProxy(config(up, idle_timeout_s=0.5, idle_counts=counts)) as proxy,
        ):
            reader, writer = await connect(proxy.port)
            start = time.monotonic()
            ended = asyncio.create_task(wait_end(reader, 3))
            for _ in range(8):  # client sends every 0.15 s for 1.2 s
                writer.write(b"x")
                await asyncio.sleep(0.15)
                if ended.done():
                    break
            if cut:
                assert ended.done() and ended.result() == "eof"
                assert abs(time.monotonic() - start - 0.5) < 0.2
                assert proxy.faults_fired == {"idle_fin": 1}
            else:
                assert not ended.done()
                assert proxy.faults_fired == {}
                assert len(up.received) == 8
            writer.close()
            ended.cancel()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("action", "error"), [("fin", asyncio.IncompleteReadError), ("rst", ConnectionResetError)]
)
def test_max_age_cuts_busy_connection(action: str, error: type[Exception]) -> None:
    async def main() -> None:
        async with (
            Upstream() as up,
            FaultProxy(
                config(up, idle_timeout_s=0.3, max_age_s=0.6, max_age_action=action)
            ) as proxy,
        ):
            reader, writer = await connect(proxy.port)
            start = time.monotonic()
            with pytest.raises(error):
                for _ in range(30):  # traffic every 0.05 s keeps the idle timer from firing
                    await rtt(reader, writer, b"abc")
                    await asyncio.sleep(0.05)
            assert abs(time.monotonic() - start - 0.6) < 0.15
            assert proxy.faults_fired == {f"max_age_{action}": 1}
            writer.close()

    asyncio.run(main())


def test_latency_delays_each_direction() -> None:
    async def main() -> None:
        async with Upstream() as up:
            reader, writer = await connect(up.port)
            assert await rtt(reader, writer, b"direct") < 0.05
            writer.close()
            async with FaultProxy(config(up, latency_ms=100)) as proxy:
                reader, writer = await connect(proxy.port)
                rtts = [await rtt(reader, writer, b"via") for _ in range(3)]
                assert all(0.19 < r < 0.28 for r in rtts), rtts
                writer.close()

    asyncio.run(main())


def test_jitter_preserves_order() -> None:
    async def main() -> None:
        async with Upstream() as up, FaultProxy(config(up, latency_ms=30, jitter_ms=30)) as proxy:
            reader, writer = await connect(proxy.port)
            sent = b"".join(b"%03d;" % i for i in range(30))
            for i in range(30):  # separate chunks 5 ms apart, each with its own delay
                writer.write(sent[i * 4 : i * 4 + 4])
                await asyncio.sleep(0.005)
            assert await asyncio.wait_for(reader.readexactly(len(sent)), 2) == sent
            writer.close()

    asyncio.run(main())


def test_stall_holds_then_releases() -> None:
    async def main() -> None:
        async with (
            Upstream() as up,
            FaultProxy(config(up, stall_every_s=0.4, stall_for_s=0.25)) as proxy,
        ):
            reader, writer = await connect(proxy.port)
            sent_at: list[float] = []

            async def receive() -> list[float]:
                rtts = []
                for i in range(20):
                    assert await reader.readexactly(4) == b"%03d;" % i
                    rtts.append(time.monotonic() - sent_at[i])
                return rtts

            received = asyncio.create_task(asyncio.wait_for(receive(), 3))
            for i in range(20):
                sent_at.append(time.monotonic())
                writer.write(b"%03d;" % i)
                await asyncio.sleep(0.05)
            rtts = await received
            assert min(rtts) < 0.05
            assert 0.15 < max(rtts[:12]) < 0.35  # first window: [0.4, 0.65) after start
            assert proxy.faults_fired.get("stall", 0) >= 1
            writer.close()

    asyncio.run(main())


def test_refuse_after_resets_extra_connections() -> None:
    async def main() -> None:
        async with Upstream() as up, FaultProxy(config(up, refuse_after=1)) as proxy:
            r1, w1 = await connect(proxy.port)
            await rtt(r1, w1, b"one")
            r2, w2 = await connect(proxy.port)
            assert await wait_end(r2, 1) == "reset"
            assert proxy.faults_fired == {"refused": 1}
            await rtt(r1, w1, b"still")
            w1.close()
            await poll(lambda: proxy.active_connections == 0)
            r3, w3 = await connect(proxy.port)
            await rtt(r3, w3, b"three")
            assert proxy.connections_accepted == 2
            w2.close()
            w3.close()

    asyncio.run(main())


def test_websocket_through_proxy_closes_cleanly_or_sees_bare_fin() -> None:
    async def main() -> None:
        async with (
            running_server(ServeOptions(port=0)) as server_port,
            FaultProxy(FaultConfig(HOST, server_port, idle_timeout_s=0.4)) as proxy,
        ):
            url = f"ws://{HOST}:{proxy.port}/"
            async with ws_connect(url, ping_interval=None) as ws:
                await ws.send("a")
                assert await asyncio.wait_for(ws.recv(), 2) == "a"
            assert ws.close_code == 1000  # the closing handshake and both FINs pass through
            async with ws_connect(url, ping_interval=None) as ws:
                start = time.monotonic()
                await asyncio.wait_for(ws.wait_closed(), 2)
                assert abs(time.monotonic() - start - 0.4) < 0.15
                assert ws.close_code == 1006 and ws.protocol.close_rcvd is None
            await poll(lambda: proxy.active_connections == 0)
            assert proxy.faults_fired == {"idle_fin": 1}

    asyncio.run(main())


def test_config_rejects_stall_longer_than_period() -> None:
    with pytest.raises(ValueError):
        FaultConfig(HOST, 1, stall_every_s=0.5, stall_for_s=0.5)
