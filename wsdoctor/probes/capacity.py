"""The capacity stage: ramp up concurrent connections politely and record where they fail.

Levels grow 10, 20, 50, 100, 200, 500 ... up to ``max_connections``. Each level opens the
missing connections at ``rate_per_s``, holds them ``hold_s`` seconds and pings every one: a level
is good when every handshake worked and every connection still answers. The ramp stops at the
first level with a failure; that step's ``answered`` is how many connections the server held at
once when it began to fail, which measures the limit directly (no bisection needed). Then every
connection is closed and a few new ones show whether, and how soon, the server recovered.

With ``storm``, before that, every held connection is dropped at once and reconnected, first
without backoff, then with exponential backoff and full jitter: what a reconnect storm does.
Never more than ``max_connections`` connections are open or opening at any moment. The client's
own limits (descriptors, local ports) are budgeted up front: connections the client could not
open count as ``client_fd_limit`` or ``client_ports`` failures, never as the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from websockets.exceptions import ConnectionClosed

from wsdoctor.backoff import BackoffPolicy
from wsdoctor.fingerprints import recognise
from wsdoctor.observations import Observations, PathResult, StageResult, Step
from wsdoctor.plan import CapacityPlan, ConnectOptions, PathSpec, Plan
from wsdoctor.probes import classify
from wsdoctor.probes.basic import handshake_stage
from wsdoctor.probes.connection import HandshakeError, ProbeConnection, open_probe_connection
from wsdoctor.probes.looplag import LoopLagMonitor
from wsdoctor.redact import redact_url
from wsdoctor.status import PathStatus, RunStatus

FD_RESERVE = 64  # descriptors kept free for DNS threads, logging and the report file
UNLIMITED_FDS = 1 << 20  # what an unlimited RLIMIT_NOFILE amounts to (the usual fs.nr_open)
PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
RECOVERY_WAIT_S = 0.5
RECOVERY_BUDGET_S = 5.0
RECOVERY_RETRY_S = 1.0
RECOVERY_CONNECTIONS = 5
STORM_ATTEMPTS = 4
STORM_BACKOFF = BackoffPolicy(base_s=0.5, max_s=4.0)
_RANDOM = random.Random()

Outcome = ProbeConnection | str  # an open connection, or the key of why it failed
Ramp = Callable[["CapacityRun"], Awaitable[None]]
"""Climbs the levels into ``run.stage``: :meth:`CapacityRun.ramp`, or another engine's."""


def ramp_levels(max_connections: int) -> list[int]:
    """Concurrency levels to try: 10, 20, 50, 100 ... below ``max_connections``, then it."""
    levels: list[int] = []
    decade = 10
    while decade < max_connections:
        levels.extend(m * decade for m in (1, 2, 5) if m * decade < max_connections)
        decade *= 10
    return [*levels, max_connections]


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE soft limit to its hard limit; return (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, UNLIMITED_FDS)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return FD_RESERVE


def _local_ports() -> int | None:
    try:
        with open(PORT_RANGE_FILE, encoding="ascii") as file:
            low, high = (int(v) for v in file.read().split())
    except (OSError, ValueError):
        return None
    return high - low + 1


@dataclass
class ClientBudget:
    """How many connections this client can hold at once, and what bounds it."""

    fd_limit: int
    connections: int
    bound_by: str  # "client_fd_limit" or "client_ports"

    @classmethod
    def measure(cls) -> ClientBudget:
        """The budget left by the current descriptor limit and local port range."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = UNLIMITED_FDS
        by_fds = max(0, soft - _open_descriptors() - FD_RESERVE)
        ports = _local_ports()
        if ports is not None and ports < by_fds:
            return cls(soft, ports, "client_ports")
        return cls(soft, by_fds, "client_fd_limit")


def failure_key(error: BaseException) -> str:
    """A short name for why an attempt failed: ``http_503``, ``refused``, ``timeout`` ..."""
    if isinstance(error, HandshakeError) and error.handshake.failure is not None:
        return classify.failure_key(error.handshake.failure)
    return classify.client_limit_key(error) or "other"


def _http_status(failures: Counter[str]) -> int | None:
    statuses = Counter({k: n for k, n in failures.items() if k[5:].isdigit()})
    return int(statuses.most_common(1)[0][0][5:]) if statuses else None


def ramp_step(level: int, held: int, failures: Counter[str], elapsed_s: float) -> Step:
    """The step of one ramp level: ``held`` connections open at its end, and its failures."""
    return Step(
        value=level,
        ok=not failures,
        sent=level,
        answered=held,
        failed=sum(failures.values()),
        failures=dict(failures),
        status=_http_status(failures),
        elapsed_s=round(elapsed_s, 3),
        phase="ramp",
    )


class CapacityRun:
    """One path's ramp, storms and recovery check, writing steps into ``stage``."""

    def __init__(
        self,
        path: PathSpec,
        connect: ConnectOptions,
        plan: CapacityPlan,
        run_started: float,
        stage: StageResult,
        status: PathStatus,
    ) -> None:
        self.path = path
        self.connect = connect
        self.plan = plan
        self.run_started = run_started
        self.stage = stage
        self.status = status
        self.pool: list[ProbeConnection] = []
        self.attempts = 0
        self.budget = ClientBudget.measure()
        stage.client_fd_limit = self.budget.fd_limit

    async def attempt(self) -> Outcome:
        """Open one connection; the connection, or the key of why it failed."""
        self.attempts += 1
        try:
            return await open_probe_connection(
                self.path, self.connect, f"capacity-{self.attempts}", "sentinel", self.run_started
            )
        except (HandshakeError, OSError) as error:
            return failure_key(error)

    async def open_paced(self, count: int) -> list[Outcome]:
        """Open ``count`` connections at the planned rate, with a bounded number in flight."""
        gate = asyncio.Semaphore(self.plan.max_in_flight)
        began = time.monotonic()

        async def one(index: int) -> Outcome:
            await asyncio.sleep(max(0.0, began + index / self.plan.rate_per_s - time.monotonic()))
            async with gate:
                return await self.attempt()

        return await asyncio.gather(*(one(i) for i in range(count)))

    def _keep(self, outcomes: list[Outcome], failures: Counter[str]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, str):
                failures[outcome] += 1
            else:
                self.pool.append(outcome)
        self.status.open_connections = len(self.pool)

    async def _still_there(self, probe: ProbeConnection) -> str | None:
        """None when ``probe`` answers a ping; else how it was lost (``shed_<ending>``)."""
        if probe.is_open:
            try:
                if await probe.ping(self.plan.ping_timeout_s) is not None:
                    return None
            except ConnectionClosed:
                pass
        ending = probe.ending()
        await probe.close()
        return classify.shed_key(ending)

    async def check_held(self, failures: Counter[str]) -> None:
        """Ping every held connection; drop and count those the server shed."""
        verdicts = await asyncio.gather(*(self._still_there(p) for p in self.pool))
        for key in verdicts:
            if key is not None:
                failures[key] += 1
                self.status.drops += 1
        self.pool = [p for p, key in zip(self.pool, verdicts) if key is None]
        self.status.open_connections = len(self.pool)

    async def ramp(self) -> None:
        """Climb the levels, recording a step each; stop after the first failing one."""
        for level in ramp_levels(self.plan.max_connections):
            self.status.stage = f"capacity {level}"
            began = time.monotonic()
            failures: Counter[str] = Counter()
            wanted = level - len(self.pool)
            room = max(0, min(wanted, self.budget.connections - len(self.pool)))
            if room < wanted:
                failures[self.budget.bound_by] += wanted - room
            self._keep(await self.open_paced(room), failures)
            await asyncio.sleep(self.plan.hold_s)
            await self.check_held(failures)
            elapsed = time.monotonic() - began
            self.stage.steps.append(ramp_step(level, len(self.pool), failures, elapsed))
            if failures:
                return

    async def storm(self, phase: str, delay: Callable[[int], float]) -> None:
        """Drop every held connection at once; reconnect each, waiting ``delay(attempt)``."""
        self.status.stage = f"capacity {phase}"
        count = len(self.pool)
        if count == 0:
            return
        for probe in self.pool:
            probe.conn.transport.abort()
        self.pool = []
        began = time.monotonic()
        first_attempt = self.attempts
        failures: Counter[str] = Counter()

        async def client() -> None:
            for number in range(STORM_ATTEMPTS):
                await asyncio.sleep(delay(number))
                outcome = await self.attempt()
                if not isinstance(outcome, str):
                    self.pool.append(outcome)
                    return
                failures[outcome] += 1

        await asyncio.gather(*(client() for _ in range(count)))
        self.status.open_connections = len(self.pool)
        self.stage.steps.append(
            Step(
                value=count,
                ok=not failures,
                sent=self.attempts - first_attempt,
                answered=len(self.pool),
                failed=sum(failures.values()),
                failures=dict(failures),
                status=_http_status(failures),
                elapsed_s=round(time.monotonic() - began, 3),
                phase=phase,
            )
        )

    async def close_all(self) -> None:
        """Close every held connection politely (close frame, then abort if need be)."""
        await asyncio.gather(*(p.close() for p in self.pool))
        self.pool = []
        self.status.open_connections = 0

    def abort_all(self) -> None:
        """Drop every held connection at once (on interruption)."""
        for probe in self.pool:
            probe.conn.transport.abort()
        self.pool = []

    async def recovery(self) -> None:
        """After the load is gone: how soon a few new connections work again."""
        self.status.stage = "capacity recovery"
        gone_at = time.monotonic()
        await asyncio.sleep(RECOVERY_WAIT_S)
        count = min(RECOVERY_CONNECTIONS, self.plan.max_connections)
        first_attempt = self.attempts
        failures: Counter[str] = Counter()
        while True:
            self._keep(await asyncio.gather(*(self.attempt() for _ in range(count))), failures)
            recovered = len(self.pool) == count
            await self.close_all()
            if recovered or time.monotonic() - gone_at + RECOVERY_RETRY_S > RECOVERY_BUDGET_S:
                break
            await asyncio.sleep(RECOVERY_RETRY_S)
        sent = self.attempts - first_attempt
        self.stage.steps.append(
            Step(
                value=count,
                ok=recovered,
                sent=sent,
                answered=sent - sum(failures.values()),
                failed=sum(failures.values()),
                failures=dict(failures),
                status=_http_status(failures),
                elapsed_s=round(time.monotonic() - gone_at, 3),
                phase="recovery",
            )
        )


def _no_backoff(attempt: int) -> float:
    return 0.0


def _backoff_with_jitter(attempt: int) -> float:
    return STORM_BACKOFF.delay(attempt, _RANDOM)


async def capacity_stage(
    path: PathSpec,
    connect: ConnectOptions,
    plan: CapacityPlan,
    run_started: float,
    status: PathStatus,
    stage: StageResult,
    ramp: Ramp | None = None,
) -> None:
    """Run the ramp (and storms, and the recovery check) over ``path``, filling ``stage``.

    ``ramp`` climbs the levels in place of this process's own opener (the Locust engine).
    On cancellation every connection is dropped and the stage is marked interrupted.
    """
    began = time.monotonic()
    run = CapacityRun(path, connect, plan, run_started, stage, status)
    if ramp is None and run.budget.connections < plan.max_connections:
        stage.notes.append(
            f"this client can hold about {run.budget.connections} connections "
            f"({'local ports' if run.budget.bound_by == 'client_ports' else 'descriptors'}: "
            f"RLIMIT_NOFILE soft limit {run.budget.fd_limit})"
        )
    try:
        async with LoopLagMonitor() as lag:
            try:
                await (ramp or CapacityRun.ramp)(run)
                if plan.storm:
                    await run.storm("storm", _no_backoff)
                    await run.storm("storm_backoff", _backoff_with_jitter)
                await run.close_all()
                await run.recovery()
            finally:
                stage.loop_lag = lag.result()
    except asyncio.CancelledError:
        stage.interrupted = True
        run.abort_all()
        raise
    finally:
        stage.duration_s = round(time.monotonic() - began, 3)
        status.stage = "done"


async def run_capacity(
    path: PathSpec,
    connect: ConnectOptions,
    plan: CapacityPlan,
    status: RunStatus,
    observations: Observations,
    ramp: Ramp | None = None,
) -> None:
    """One handshake, then (if it worked) the capacity stage; fills ``observations`` as it goes.

    Raises this process's descriptor limit first, so that the client is not the bottleneck.
    When cancelled (Ctrl-C), ``observations`` keeps what was learned and is marked interrupted.
    """
    observations.started_at = datetime.now(UTC).isoformat(timespec="seconds")
    run_started = status.started = time.monotonic()
    result = PathResult(name=path.name, url=redact_url(path.url))
    observations.paths = [result]
    path_status = status.path(path.name)
    try:
        path_status.stage = "handshake"
        plan_of_one = Plan(paths=(path,), connect=connect)
        handshake = await handshake_stage(path, plan_of_one, run_started, result.stages)
        result.fingerprints = recognise(handshake.connections[0].handshake.headers, "upgrade")
        if not handshake.connections[0].handshake.ok:
            return
        stage = StageResult(
            name="capacity", started_at=round(time.monotonic() - run_started, 4), duration_s=0.0
        )
        before, after = raise_fd_limit()
        if after > before:
            stage.notes.append(f"raised this client's RLIMIT_NOFILE soft limit {before} -> {after}")
        result.stages.append(stage)
        await capacity_stage(path, connect, plan, run_started, path_status, stage, ramp)
    except asyncio.CancelledError:
        observations.interrupted = True
    finally:
        path_status.stage = "done"
        observations.duration_s = round(time.monotonic() - run_started, 3)
