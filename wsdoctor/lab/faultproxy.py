"""A TCP proxy with switchable faults: idle and age cut-offs, latency, stalls, refusals.

Each accepted connection is relayed to one upstream connection. Bytes flow through a small
per-direction queue so that latency and stalls delay them without reordering, and a per-connection
watchdog ends the link the way real intermediaries do (FIN, RST or a silent black hole).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass
from typing import Literal

Action = Literal["fin", "rst", "silent"]

_CHUNK = 64 * 1024
_QUEUE_CHUNKS = 64
_CONNECT_TIMEOUT_S = 5.0


@dataclass
class FaultConfig:
    """Where to relay and which faults to inject (times in seconds unless named _ms)."""

    upstream_host: str
    upstream_port: int
    idle_timeout_s: float | None = None
    idle_action: Action = "fin"
    idle_counts: Literal["both", "downstream"] = "both"
    max_age_s: float | None = None
    max_age_action: Action = "fin"
    latency_ms: float = 0
    jitter_ms: float = 0
    stall_every_s: float | None = None
    stall_for_s: float = 0
    refuse_after: int | None = None

    def __post_init__(self) -> None:
        for name in ("idle_timeout_s", "max_age_s", "stall_every_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        if min(self.latency_ms, self.jitter_ms, self.stall_for_s) < 0:
            raise ValueError("latency_ms, jitter_ms and stall_for_s must not be negative")
        if self.stall_every_s is not None and self.stall_for_s >= self.stall_every_s:
            raise ValueError("stall_for_s must be shorter than stall_every_s")
        if self.refuse_after is not None and self.refuse_after < 0:
            raise ValueError("refuse_after must not be negative")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a TCP RST (SO_LINGER on, 0 s)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read and drop everything until the peer closes, then close our side."""
    with contextlib.suppress(OSError):
        while await reader.read(_CHUNK):
            pass
    writer.close()


class _Link:
    """One relayed connection: two directions, a watchdog and the fault it may fire."""

    def __init__(
        self,
        proxy: FaultProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.config = proxy.config
        self.client = client
        self.upstream = upstream
        self.loop = asyncio.get_running_loop()
        self.opened_at = self.last_forward = self.loop.time()

    async def run(self) -> None:
        """Relay until both directions end, an error occurs, or a fault fires."""
        pending: set[asyncio.Task[object]] = {
            asyncio.create_task(self._direction(self.client[0], self.upstream[1], False)),
            asyncio.create_task(self._direction(self.upstream[0], self.client[1], True)),
        }
        directions = set(pending)
        watchdog = None
        if self.config.idle_timeout_s is not None or self.config.max_age_s is not None:
            watchdog = asyncio.create_task(self._watchdog())
            pending.add(watchdog)
        try:
            while pending & directions:  # at most three rounds: one per task
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if watchdog in done:
                    await self._fire(*watchdog.result(), directions)
                    return
                if any([task.exception() is not None for task in done]):  # retrieve all
                    return
        finally:
            tasks = [task for task in (*directions, watchdog) if task is not None]
            for task in tasks:
                task.cancel()
            for _, writer in (self.client, self.upstream):
                writer.close()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _direction(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool
    ) -> None:
        """Forward one direction through a delay queue; pass EOF on at the end."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(_QUEUE_CHUNKS)
        pull = asyncio.create_task(self._pull(reader, queue))
        push = asyncio.create_task(self._push(queue, writer, downstream))
        try:
            await asyncio.gather(pull, push)
        finally:
            pull.cancel()
            push.cancel()

    async def _pull(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes] | None]
    ) -> None:
        while data := await reader.read(_CHUNK):
            await queue.put((self.loop.time() + self.proxy.delay_s(), data))
        await queue.put(None)

    async def _push(
        self,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        writer: asyncio.StreamWriter,
        downstream: bool,
    ) -> None:
        while (item := await queue.get()) is not None:
            release_at, data = item
            wait = release_at - self.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            hold = self.proxy.stall_remaining_s()
            if hold > 0:
                await asyncio.sleep(hold)
            writer.write(data)
            await writer.drain()
            if downstream or self.config.idle_counts == "both":
                self.last_forward = self.loop.time()
        if writer.can_write_eof():
            writer.write_eof()

    async def _watchdog(self) -> tuple[str, Action]:
        """Sleep to the nearest deadline; return which fault is due and its action."""
        cfg = self.config
        while True:  # each round sleeps until a deadline that lies in the future
            now = self.loop.time()
            deadlines = []
            if cfg.max_age_s is not None:
                if now >= self.opened_at + cfg.max_age_s:
                    return "max_age", cfg.max_age_action
                deadlines.append(self.opened_at + cfg.max_age_s)
            if cfg.idle_timeout_s is not None:
                if now >= self.last_forward + cfg.idle_timeout_s:
                    return "idle", cfg.idle_action
                deadlines.append(self.last_forward + cfg.idle_timeout_s)
            await asyncio.sleep(min(deadlines) - now)

    async def _fire(
        self, fault: str, action: Action, directions: set[asyncio.Task[object]]
    ) -> None:
        for task in directions:
            task.cancel()
        await asyncio.gather(*directions, return_exceptions=True)
        self.proxy.count(f"{fault}_{action}")
        if action == "rst":
            _reset(self.client[1])
        elif action == "silent":
            await asyncio.gather(_discard(*self.client), _discard(*self.upstream))


class FaultProxy:
    """Loopback TCP proxy injecting the faults described by a FaultConfig.

    Counters: `connections_accepted` (not refused), `active_connections`, and `faults_fired`
    keyed `idle_<action>`, `max_age_<action>`, `stall` (windows that held data), `refused` and
    `upstream_failed`.
    """

    def __init__(self, config: FaultConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._started_at = 0.0
        self._last_stall = -1
        self.active_connections = 0
        self.connections_accepted = 0
        self.faults_fired: dict[str, int] = {}

    @property
    def port(self) -> int:
        """The port actually bound (useful when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("proxy not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._started_at = asyncio.get_running_loop().time()
        self._server = await asyncio.start_server(self._accept, self.host, self._requested_port)

    async def stop(self) -> None:
        """Close the listener and every connection, black-holed ones included."""
        if self._server is None:
            return
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def count(self, fault: str) -> None:
        """Record that a fault fired."""
        self.faults_fired[fault] = self.faults_fired.get(fault, 0) + 1

    def delay_s(self) -> float:
        """Delay for one chunk: latency plus or minus uniform jitter, never negative."""
        jitter = random.uniform(-self.config.jitter_ms, self.config.jitter_ms)
        return max(0.0, self.config.latency_ms + jitter) / 1000

    def stall_remaining_s(self) -> float:
        """Seconds left in the current stall window, 0 outside one (windows start at k * every)."""
        every = self.config.stall_every_s
        if every is None or self.config.stall_for_s <= 0:
            return 0.0
        elapsed = asyncio.get_running_loop().time() - self._started_at
        window, phase = divmod(elapsed, every)
        if window < 1 or phase >= self.config.stall_for_s:
            return 0.0
        if int(window) != self._last_stall:
            self._last_stall = int(window)
            self.count("stall")
        return self.config.stall_for_s - phase

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limit = self.config.refuse_after
        if limit is not None and self.active_connections >= limit:
            self.count("refused")
            _reset(writer)
            return
        self.connections_accepted += 1
        self.active_connections += 1
        # Our own task, not the stream callback's: stop() cancels it without asyncio logging.
        task = asyncio.create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(self.config.upstream_host, self.config.upstream_port),
                _CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError):
            self.count("upstream_failed")
            writer.close()
            self.active_connections -= 1
            return
        try:
            await _Link(self, (reader, writer), upstream).run()
        finally:
            self.active_connections -= 1
