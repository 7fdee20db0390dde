"""The size stage: messages of growing size on one connection until one ends it.

Sizes double from 256 B up to the plan's ``max_message_bytes``. Each message is followed by a
protocol ping: its pong proves the server read past the message (whether or not it echoes),
and an echo, when the server echoes, is awaited too. The stage stops at the first size that
ends the connection. Only one payload exists at a time, never larger than the budget.

The connection's fate is kept in the steps, not in the stage's ``connections``: a close this
stage provoked on purpose is no refusal, restart or unstable network.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

from websockets.exceptions import ConnectionClosed

from wsdoctor.observations import Ending, StageResult, Step
from wsdoctor.plan import PathSpec, Plan
from wsdoctor.probes.connection import HandshakeError, ProbeConnection, open_probe_connection
from wsdoctor.probes.looplag import LoopLagMonitor

MIN_BYTES_PER_S = 256 * 1024  # slowest link the step timeout allows for, each way
CLOSE_GRACE_S = 2.0  # time for a close that has begun to complete
SETTLE_S = 0.25  # time for a server that does not echo to act on a message after its pong
READ_LIMIT = 100_000  # messages one connection's reader takes at most
_PREFIX = b'{"type":"wsdoctor-size","pad":"'
_SUFFIX = b'"}'


class MessageCounter:
    """Reads and counts what the server sends on a probe connection, so nothing backs up."""

    def __init__(self, probe: ProbeConnection) -> None:
        self.probe = probe
        self.count = 0
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MessageCounter:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        try:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(READ_LIMIT):
                    message = await self.probe.conn.recv(decode=False)
                    self.count += 1
                    self.probe.log("message_received", size=len(message))
                    self._arrived.set()
        finally:
            self._arrived.set()

    async def wait_for(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` messages have arrived; False on timeout or when reading ended."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._arrived.clear()
            if self.count >= count:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._task is None or self._task.done():
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)


async def settle_close(probe: ProbeConnection) -> None:
    """Give a connection that is closing the time to finish, so its ending is complete."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(probe.conn.wait_closed()), CLOSE_GRACE_S)


def handshake_ending(error: HandshakeError) -> Ending:
    """The ending of a step whose connection never opened."""
    failure = error.handshake.failure
    return Ending(
        kind="handshake_failed", age_s=0.0, idle_s=0.0, detail=failure.reason if failure else None
    )


def _payload(size: int) -> bytearray:
    """``size`` bytes of valid UTF-8 (JSON-shaped when there is room), built in one buffer."""
    data = bytearray(b"x") * size
    if size >= len(_PREFIX) + len(_SUFFIX):
        data[: len(_PREFIX)] = _PREFIX
        data[size - len(_SUFFIX) :] = _SUFFIX
    return data


async def _send(probe: ProbeConnection, size: int, timeout_s: float) -> None:
    await asyncio.wait_for(probe.conn.send(_payload(size), text=True), timeout_s)
    probe.conn.mark_sent()
    probe.log("message_sent", size=size)


async def _size_step(
    probe: ProbeConnection,
    counter: MessageCounter,
    size: int,
    ping_timeout_s: float,
    echoes_due: int | None,
) -> Step:
    """Send one message of ``size`` bytes; ``echoes_due`` is the echo count to wait for."""
    began = time.monotonic()
    timeout_s = ping_timeout_s + size / MIN_BYTES_PER_S
    echoed = False
    try:
        await _send(probe, size, timeout_s)
        if await probe.ping(timeout_s) is not None:
            if echoes_due is not None:
                echoed = await counter.wait_for(echoes_due, timeout_s)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(probe.conn.wait_closed()), SETTLE_S)
    except asyncio.TimeoutError:
        if probe.is_open and probe.conn.protocol.close_rcvd is None:
            probe.silent_at = began  # the server stopped reading: the send never finished
    except ConnectionClosed:
        pass
    if probe.conn.protocol.close_rcvd is not None or probe.conn.lost_at is not None:
        await settle_close(probe)
    ok = probe.is_open
    return Step(
        value=size,
        ok=ok,
        sent=1,
        answered=int(echoed),
        failed=0 if ok else 1,
        ending=None if ok else probe.ending(),
        elapsed_s=round(time.monotonic() - began, 4),
    )


async def size_stage(
    path: PathSpec,
    plan: Plan,
    run_started: float,
    ping_timeout_s: float,
    expect_echo: bool,
    sink: list[StageResult],
) -> None:
    """Send growing messages on one connection until one ends it; append the stage to ``sink``.

    ``expect_echo`` says whether the server echoed small messages (the echo stage's finding).
    """
    began = time.monotonic()
    stage = StageResult(
        name="size",
        started_at=round(began - run_started, 4),
        duration_s=0.0,
        ping_timeout_s=ping_timeout_s,
    )
    limit = plan.load.max_message_bytes
    connect = dataclasses.replace(
        plan.connect, max_message_bytes=max(plan.connect.max_message_bytes, limit)
    )
    async with LoopLagMonitor() as lag:
        try:
            probe = await open_probe_connection(path, connect, "size-1", "echo", run_started)
        except HandshakeError as error:
            stage.notes.append(f"the size connection did not open: {error}")
        except asyncio.CancelledError:
            stage.interrupted = True
            raise
        else:
            try:
                async with MessageCounter(probe) as counter:
                    echoing = expect_echo
                    for index, size in enumerate(plan.load.sizes()):
                        due = index + 1 if echoing else None
                        step = await _size_step(probe, counter, size, ping_timeout_s, due)
                        stage.steps.append(step)
                        if not step.ok:
                            break
                        echoing = echoing and step.answered > 0
            except asyncio.CancelledError:
                stage.interrupted = True
                raise
            finally:
                await probe.close()
        finally:
            stage.loop_lag = lag.result()
            stage.duration_s = round(time.monotonic() - began, 4)
            sink.append(stage)
