"""The Locust master of ``wsdoctor capacity --engine locust``, run as its own process.

``python -m wsdoctor.loadgen.master CONFIG_JSON`` binds a headless Locust master, waits for the
expected workers (checking that they run this wsdoctor version), then climbs the ramp: each
level asks Locust for that many users at the planned spawn rate, waits for their handshakes,
holds the level, and asks every worker to check its connections. It writes one JSON object per
line on standard output: the parent (``loadgen/engine.py``, an asyncio process that must never
be gevent-patched) turns them into the capacity stage's steps. Every wait is bounded; the
process ends after the ramp, on an error, when its parent is gone or on SIGTERM, and tells its
workers to quit whichever way it ends.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NoReturn

import gevent
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner

from wsdoctor import __version__
from wsdoctor.loadgen import locust_user as lu

POLL_S = 0.05
PROGRESS_S = 0.5
CHECK_SLACK_S = 5.0
CLOSE_WAIT_S = 10.0


def emit(event: str, **data: Any) -> None:
    """One line for the parent."""
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


class EngineError(Exception):
    """The ramp cannot go on: workers missing, lost, or of another version."""


@dataclass
class Worker:
    """One worker as the master knows it."""

    index: int
    hello: dict[str, Any]
    ready: bool = False
    open: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """How people see it: ``worker 1 (host:pid)``."""
        return f"worker {self.index} ({self.hello.get('host')}:{self.hello.get('pid')})"


class Ramp:
    """The master's side: workers, their replies, and the ramp's levels."""

    def __init__(self, config: dict[str, Any], runner: MasterRunner) -> None:
        self.config = config
        self.runner = runner
        self.workers: dict[str, Worker] = {}
        self.replies: dict[str, dict[str, Any]] = {}
        self.closed: set[str] = set()
        self.settled: set[str] = set()
        self.problem: str | None = None
        self.level = 0
        for name, listener in {
            lu.HELLO: self.on_hello,
            lu.READY: self.on_ready,
            lu.PROGRESS: self.on_progress,
            lu.SETTLED: self.on_settled,
            lu.CHECKED: self.on_checked,
            lu.CLOSED: self.on_closed,
        }.items():
            runner.register_message(name, listener)

    def on_hello(self, environment: Environment, msg: Any, **_: Any) -> None:
        worker = Worker(len(self.workers) + 1, dict(msg.data))
        self.workers[msg.node_id] = worker
        theirs, ours = msg.data.get("version"), __version__
        if self.level:  # Locust would move held users onto it: the level could not be judged
            self.problem = f"{worker.name} arrived after the ramp had started"
            return
        if theirs != ours:
            self.problem = f"{worker.name} runs wsdoctor {theirs}, this master runs {ours}"
            return
        share = math.ceil(self.config["max_in_flight"] / self.config["workers"])
        config = {"options": self.config["options"], "max_in_flight": share}
        self.runner.send_message(lu.CONFIG, config, client_id=msg.node_id)

    def on_ready(self, environment: Environment, msg: Any, **_: Any) -> None:
        if msg.node_id in self.workers:
            self.workers[msg.node_id].ready = True
            emit("worker", name=self.workers[msg.node_id].name, **self.workers[msg.node_id].hello)

    def on_progress(self, environment: Environment, msg: Any, **_: Any) -> None:
        if msg.node_id in self.workers:
            self.workers[msg.node_id].open = msg.data["open"]
            self.workers[msg.node_id].failures = msg.data["failures"]

    def on_settled(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.settled.add(msg.node_id)

    def on_checked(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.replies[msg.node_id] = msg.data

    def on_closed(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.closed.add(msg.node_id)

    def ready(self) -> list[str]:
        """The workers that have their configuration."""
        return [node for node, worker in self.workers.items() if worker.ready]

    def watch(self) -> NoReturn:
        """Report progress; note a lost worker or a parent that is gone."""
        parent = os.getppid()
        while True:
            if os.getppid() != parent:
                self.abandon()
            for node in self.ready():
                client = self.runner.clients.get(node)
                if client is None or client.state == STATE_MISSING:
                    self.problem = self.problem or f"lost {self.workers[node].name}"
            emit(
                "progress",
                level=self.level,
                workers={
                    w.name: {"open": w.open, "failures": w.failures}
                    for w in self.workers.values()
                    if w.ready
                },
            )
            gevent.sleep(PROGRESS_S)

    def abandon(self) -> NoReturn:
        """Stopped from outside (the run budget, Ctrl-C, a parent gone): tell every worker to
        quit, so that workers elsewhere do not wait for a master that is gone, and exit."""
        self.runner.quit()
        os._exit(1)

    def wait(self, done: Any, seconds: float, what: str) -> None:
        """Wait until ``done()`` for at most ``seconds``; raise EngineError on a problem."""
        deadline = time.monotonic() + seconds
        while not done():
            if self.problem:
                raise EngineError(self.problem)
            if time.monotonic() > deadline:
                raise EngineError(what)
            gevent.sleep(POLL_S)
        if self.problem:
            raise EngineError(self.problem)

    def arrive(self) -> None:
        """Wait for the expected workers."""
        expected, seconds = self.config["workers"], self.config["wait_workers_s"]
        self.wait(
            lambda: len(self.ready()) >= expected,
            seconds,
            f"{len(self.ready())} of {expected} workers arrived within {seconds:g} s",
        )

    def climb(self) -> None:
        """The ramp: one step line per level; stop after the first level with a failure."""
        for level in self.config["levels"]:
            self.level = level
            began = time.monotonic()
            self.replies, self.settled = {}, set()
            self.runner.start(level, spawn_rate=self.config["rate"])
            nodes = self.ready()
            wait_s = self.config["open_timeout_s"] + 1.0
            self.runner.send_message(lu.SETTLE, {"wait_s": wait_s})
            self.wait(
                lambda nodes=nodes: all(n in self.settled for n in nodes),
                wait_s + CHECK_SLACK_S,
                f"not every worker finished its handshakes within {wait_s + CHECK_SLACK_S:g} s",
            )
            gevent.sleep(self.config["hold_s"])
            if self.problem:
                raise EngineError(self.problem)
            self.runner.send_message(
                lu.CHECK,
                {
                    "level": level,
                    "ping_timeout_s": self.config["ping_timeout_s"],
                    "wait_s": wait_s,
                },
            )
            seconds = self.config["open_timeout_s"] + self.config["ping_timeout_s"] + CHECK_SLACK_S
            self.wait(
                lambda nodes=nodes: all(n in self.replies for n in nodes),
                seconds,
                f"not every worker checked its connections within {seconds:g} s",
            )
            failures: Counter[str] = Counter()
            for reply in self.replies.values():
                failures.update(reply["failures"])
            held = sum(reply["held"] for reply in self.replies.values())
            elapsed = round(time.monotonic() - began, 3)
            emit("step", level=level, held=held, failures=dict(failures), elapsed_s=elapsed)
            if failures:
                return

    def close(self) -> None:
        """Ask every worker to close its connections; wait a bounded time."""
        nodes = self.ready()
        self.runner.send_message(lu.CLOSE, {})
        deadline = time.monotonic() + CLOSE_WAIT_S
        while not all(n in self.closed for n in nodes) and time.monotonic() < deadline:
            gevent.sleep(POLL_S)


def main() -> None:
    """Run the ramp described by the JSON config in ``sys.argv[1]``."""
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    config = json.loads(sys.argv[1])
    env = Environment(user_classes=[lu.WsDoctorUser], host=config["options"]["url"])
    runner = env.create_master_runner(config["bind_host"], config["bind_port"])
    emit("listening", host=config["bind_host"], port=config["bind_port"])
    ramp = Ramp(config, runner)
    for stop in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(stop, lambda: gevent.spawn(ramp.abandon))
    watcher = gevent.spawn(ramp.watch)
    code = 0
    try:
        ramp.arrive()
        ramp.climb()
        ramp.close()
        emit("done")
    except EngineError as exc:
        emit("error", message=str(exc))
        code = 1
    finally:
        watcher.kill()
        runner.quit()
    sys.exit(code)


if __name__ == "__main__":
    main()
