"""The size stage: messages of growing size until one ends the connection, then bisection.

Sizes double from 256 B up to the plan's ``max_message_bytes``. Each message is followed by a
protocol ping: its pong proves the server read past the message (whether or not it echoes),
and an echo, when the server echoes, is awaited too. After the first size that ends the
connection, the stage bisects between the largest size that passed and that one (steps with
``phase="bisect"``) to within max(1 %, 1 KiB), with a bounded number of extra messages. A
message that ends its connection is followed by a fresh connection; one that passes leaves
its connection open for the next. Only one payload exists at a time, never larger than the
budget.

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
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Begin reading in the background."""
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Stop reading (what arrived stays counted)."""
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


def refused_step(
    value: float, error: HandshakeError, began: float, phase: str | None = None
) -> Step:
    """The step (a size or a rate) whose connection never opened."""
    failure = error.handshake.failure
    return Step(
        value=value,
        ok=False,
        failed=1,
        failures={failure.reason if failure else "other": 1},
        ending=Ending(
            kind="handshake_failed",
            age_s=0.0,
            idle_s=0.0,
            detail=failure.reason if failure else None,
        ),
        status=failure.status if failure else None,
        elapsed_s=round(time.monotonic() - began, 4),
        phase=phase,
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
    except TimeoutError:
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


class _SizeRun:
    """The size stage's messages, on one connection at a time: a fresh one after a failure."""

    def __init__(
        self,
        path: PathSpec,
        plan: Plan,
        run_started: float,
        ping_timeout_s: float,
        expect_echo: bool,
        stage: StageResult,
    ) -> None:
        self.path = path
        self.load = plan.load
        self.connect = dataclasses.replace(
            plan.connect,
            max_message_bytes=max(plan.connect.max_message_bytes, plan.load.max_message_bytes),
        )
        self.run_started = run_started
        self.ping_timeout_s = ping_timeout_s
        self.echoing = expect_echo
        self.stage = stage
        self.opened = 0
        self.sent = 0  # messages sent on the current connection
        self.probe: ProbeConnection | None = None
        self.counter: MessageCounter | None = None

    async def open(self) -> tuple[ProbeConnection, MessageCounter]:
        """The current connection, or a fresh one when there is none (raises HandshakeError)."""
        if self.probe is not None and self.counter is not None and self.probe.is_open:
            return self.probe, self.counter
        await self.close()
        self.opened += 1
        self.probe = await open_probe_connection(
            self.path, self.connect, f"size-{self.opened}", "echo", self.run_started
        )
        self.counter = MessageCounter(self.probe)
        self.counter.start()
        self.sent = 0
        return self.probe, self.counter

    async def close(self) -> None:
        """Close the current connection, if any."""
        probe, counter = self.probe, self.counter
        self.probe = self.counter = None
        try:
            if counter is not None:
                await counter.stop()
        finally:
            if probe is not None:
                await probe.close()

    async def step(self, size: int, phase: str | None = None) -> Step:
        """Send one message of ``size`` bytes (on a fresh connection after a failure)."""
        began = time.monotonic()
        try:
            probe, counter = await self.open()
        except HandshakeError as error:
            return refused_step(size, error, began, phase)
        self.sent += 1
        due = self.sent if self.echoing else None
        step = await _size_step(probe, counter, size, self.ping_timeout_s, due)
        step.phase = phase
        if step.ok:
            self.echoing = self.echoing and step.answered > 0
        return step

    async def ramp(self) -> Step | None:
        """Sizes doubling up to the budget, until one fails; that failure, if any."""
        for size in self.load.sizes():
            step = await self.step(size)
            self.stage.steps.append(step)
            if not step.ok:
                return step
        return None

    async def bisect(self, failure: Step) -> None:
        """Narrow the bracket between the largest size that passed and the smallest that failed.

        Bounded by the plan: at most ``max_bisect_steps`` messages and ``bisect_budget_s``
        seconds; a connection that no longer opens ends the bisection.
        """
        passed = [s.value for s in self.stage.steps if s.ok]
        if not passed or failure.ending is None or failure.ending.kind == "handshake_failed":
            return
        low, high = int(max(passed)), int(failure.value)
        deadline = time.monotonic() + self.load.bisect_budget_s
        for _ in range(self.load.max_bisect_steps):
            size = self.load.bisect_size(low, high)
            if size is None or time.monotonic() >= deadline:
                return
            step = await self.step(size, phase="bisect")
            self.stage.steps.append(step)
            if step.ok:
                low = size
            elif step.ending is not None and step.ending.kind == "handshake_failed":
                return
            else:
                high = size


async def size_stage(
    path: PathSpec,
    plan: Plan,
    run_started: float,
    ping_timeout_s: float,
    expect_echo: bool,
    sink: list[StageResult],
) -> None:
    """Send growing messages until one ends the connection, then bisect the limit.

    Appends the stage to ``sink``. ``expect_echo`` says whether the server echoed small
    messages (the echo stage's finding).
    """
    began = time.monotonic()
    stage = StageResult(
        name="size",
        started_at=round(began - run_started, 4),
        duration_s=0.0,
        ping_timeout_s=ping_timeout_s,
    )
    run = _SizeRun(path, plan, run_started, ping_timeout_s, expect_echo, stage)
    async with LoopLagMonitor() as lag:
        try:
            try:
                await run.open()
            except HandshakeError as error:
                stage.notes.append(f"the size connection did not open: {error}")
            else:
                failure = await run.ramp()
                if failure is not None:
                    await run.bisect(failure)
        except asyncio.CancelledError:
            stage.interrupted = True
            raise
        finally:
            try:
                await run.close()
            finally:
                stage.loop_lag = lag.result()
                stage.duration_s = round(time.monotonic() - began, 4)
                sink.append(stage)
