"""The Locust user of ``wsdoctor capacity --engine locust``: one user holds one WebSocket.

Each user opens its connection once (``on_start``), reports the handshake (time, and the
failure key such as ``http_503`` or ``refused``) as a Locust request event, then holds the
connection with heartbeats until it ends and reports the ending (close frame and code, FIN,
RST, silence) the same way. Failed users do not retry: a ramp level counts attempts, as the
asyncio engine does.

The worker side of wsdoctor's ramp also lives here, as Locust custom messages: the master sends
the connection options (``config``), asks every worker to wait for its handshakes (``settle``),
then, after the hold, to ping what it holds (``check``), and to close everything (``close``);
workers report progress.

It also runs standalone: ``locust -f wsdoctor/loadgen/locust_user.py --host ws://...``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.pool import Pool
from locust import User, constant, task
from locust.env import Environment

from wsdoctor import __version__
from wsdoctor.loadgen.wsclient import ClientOptions, OpenFailed, WsClient, open_client
from wsdoctor.observations import Ending
from wsdoctor.probes.classify import shed_key

HELLO = "wsdoctor_hello"
CONFIG = "wsdoctor_config"
READY = "wsdoctor_ready"
SETTLE = "wsdoctor_settle"
SETTLED = "wsdoctor_settled"
CHECK = "wsdoctor_check"
CHECKED = "wsdoctor_checked"
CLOSE = "wsdoctor_close"
CLOSED = "wsdoctor_closed"
PROGRESS = "wsdoctor_progress"
PROGRESS_S = 0.5
IDLE_USER_S = 3600.0
PARALLEL_PINGS = 1000
MAX_IN_FLIGHT = 100
"""Handshakes one worker has in flight at most, unless the master says otherwise."""


class ConnectionEnded(Exception):
    """How a held connection ended, as a Locust failure: ``close_frame 1013``, ``reset`` ..."""


@dataclass
class WorkerState:
    """This worker's connections and the failures counted since the master's last check."""

    options: ClientOptions | None = None
    opening: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(MAX_IN_FLIGHT)
    )
    held: list[WsClient] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    failed_total: Counter[str] = field(default_factory=Counter)
    attempts: int = 0

    def fail(self, key: str) -> None:
        """Count one failure, for the next check and for progress."""
        self.failures[key] += 1
        self.failed_total[key] += 1


STATE = WorkerState()


def _fire(
    env: Environment,
    name: str,
    seconds: float,
    exception: Exception | None,
    **context: object,
) -> None:
    env.events.request.fire(
        request_type="WS",
        name=name,
        response_time=round(seconds * 1000, 3),
        response_length=0,
        exception=exception,
        context=context,
    )


class WsDoctorUser(User):
    """One WebSocket connection, opened once and held with heartbeats until it ends."""

    wait_time = constant(IDLE_USER_S)  # once its connection ended, a user only waits

    def on_start(self) -> None:
        """Open the connection and report the handshake."""
        self.connection: WsClient | None = None
        options = STATE.options or ClientOptions(url=self.host or "")
        try:
            with STATE.opening:
                self.connection = open_client(options)
        except OpenFailed as failed:
            STATE.fail(failed.key)
            _fire(self.environment, "handshake", failed.elapsed_s, failed, failure=failed.key)
        except Exception as exc:  # counted, as the asyncio engine counts it: never lost
            STATE.fail("other")
            _fire(self.environment, "handshake", 0.0, exc)
        else:
            STATE.held.append(self.connection)
            _fire(self.environment, "handshake", self.connection.handshake_s, None, status=101)
        finally:
            STATE.attempts += 1

    @task
    def hold(self) -> None:
        """Hold the connection until it ends; report how."""
        connection = self.connection
        if connection is None or connection.serving or not connection.is_open:
            return
        self._report(connection.serve())

    def on_stop(self) -> None:
        """Close the connection politely when Locust stops the user."""
        if self.connection is not None and self.connection.is_open:
            self.connection.close()
            self._report(self.connection.ending())

    def _report(self, ending: Ending) -> None:
        failure = None if ending.kind == "local" else ConnectionEnded(_describe(ending))
        _fire(
            self.environment, "ending", ending.age_s, failure, ending=ending.kind, code=ending.code
        )


def _describe(ending: Ending) -> str:
    return f"{ending.kind} {ending.code}" if ending.code is not None else ending.kind


def _still_there(connection: WsClient, ping_timeout_s: float) -> str | None:
    """None when ``connection`` answers a ping; else how it was lost (``shed_<ending>``)."""
    if connection.is_open and connection.ping(ping_timeout_s) is not None:
        return None
    return shed_key(connection.ending())


def settle(env: Environment, wait_s: float) -> None:
    """Wait until every user of this worker has made its one attempt (``wait_s`` at most)."""
    runner = env.runner
    deadline = time.monotonic() + wait_s
    while runner is not None and STATE.attempts < runner.user_count:
        if time.monotonic() > deadline:
            STATE.fail("timeout")  # a handshake that outlived its own timeout
            return
        gevent.sleep(0.01)


def check(env: Environment, level: int, ping_timeout_s: float, wait_s: float) -> dict[str, Any]:
    """Wait for this worker's handshakes, ping every held connection, count what was lost."""
    settle(env, wait_s)
    held = list(STATE.held)
    pool = Pool(PARALLEL_PINGS)
    verdicts = pool.map(lambda c: _still_there(c, ping_timeout_s), held)
    for key in verdicts:
        if key is not None:
            STATE.fail(key)
    STATE.held = [c for c, key in zip(held, verdicts) if key is None]
    failures, STATE.failures = dict(STATE.failures), Counter()
    return {"level": level, "held": len(STATE.held), "failures": failures}


def close_all() -> None:
    """Close every held connection politely, at once."""
    held, STATE.held = STATE.held, []
    Pool(PARALLEL_PINGS).map(lambda c: c.close(), held)


def hello() -> dict[str, Any]:
    """What a worker tells the master when it arrives."""
    import resource

    import locust

    return {
        "version": __version__,
        "locust": locust.__version__,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def serve_worker(env: Environment) -> None:
    """Register the worker's side of the ramp on ``env.runner``, then report progress forever."""
    runner = env.runner
    assert runner is not None

    def on_config(environment: Environment, msg: Any, **_: Any) -> None:
        data = dict(msg.data["options"])
        data["headers"] = tuple(tuple(h) for h in data["headers"])
        data["subprotocols"] = tuple(data["subprotocols"])
        STATE.options = ClientOptions(**data)
        STATE.opening = threading.BoundedSemaphore(msg.data["max_in_flight"])
        runner.send_message(READY, {"pid": os.getpid()})

    def on_settle(environment: Environment, msg: Any, **_: Any) -> None:
        settle(environment, **msg.data)
        runner.send_message(SETTLED, {})

    def on_check(environment: Environment, msg: Any, **_: Any) -> None:
        runner.send_message(CHECKED, check(environment, **msg.data))

    def on_close(environment: Environment, msg: Any, **_: Any) -> None:
        close_all()
        runner.send_message(CLOSED, {})

    runner.register_message(CONFIG, on_config)
    runner.register_message(SETTLE, on_settle, concurrent=True)
    runner.register_message(CHECK, on_check, concurrent=True)
    runner.register_message(CLOSE, on_close, concurrent=True)
    runner.send_message(HELLO, hello())
    while True:
        open_now = sum(1 for c in STATE.held if c.is_open)
        runner.send_message(PROGRESS, {"open": open_now, "failures": dict(STATE.failed_total)})
        gevent.sleep(PROGRESS_S)
