"""The capacity ramp on Locust, seen from wsdoctor's asyncio process.

:class:`LocustRamp` is a ``probes.capacity.Ramp``: ``capacity_stage`` calls it in place of its
own opener, and everything around it (the first handshake, the recovery check, the rules, the
report, the run budget) stays the one pipeline. It starts the Locust master
(``loadgen/master.py``) and the local workers as separate processes, so that gevent's
monkey-patching never touches this event loop, reads the master's JSON lines into the stage's
steps and the live status, and ends every process it started when the ramp ends, fails or is
cancelled (the run budget cancels it like any stage).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from wsdoctor.loadgen.wsclient import ClientOptions
from wsdoctor.plan import CapacityPlan, ConnectOptions, PathSpec
from wsdoctor.probes.capacity import CapacityRun, ramp_levels, ramp_step
from wsdoctor.status import RunStatus

POLL_S = 0.2
STOP_WAIT_S = 3.0
START_WAIT_S = 30.0
"""How long the master may take to start listening (importing Locust and gevent)."""
LEVEL_OVERHEAD_S = 8.0
"""Per level, on top of the asyncio engine's: dispatch reports, the check's slack."""
MASTER_EXIT_S = 15.0
"""After the master's last line: how long until its exit."""
MASTER = "wsdoctor.loadgen.master"
WORKER = "wsdoctor.loadgen.worker"
LINE_LIMIT = 1 << 24
"""The longest line of the master's (a progress line names every worker)."""
ANY_ADDRESS = ("*", "0.0.0.0", "::", "")


class EngineError(Exception):
    """The Locust ramp could not finish: workers missing, lost, or of another version."""


@dataclass(frozen=True)
class LocustSettings:
    """Where the master listens and which workers it waits for."""

    workers: int = 2  # local worker processes this command starts
    expect_workers: int = 0  # workers started elsewhere with ``wsdoctor capacity-worker``
    bind_host: str = "127.0.0.1"
    bind_port: int | None = None  # None: a free loopback port
    wait_workers_s: float = 30.0

    @property
    def total(self) -> int:
        """Every worker the ramp waits for."""
        return self.workers + self.expect_workers


def client_options(path: PathSpec, connect: ConnectOptions) -> ClientOptions:
    """The workers' connection options, from the command's."""
    return ClientOptions(
        url=path.url,
        open_timeout_s=connect.open_timeout_s,
        headers=connect.headers,
        origin=connect.origin,
        subprotocols=connect.subprotocols,
        insecure=connect.insecure,
        cacert=connect.cacert,
        client_cert=connect.client_cert,
        client_key=connect.client_key,
        max_message_bytes=connect.max_message_bytes,
    )


class LocustRamp:
    """Climbs the ramp on a Locust master and its workers, writing the same steps."""

    def __init__(
        self,
        settings: LocustSettings,
        path: PathSpec,
        connect: ConnectOptions,
        plan: CapacityPlan,
        status: RunStatus,
    ) -> None:
        self.settings, self.plan, self.status = settings, plan, status
        self.options = client_options(path, connect)
        self.error: str | None = None
        self.master: asyncio.subprocess.Process | None = None
        self.workers: list[asyncio.subprocess.Process] = []
        self.level = 0
        self.arrived = 0

    def overhead_s(self) -> float:
        """What the engine adds to the run's budget: starting, waiting for workers, checks."""
        levels = len(ramp_levels(self.plan.max_connections))
        return (
            START_WAIT_S
            + self.settings.wait_workers_s
            + levels * LEVEL_OVERHEAD_S
            + 2 * STOP_WAIT_S
        )

    def config(self, port: int) -> dict[str, Any]:
        """What the master is told to do."""
        return {
            "bind_host": self.settings.bind_host,
            "bind_port": port,
            "workers": self.settings.total,
            "wait_workers_s": self.settings.wait_workers_s,
            "levels": ramp_levels(self.plan.max_connections),
            "rate": self.plan.rate_per_s,
            "max_in_flight": self.plan.max_in_flight,
            "hold_s": self.plan.hold_s,
            "ping_timeout_s": self.plan.ping_timeout_s,
            "open_timeout_s": self.options.open_timeout_s,
            "options": asdict(self.options),
        }

    async def __call__(self, run: CapacityRun) -> None:
        """Run the ramp; on a failure of the engine, keep the steps so far and note why."""
        finished = False
        try:
            await self._ramp(run)
            finished = True
        except EngineError as exc:
            self.error = str(exc)
            run.stage.notes.append(f"locust engine: {exc}")
            print(f"wsdoctor: error: {exc}", file=sys.stderr, flush=True)
        finally:
            await self._stop_all(finished)

    async def _spawn(self, module: str, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if module == MASTER else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            limit=LINE_LIMIT,
        )

    async def _ramp(self, run: CapacityRun) -> None:
        from wsdoctor.demo import free_port

        port = self.settings.bind_port or free_port()
        self.master = await self._spawn(MASTER, json.dumps(self.config(port)))
        run.stage.notes.append(
            f"engine: locust, master on {self.settings.bind_host}:{port}, "
            f"{self.settings.workers} local and {self.settings.expect_workers} remote workers"
        )
        first = await self._line(START_WAIT_S)
        if first is None or first.get("event") != "listening":
            where = f"{self.settings.bind_host}:{port}"
            raise EngineError(
                f"the Locust master could not listen on {where} (in use, or not an address "
                "of this machine?)"
            )
        host = self.settings.bind_host
        address = f"{'127.0.0.1' if host in ANY_ADDRESS else host}:{port}"
        for _ in range(self.settings.workers):
            self.workers.append(await self._spawn(WORKER, address))
        run.status.stage = f"waiting for workers (0 of {self.settings.total})"
        while True:
            line = await self._line(POLL_S)
            self._check_workers()
            if line is None:
                if self.master.returncode is not None:
                    raise EngineError(f"the Locust master exited (code {self.master.returncode})")
                continue
            if self._take(line, run):
                return

    async def _line(self, timeout_s: float) -> dict[str, Any] | None:
        """The master's next line, or None when none came within ``timeout_s``."""
        assert self.master is not None and self.master.stdout is not None
        try:
            raw = await asyncio.wait_for(self.master.stdout.readline(), timeout_s)
        except TimeoutError:
            return None
        if not raw:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.master.wait(), MASTER_EXIT_S)
            return None
        try:
            return dict(json.loads(raw))
        except ValueError:
            return None

    def _check_workers(self) -> None:
        for number, worker in enumerate(self.workers, 1):
            if worker.returncode is not None:
                raise EngineError(
                    f"lost local worker {number} (pid {worker.pid}, exit code "
                    f"{worker.returncode}) at the {self.level}-connection level"
                )

    def _take(self, line: dict[str, Any], run: CapacityRun) -> bool:
        """Apply one line of the master's; True once the ramp is over."""
        event = line.get("event")
        if event == "worker":
            fd_limit = int(line["fd_limit"])
            run.stage.client_fd_limit = min(run.stage.client_fd_limit or fd_limit, fd_limit)
            run.stage.notes.append(
                f"{line['name']}: wsdoctor {line['version']}, locust {line['locust']}, "
                f"RLIMIT_NOFILE soft limit {fd_limit}"
            )
            self.status.path(line["name"]).stage = "ready"
            self.arrived += 1
            run.status.stage = f"waiting for workers ({self.arrived} of {self.settings.total})"
        elif event == "progress":
            self._progress(line, run)
        elif event == "step":
            failures = Counter({k: int(n) for k, n in line["failures"].items()})
            step = ramp_step(int(line["level"]), int(line["held"]), failures, line["elapsed_s"])
            run.stage.steps.append(step)
        elif event == "error":
            raise EngineError(str(line["message"]))
        return event == "done"

    def _progress(self, line: dict[str, Any], run: CapacityRun) -> None:
        self.level = int(line["level"])
        if not self.level:
            return
        total = 0
        for name, worker in line["workers"].items():
            status = self.status.path(name)
            failures = Counter(worker["failures"])
            kinds = ", ".join(f"{k} x {n}" for k, n in failures.most_common(3))
            status.stage = f"capacity {self.level}" + (f" ({kinds})" if kinds else "")
            status.open_connections = int(worker["open"])
            status.drops = sum(failures.values())
            total += status.open_connections
        run.status.stage = f"capacity {self.level} (locust)"
        run.status.open_connections = total

    async def _stop_all(self, finished: bool) -> None:
        """End the master and every local worker: politely, then by force.

        After a finished ramp the master has told the workers to quit: they get a moment.
        """
        processes = [p for p in (self.master, *self.workers) if p is not None]
        if finished:
            waits = [asyncio.create_task(p.wait()) for p in processes]
            await asyncio.wait(waits, timeout=STOP_WAIT_S)
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_WAIT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for name in list(self.status.paths):
            if name.startswith("worker "):
                self.status.paths[name].stage = "done"
                self.status.paths[name].open_connections = 0
