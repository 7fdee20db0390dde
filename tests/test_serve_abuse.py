"""`wsdoctor serve` under abuse: a real server process, a flood, tokens, limits and timeouts.

The flood opens a few thousand loopback connections in bounded batches (plain connect-and-go,
half-open handshakes that stall, garbage bytes, upgrades that vanish) while a well-behaved client
keeps doing echo round trips in its own thread. Bounds here are liveness bounds (an answer at
all within 5 s), not speed assertions; the measured figures are printed.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from wsdoctor.commands.serve import bind_warning

HOST = "127.0.0.1"
LIVENESS_S = 5.0  # a round trip or a drop must happen within this: liveness, not speed
FLOOD_CONNECTIONS = 3000
FLOOD_BATCH = 250
FD_RESERVE = 256  # descriptors the test process keeps for itself during the flood
HALF_OPEN_CAP_S = 10.0  # a half-open client gives up by itself after this
FLOOD_HANDSHAKE_TIMEOUT_S = 2.0
PARTIAL_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"


@dataclass
class Server:
    """A running `python -m wsdoctor serve` process, its port and everything it printed."""

    process: subprocess.Popen[str]
    port: int
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/"

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the server and return its exit code."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=15)


@contextmanager
def wsdoctor_serve(*args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start a real server on a free port; stop it with SIGTERM at the end (exit 0)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "serve", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stderr is not None
    first = process.stderr.readline()
    found = re.search(r":(\d+)/", first)
    assert found, first
    server = Server(process, int(found.group(1)), [first])
    drain = threading.Thread(target=lambda: server.stderr.extend(process.stderr), daemon=True)
    drain.start()  # a full stderr pipe must never block the server
    try:
        yield server
    finally:
        if process.poll() is None:
            assert server.stop() == 0, "".join(server.stderr)
        drain.join(5)


def upgrade_request(port: int, target: str = "/", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


def status_of(port: int, target: str = "/", extra: str = "") -> int:
    """The HTTP status a raw upgrade request gets."""
    with socket.create_connection((HOST, port), timeout=LIVENESS_S) as sock:
        sock.sendall(upgrade_request(port, target, extra))
        head = sock.recv(4096)
    return int(head.split(b" ", 2)[1])


# --- one-feature tests -----------------------------------------------------------------------


def test_token_answers_401_without_it_and_101_with_it() -> None:
    token = "tok-7f3a9c-planted"
    with wsdoctor_serve("--token", token) as server:
        assert status_of(server.port) == 401
        assert status_of(server.port, extra="Authorization: Bearer wrong\r\n") == 401
        assert status_of(server.port, "/?token=wrong") == 401
        assert status_of(server.port, extra=f"Authorization: Basic {token}\r\n") == 401
        assert status_of(server.port, extra=f"Authorization: Bearer {token}\r\n") == 101
        assert status_of(server.port, extra=f"authorization: bearer {token}\r\n") == 101
        assert status_of(server.port, f"/?x=1&token={token}") == 101
        twice = f"Authorization: Bearer no\r\nAuthorization: Bearer {token}\r\n"
        assert status_of(server.port, extra=twice) == 101
        with pytest.raises(InvalidStatus) as rejected:
            connect(server.url, open_timeout=LIVENESS_S).close()
        assert rejected.value.response.status_code == 401
        assert "Bearer" in rejected.value.response.headers["WWW-Authenticate"]
        with connect(server.url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            ws.send("hello")
            assert ws.recv(timeout=LIVENESS_S) == "hello"
        assert server.stop() == 0
    printed = "".join(server.stderr)
    assert "token required" in printed
    assert token not in printed


def test_token_from_the_environment() -> None:
    token = "env-token-planted"
    with wsdoctor_serve(env={"WSDOCTOR_SERVE_TOKEN": token}) as server:
        assert status_of(server.port) == 401
        assert status_of(server.port, f"/?token={token}") == 101
    assert token not in "".join(server.stderr)


def test_max_message_closes_1009() -> None:
    with wsdoctor_serve("--max-message", "1KiB") as server, connect(server.url) as ws:
        ws.send(b"x" * 1024)
        assert ws.recv(timeout=LIVENESS_S) == b"x" * 1024
        ws.send(b"x" * 1025)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=LIVENESS_S)
        assert ws.close_code == 1009


def ended_within(sock: socket.socket, seconds: float) -> str:
    """'eof' or 'reset' if the server ended the connection within ``seconds``, else 'open'."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return "open"
    except ConnectionResetError:
        return "reset"
    return "eof"


def test_handshake_timeout_drops_a_half_open_client() -> None:
    # The default handshake timeout (10 s) would keep it past the liveness bound.
    with wsdoctor_serve("--handshake-timeout", "1") as server:
        with socket.create_connection((HOST, server.port), timeout=LIVENESS_S) as stalled:
            stalled.sendall(PARTIAL_REQUEST)
            assert ended_within(stalled, LIVENESS_S) in ("eof", "reset")
        with connect(server.url) as ws:  # and it still serves others
            ws.send("after")
            assert ws.recv(timeout=LIVENESS_S) == "after"


def test_sigterm_closes_connections_cleanly_and_exits_0() -> None:
    with wsdoctor_serve() as server, connect(server.url) as ws:
        ws.send("before")
        assert ws.recv(timeout=LIVENESS_S) == "before"
        assert server.stop(signal.SIGTERM) == 0
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=LIVENESS_S)
        assert ws.close_code == 1001
    assert "stopped (SIGTERM)" in "".join(server.stderr)


def test_max_connections_still_answers_503() -> None:
    with wsdoctor_serve("--max-connections", "2") as server:
        with connect(server.url), connect(server.url):
            assert status_of(server.port) == 503
        deadline = time.monotonic() + LIVENESS_S
        while status_of(server.port) != 101 and time.monotonic() < deadline:
            time.sleep(0.05)  # the server learns of the two closes asynchronously
        assert status_of(server.port) == 101


@pytest.mark.parametrize(
    ("host", "token", "warned"),
    [
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("::", "secret-token", True),
        ("192.0.2.10", None, True),
    ],
)
def test_binding_beyond_loopback_warns(host: str, token: str | None, warned: bool) -> None:
    # Decided without binding: tests never listen beyond loopback.
    warning = bind_warning(host, token)
    assert (warning is not None) == warned
    if warning is not None:
        assert host in warning and "\n" not in warning
        assert "secret-token" not in warning


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-message", "0"], "--max-message must be"),
        (["--max-message", "lots"], "--max-message must be"),
        (["--handshake-timeout", "0"], "--handshake-timeout must be"),
        (["--handshake-timeout", "-3"], "--handshake-timeout must be"),
        (["--handshake-timeout", "1e12"], "--handshake-timeout must be"),
        (["--handshake-timeout", "nan"], "--handshake-timeout must be"),
        (["--token", ""], "--token must be"),
        (["--token", "has space-planted"], "--token must be"),
        (["--max-connections", "0"], "--max-connections must be"),
        (["--max-connections", "1000000000000"], "--max-connections must be"),
        (["--host", ""], "--host must not be empty"),
    ],
)
def test_serve_options_are_validated(args: list[str], words: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert words in lines[0] and "Traceback" not in result.stderr
    assert "planted" not in result.stderr


# --- the flood -------------------------------------------------------------------------------


@dataclass
class Liveness:
    """What the well-behaved client saw: when each round trip ended and how long it took."""

    samples: list[tuple[float, float]] = field(default_factory=list)  # (ended at, seconds)
    failure: str | None = None

    def during(self, start: float, end: float) -> list[float]:
        return [rtt for at, rtt in self.samples if start <= at <= end]


def keep_echoing(url: str, stop: threading.Event, seen: Liveness) -> None:
    """Echo round trips until ``stop``; any unanswered one within LIVENESS_S is a failure."""
    try:
        with connect(url, open_timeout=LIVENESS_S, ping_interval=None) as ws:
            count = 0
            while not stop.is_set():
                count += 1
                began = time.monotonic()
                ws.send(f"well-behaved-{count}")
                assert ws.recv(timeout=LIVENESS_S) == f"well-behaved-{count}"
                seen.samples.append((time.monotonic(), time.monotonic() - began))
                stop.wait(0.02)
    except Exception as exc:  # noqa: BLE001 - reported by the test's assertion
        seen.failure = f"{type(exc).__name__}: {exc}"


@contextmanager
def raised_fd_limit() -> Iterator[int]:
    """Raise this process's soft descriptor limit to the hard limit for a while; yield it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = soft if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    try:
        yield raised
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def abuse(index: int, port: int, slots: asyncio.Semaphore, outcomes: Counter[str]) -> None:
    """One abusive connection; its kind follows from ``index``. Holds a descriptor slot."""
    kind = ("connect-go", "half-open", "garbage", "upgrade-vanish")[index % 4]
    async with slots:
        try:
            async with asyncio.timeout(HALF_OPEN_CAP_S):
                reader, writer = await asyncio.open_connection(HOST, port)
                try:
                    outcomes[f"{kind}:{await _behave(kind, port, reader, writer)}"] += 1
                finally:
                    writer.transport.abort()
        except TimeoutError:
            outcomes[f"{kind}:still-open"] += 1
        except OSError as exc:
            outcomes[f"{kind}:{type(exc).__name__}"] += 1


async def _behave(
    kind: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> str:
    if kind == "connect-go":
        if os.urandom(1)[0] & 1:  # half of them leave with a RST instead of a FIN
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return "left"
    if kind == "half-open":
        writer.write(PARTIAL_REQUEST)
        await writer.drain()
        try:
            while await reader.read(4096):
                pass
        except ConnectionResetError:
            return "dropped"
        return "dropped"
    if kind == "garbage":
        writer.write(os.urandom(512) + b"\r\n\r\n")
    else:
        writer.write(upgrade_request(port))
    await writer.drain()
    try:
        head = await reader.read(12)
    except ConnectionResetError:
        return "reset"
    return head[9:12].decode("latin-1") or "closed"


async def flood(port: int, total: int, max_open: int) -> tuple[Counter[str], float]:
    """Open ``total`` abusive connections in batches, at most ``max_open`` at once."""
    slots = asyncio.Semaphore(max_open)
    outcomes: Counter[str] = Counter()
    tasks: list[asyncio.Task[None]] = []
    began = time.monotonic()
    for start in range(0, total, FLOOD_BATCH):
        batch = [
            asyncio.create_task(abuse(i, port, slots, outcomes))
            for i in range(start, min(total, start + FLOOD_BATCH))
        ]
        tasks.extend(batch)
        # Wait for the batch's short-lived connections; half-open ones stay behind.
        short = [t for i, t in enumerate(batch, start) if i % 4 != 1]
        await asyncio.wait(short, timeout=HALF_OPEN_CAP_S)
    opened_in = time.monotonic() - began
    await asyncio.gather(*tasks)
    return outcomes, opened_in


def test_flood_keeps_serving_well_behaved_clients() -> None:
    with raised_fd_limit() as limit:  # the server process inherits it too
        _flood_test(max(64, limit - FD_RESERVE))


def _flood_test(max_open: int) -> None:
    total = FLOOD_CONNECTIONS
    with wsdoctor_serve(
        "--handshake-timeout", str(FLOOD_HANDSHAKE_TIMEOUT_S), "--max-message", "64KiB"
    ) as server:
        stop = threading.Event()
        seen = Liveness()
        client = threading.Thread(target=keep_echoing, args=(server.url, stop, seen))
        client.start()
        try:
            deadline = time.monotonic() + LIVENESS_S
            while not seen.samples and seen.failure is None and time.monotonic() < deadline:
                time.sleep(0.01)
            flood_began = time.monotonic()
            outcomes, opened_in = asyncio.run(flood(server.port, total, max_open))
            flood_ended = time.monotonic()
            time.sleep(0.2)
        finally:
            stop.set()
            client.join(LIVENESS_S * 2)
        assert seen.failure is None, seen.failure
        during = seen.during(flood_began, flood_ended)
        assert during, outcomes  # it was served during the flood
        assert server.process.poll() is None, "".join(server.stderr)
        with connect(server.url, open_timeout=LIVENESS_S) as ws:  # and still is, afterwards
            ws.send("after the flood")
            assert ws.recv(timeout=LIVENESS_S) == "after the flood"
    half_open = {k: v for k, v in outcomes.items() if k.startswith("half-open")}
    assert half_open == {"half-open:dropped": total // 4}, outcomes  # the server dropped them
    assert sum(outcomes.values()) == total
    print(
        f"\nflood: {total} connections (at most {max_open} open at once) opened in "
        f"{opened_in:.2f} s = {total / opened_in:.0f} connections/s; all ended after "
        f"{flood_ended - flood_began:.2f} s; well-behaved client: {len(during)} round trips "
        f"during the flood, worst {max(during) * 1000:.1f} ms; outcomes {dict(outcomes)}"
    )
