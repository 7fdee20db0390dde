"""Real Debian proxies on loopback for end-to-end tests: nginx, HAProxy, Squid, tinyproxy, Dante.

Each proxy runs as a foreground subprocess with a configuration written into the test's
``tmp_path``, on a free loopback port, with its pid file, logs and temporary files kept out of
the system's directories. ``probe_real`` starts ``wsdoctor serve`` in-process as the backend,
one real proxy in front of it, and probes the direct and the proxied path at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from labkit import HOST, LabRun, require_binary

from wsdoctor.demo import free_port
from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.observations import Observations
from wsdoctor.plan import ConnectOptions, IdlePlan, PathSpec, Plan
from wsdoctor.probes.runner import run_plan
from wsdoctor.report.json_report import build_report, validate_report
from wsdoctor.server import ServeOptions, running_server
from wsdoctor.status import RunStatus

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 8.0
PORT_ATTEMPTS = 3
LOG_TAIL_CHARS = 3000
PROBE_SLACK_S = 12.0


class ProxyStartError(RuntimeError):
    """A proxy exited or did not accept connections in time; the message quotes its logs."""


@dataclass
class RealProxy:
    """One running proxy: where it listens and where its logs are."""

    name: str
    port: int
    forward: bool
    process: subprocess.Popen
    logs: list[Path] = field(default_factory=list)
    version: str = ""
    scheme: str = ""
    """URL scheme of the entry point; empty: ``ws`` for a reverse, ``http`` for a forward proxy."""

    @property
    def url(self) -> str:
        """``ws://`` entry point of a reverse proxy, or the URL of a forward proxy
        (``http://``, or ``socks5://`` when ``scheme`` says so)."""
        scheme = self.scheme or ("http" if self.forward else "ws")
        return f"{scheme}://{HOST}:{self.port}" + ("" if self.forward else "/")

    def path_to(self, backend_url: str, name: str = "via-proxy") -> PathSpec:
        """The probe path that reaches ``backend_url`` through this proxy."""
        if self.forward:
            return PathSpec(name, backend_url, proxy=self.url)
        return PathSpec(name, self.url)

    def log_text(self) -> str:
        """Everything the proxy wrote to its logs so far (missing files are skipped)."""
        parts = []
        for log in self.logs:
            with contextlib.suppress(OSError):
                parts.append(f"--- {log.name}\n{log.read_text(errors='replace')}")
        return "\n".join(parts)


def _tail(text: str) -> str:
    return text if len(text) <= LOG_TAIL_CHARS else "..." + text[-LOG_TAIL_CHARS:]


async def _accepting(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1.0)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _wait_exit(process: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _stop(process: subprocess.Popen) -> None:
    """Terminate, then kill after a bounded wait; only this one process id."""
    if process.poll() is None:
        process.terminate()
        if not await _wait_exit(process, STOP_TIMEOUT_S):
            process.kill()
            await _wait_exit(process, STOP_TIMEOUT_S)


Launch = Callable[[int], tuple[list[str], list[Path]]]
"""Given a port, write the config and return the command line and the log files to quote."""


@asynccontextmanager
async def _running(
    name: str, tmp_path: Path, launch: Launch, forward: bool
) -> AsyncIterator[RealProxy]:
    """Start a proxy on a free port, wait until it accepts TCP connections, stop it after."""
    failure = ""
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        argv, logs = launch(port)
        output = tmp_path / f"{name}.output.{attempt}.log"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
            )
        proxy = RealProxy(name, port, forward, process, [output, *logs])
        deadline = time.monotonic() + START_TIMEOUT_S
        ready = False
        while process.poll() is None and time.monotonic() < deadline:
            if await _accepting(port) and process.poll() is None:
                ready = True
                break
            await asyncio.sleep(0.05)
        if ready:
            break
        code = process.poll()
        why = f"exited with status {code}" if code is not None else "not accepting connections"
        await _stop(process)
        failure = proxy.log_text()
        if "in use" not in failure:  # retry only when another process took the port
            raise ProxyStartError(
                f"{name} did not start on {HOST}:{port} ({why} after up to "
                f"{START_TIMEOUT_S:g} s): {' '.join(argv)}\n{_tail(failure)}"
            )
    else:
        raise ProxyStartError(f"{name}: no free port after {PORT_ATTEMPTS} tries\n{_tail(failure)}")
    try:
        yield proxy
    finally:
        await _stop(process)


def _version(binary: str, flag: str) -> str:
    try:
        done = subprocess.run(
            [binary, flag], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else ""


# --- nginx -------------------------------------------------------------------------------


def _nginx_time(seconds: float) -> str:
    """An nginx time value: whole seconds as ``3s``, others in milliseconds (``1500ms``)."""
    return f"{seconds:g}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def nginx(
    tmp_path: Path,
    backend_port: int,
    *,
    read_timeout_s: float = 3.0,
    send_timeout_s: float | None = None,
    http_11: bool = True,
    upgrade_headers: bool = True,
    workers: int = 1,
    reuseport: bool = False,
) -> AbstractAsyncContextManager[RealProxy]:
    """nginx as a reverse proxy for the backend (``location /``).

    ``workers`` is ``worker_processes``; ``reuseport`` gives each worker its own listening
    socket, so the kernel spreads connections over the workers (and their timers).
    """
    binary = require_binary("nginx")
    root = tmp_path / "nginx"
    root.mkdir(exist_ok=True)
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    send = send_timeout_s if send_timeout_s is not None else read_timeout_s
    lines = [f"proxy_pass http://127.0.0.1:{backend_port};"]
    if http_11:
        lines.append("proxy_http_version 1.1;")
    if upgrade_headers:
        lines += [
            "proxy_set_header Upgrade $http_upgrade;",
            'proxy_set_header Connection "upgrade";',
        ]
    lines += [
        f"proxy_read_timeout {_nginx_time(read_timeout_s)};",
        f"proxy_send_timeout {_nginx_time(send)};",
        "proxy_connect_timeout 5s;",
    ]
    location = "\n                ".join(lines)

    def launch(port: int) -> tuple[list[str], list[Path]]:
        error_log = root / "error.log"
        conf = root / "nginx.conf"
        conf.write_text(
            f"""{user}
worker_processes {workers};
error_log {error_log} info;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body_temp;
    proxy_temp_path {root}/proxy_temp;
    fastcgi_temp_path {root}/fastcgi_temp;
    uwsgi_temp_path {root}/uwsgi_temp;
    scgi_temp_path {root}/scgi_temp;
    server {{
        listen {HOST}:{port}{" reuseport" if reuseport else ""};
        location / {{
                {location}
        }}
    }}
}}
"""
        )
        argv = [
            binary,
            "-p",
            f"{root}/",
            "-e",
            str(root / "startup-error.log"),
            "-c",
            str(conf),
            "-g",
            f"daemon off; pid {root}/nginx.pid;",
        ]
        return argv, [error_log, root / "startup-error.log"]

    return _with_version(_running("nginx", tmp_path, launch, forward=False), binary, "-v")


# --- HAProxy -----------------------------------------------------------------------------


def haproxy(
    tmp_path: Path, backend_port: int, *, tunnel_timeout_s: float = 3.0
) -> AbstractAsyncContextManager[RealProxy]:
    """HAProxy in ``mode http`` as a reverse proxy; ``timeout tunnel`` governs WebSockets.

    ``timeout client``/``server`` are set well above the tunnel timeout, so a drop at the
    tunnel timeout can only come from ``timeout tunnel``.
    """
    binary = require_binary("haproxy")
    root = tmp_path / "haproxy"
    root.mkdir(exist_ok=True)

    def launch(port: int) -> tuple[list[str], list[Path]]:
        cfg = root / "haproxy.cfg"
        cfg.write_text(
            f"""global
    log stderr format raw local0 info
    maxconn 512

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel {tunnel_timeout_s:g}s

frontend fe
    bind {HOST}:{port}
    default_backend be

backend be
    server backend 127.0.0.1:{backend_port}
"""
        )
        return [binary, "-f", str(cfg), "-db"], []

    return _with_version(_running("haproxy", tmp_path, launch, forward=False), binary, "-v")


# --- Squid -------------------------------------------------------------------------------


def _squid_user() -> str:
    for name in ("proxy", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("no unprivileged user (proxy, nobody) for squid's cache_effective_user")


@asynccontextmanager
async def squid(
    tmp_path: Path, backend_port: int, *, read_timeout_s: float = 3.0
) -> AsyncIterator[RealProxy]:
    """Squid as a forward proxy that allows CONNECT to the loopback backend port only.

    Squid refuses to run as root, and when started as root it drops to
    ``cache_effective_user`` before opening its logs; pytest's ``tmp_path`` is not reachable
    by that user (its parents are mode 0700), so as root the pid file and logs go to a private
    directory under the system temp dir owned by that user, copied into ``tmp_path`` and
    removed afterwards. A unique service name (``-n``) keeps its shared-memory segments
    apart from any other Squid.
    """
    binary = require_binary("squid")
    root = tmp_path / "squid"
    root.mkdir(exist_ok=True)
    as_root = os.geteuid() == 0
    user = _squid_user() if as_root else None
    if as_root:
        runtime = Path(tempfile.mkdtemp(prefix="wsdoctor-squid-"))
        entry = pwd.getpwnam(user)  # type: ignore[arg-type]
        os.chown(runtime, entry.pw_uid, entry.pw_gid)
    else:
        runtime = root
    service = f"wsdoctor{os.getpid()}x{free_port()}"

    def launch(port: int) -> tuple[list[str], list[Path]]:
        conf = root / "squid.conf"
        conf.write_text(
            f"""http_port {HOST}:{port}
{f"cache_effective_user {user}" if as_root else ""}
pid_filename {runtime}/squid.pid
cache_log {runtime}/cache.log
access_log stdio:{runtime}/access.log
cache_store_log none
netdb_filename none
coredump_dir {runtime}
cache deny all
cache_mem 8 MB
pinger_enable off
dns_nameservers 127.0.0.1
shutdown_lifetime 0 seconds
acl localsrc src 127.0.0.1
acl backend dst 127.0.0.1
acl backend_port port {backend_port}
acl CONNECT method CONNECT
http_access allow CONNECT localsrc backend backend_port
http_access deny all
read_timeout {read_timeout_s:g} seconds
"""
        )
        argv = [binary, "-N", "-n", service, "-f", str(conf)]
        return argv, [runtime / "cache.log"]

    proxy: RealProxy | None = None
    try:
        async with _with_version(
            _running("squid", tmp_path, launch, forward=True), binary, "-v"
        ) as proxy:
            yield proxy
    finally:
        if as_root:
            for name in ("cache.log", "access.log"):
                with contextlib.suppress(OSError):
                    shutil.copyfile(runtime / name, root / name)
            shutil.rmtree(runtime, ignore_errors=True)
            if proxy is not None:  # point at the copies, so logs stay readable afterwards
                proxy.logs = [root / p.name if p.parent == runtime else p for p in proxy.logs]
        for leftover in Path("/dev/shm").glob(f"{service}-*"):  # ours alone: unique name
            with contextlib.suppress(OSError):
                leftover.unlink()


# --- tinyproxy ---------------------------------------------------------------------------


def tinyproxy(
    tmp_path: Path, backend_port: int, *, timeout_s: float = 3.0
) -> AbstractAsyncContextManager[RealProxy]:
    """tinyproxy as a forward proxy allowing CONNECT to the backend port; ``Timeout`` idle."""
    binary = require_binary("tinyproxy")
    root = tmp_path / "tinyproxy"
    root.mkdir(exist_ok=True)

    def launch(port: int) -> tuple[list[str], list[Path]]:
        conf = root / "tinyproxy.conf"
        log = root / "tinyproxy.log"
        conf.write_text(
            f"""Port {port}
Listen {HOST}
Timeout {int(timeout_s)}
PidFile "{root}/tinyproxy.pid"
LogFile "{log}"
LogLevel Info
MaxClients 100
Allow 127.0.0.1
ConnectPort {backend_port}
"""
        )
        return [binary, "-d", "-c", str(conf)], [log]

    return _with_version(_running("tinyproxy", tmp_path, launch, forward=True), binary, "-v")


@asynccontextmanager
async def _with_version(
    running: AbstractAsyncContextManager[RealProxy], binary: str, flag: str
) -> AsyncIterator[RealProxy]:
    async with running as proxy:
        proxy.version = _version(binary, flag)
        yield proxy


# --- fleets and multi-process proxies ---------------------------------------------------

NO_TIMEOUT_S = 3600.0
"""What "no timeout" means for a fleet node or a TCP balancer: far beyond any test."""


@dataclass
class FleetProxy(RealProxy):
    """A load balancer (``process``) in front of several proxy nodes, each its own process."""

    nodes: list[RealProxy] = field(default_factory=list)
    root: Path | None = None

    def log_text(self) -> str:
        """The logs of the balancer and of every node, each named by its path under ``root``."""
        return _logs_under(self.root, self.logs)


def _logs_under(root: Path | None, logs: Sequence[Path]) -> str:
    """The text of ``logs``, each headed by its path relative to ``root`` (missing: skipped)."""
    parts = []
    for log in logs:
        label = log.relative_to(root) if root is not None and root in log.parents else log.name
        with contextlib.suppress(OSError):
            parts.append(f"--- {label}\n{log.read_text(errors='replace')}")
    return "\n".join(parts)


def haproxy_tcp(
    tmp_path: Path,
    server_ports: Sequence[int],
    *,
    timeout_s: float = NO_TIMEOUT_S,
    balance: str = "roundrobin",
) -> AbstractAsyncContextManager[RealProxy]:
    """HAProxy in ``mode tcp`` spreading connections over ``server_ports`` (``balance``).

    Its own ``timeout client``/``server``/``tunnel`` are ``timeout_s`` (by default far beyond
    any test), so it never cuts a connection itself: what the nodes behind it do shows through.
    """
    binary = require_binary("haproxy")
    root = tmp_path / "haproxy"
    root.mkdir(exist_ok=True)
    servers = "\n".join(
        f"    server node{i + 1} 127.0.0.1:{port}" for i, port in enumerate(server_ports)
    )

    def launch(port: int) -> tuple[list[str], list[Path]]:
        cfg = root / "haproxy.cfg"
        cfg.write_text(
            f"""global
    log stderr format raw local0 info
    maxconn 1024

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client {timeout_s:g}s
    timeout server {timeout_s:g}s
    timeout tunnel {timeout_s:g}s

frontend fe
    bind {HOST}:{port}
    default_backend nodes

backend nodes
    balance {balance}
{servers}
"""
        )
        return [binary, "-f", str(cfg), "-db"], []

    return _with_version(_running("haproxy", tmp_path, launch, forward=False), binary, "-v")


@asynccontextmanager
async def fleet(
    tmp_path: Path, backend_port: int, read_timeouts: Sequence[float | None] = (2.0, 4.0)
) -> AsyncIterator[FleetProxy]:
    """A fleet of nginx reverse proxies behind one HAProxy ``mode tcp`` round robin.

    One nginx node per entry of ``read_timeouts`` (its ``proxy_read_timeout`` and
    ``proxy_send_timeout``; ``None``: no timeout, ``NO_TIMEOUT_S``), each on its own free
    loopback port with its own prefix directory ``node-N`` under ``tmp_path``, all proxying to
    the backend. The yielded proxy is HAProxy's ``ws://`` entry point (HAProxy itself never
    times out), with the logs of every process.
    """
    require_binary("nginx")
    require_binary("haproxy")
    nodes: list[RealProxy] = []
    async with contextlib.AsyncExitStack() as stack:
        try:
            for i, timeout in enumerate(read_timeouts):
                node_root = tmp_path / f"node-{i + 1}"
                node_root.mkdir(parents=True, exist_ok=True)
                seconds = NO_TIMEOUT_S if timeout is None else timeout
                node = await stack.enter_async_context(
                    nginx(node_root, backend_port, read_timeout_s=seconds, send_timeout_s=seconds)
                )
                nodes.append(node)
            balancer = await stack.enter_async_context(
                haproxy_tcp(tmp_path, [n.port for n in nodes])
            )
        except ProxyStartError as error:
            started = _logs_under(tmp_path, [log for n in nodes for log in n.logs]) or "(none)"
            raise ProxyStartError(
                f"{error}\nlogs of the fleet's nodes started so far:\n{_tail(started)}"
            ) from error
        timeouts = ", ".join("none" if t is None else f"{t:g}s" for t in read_timeouts)
        yield FleetProxy(
            "fleet",
            balancer.port,
            False,
            balancer.process,
            logs=[*balancer.logs, *(log for n in nodes for log in n.logs)],
            version=f"{balancer.version} + {len(nodes)} x {nodes[0].version} "
            f"(proxy_read_timeout {timeouts})",
            nodes=nodes,
            root=tmp_path,
        )


def nginx_workers(
    tmp_path: Path, backend_port: int, read_timeout_s: float, workers: int = 2
) -> AbstractAsyncContextManager[RealProxy]:
    """nginx with ``workers`` worker processes, each with its own ``reuseport`` socket.

    The kernel spreads connections over the workers by address hash, so the connections of one
    run meet the timers of different workers.
    """
    return nginx(
        tmp_path,
        backend_port,
        read_timeout_s=read_timeout_s,
        send_timeout_s=read_timeout_s,
        workers=workers,
        reuseport=True,
    )


# --- Dante -------------------------------------------------------------------------------


DANTE_PROCESSES = 2
"""``danted -N``: how many server processes to fork; each keeps its own timers."""


def _descendants(pid: int) -> list[int]:
    """Process ids of every living descendant of ``pid`` (read from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _is_danted(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"danted")
    return False


async def _reap_danted(pids: Sequence[int]) -> None:
    """Wait (bounded) for these danted children to exit after their parent; kill any left.

    An I/O child outlives its parent while it still has sessions (``sockd_io.c``). Only the
    given process ids are touched, and only while their command line is still danted's.
    """
    deadline = time.monotonic() + STOP_TIMEOUT_S
    left = [p for p in pids if _is_danted(p)]
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        left = [p for p in left if _is_danted(p)]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _dante_user() -> str:
    for name in ("nobody", "proxy"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("no unprivileged user (nobody, proxy) for danted's user.unprivileged")


@asynccontextmanager
async def dante(
    tmp_path: Path, backend_port: int, io_timeout_s: float, processes: int = DANTE_PROCESSES
) -> AsyncIterator[RealProxy]:
    """Dante (``danted``) as a SOCKS5 forward proxy allowing CONNECT to the backend port.

    ``timeout.io`` is the idle timeout. Each of the ``processes`` (``-N``) server processes
    has its own I/O child, which compares whole seconds (a session expires 3 to 4 s after its
    last byte for ``timeout.io: 4``) and looks for expired sessions only after a ``select()``
    that found nothing to do for a whole second: a child kept busy by other connections
    (a ping every second) does not cut its idle ones at all until it falls quiet. It runs in
    the foreground (no ``-D``); its log and pid file go to ``tmp_path``. As root it needs
    ``user.privileged``/``user.unprivileged``; otherwise it runs as the current user with
    those lines left out (tried as ``nobody``: works). SIGTERM to the first process ends all.
    """
    if not float(io_timeout_s).is_integer():
        raise ValueError(f"Dante's timeout.io is whole seconds, not {io_timeout_s}")
    binary = require_binary("danted")
    root = tmp_path / "dante"
    root.mkdir(exist_ok=True)
    users = (
        f"user.privileged: root\nuser.unprivileged: {_dante_user()}\n" if os.geteuid() == 0 else ""
    )

    def launch(port: int) -> tuple[list[str], list[Path]]:
        conf = root / "danted.conf"
        log = root / "danted.log"
        conf.write_text(
            f"""logoutput: {log}
internal: {HOST} port = {port}
external: {HOST}
socksmethod: none
clientmethod: none
{users}timeout.io: {int(io_timeout_s)}
timeout.negotiate: 5
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error
}}
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8 port = {backend_port}
    command: connect
    log: error connect disconnect
}}
"""
        )
        argv = [binary, "-f", str(conf), "-p", str(root / "danted.pid"), "-N", str(processes)]
        return argv, [log]

    children: list[int] = []
    try:
        async with _with_version(
            _running("dante", tmp_path, launch, forward=True), binary, "-v"
        ) as proxy:
            proxy.scheme = "socks5"
            try:
                yield proxy
            finally:  # before the first process is stopped, while the tree is still linked
                children = _descendants(proxy.process.pid)
    finally:
        await _reap_danted(children)


# --- probing -----------------------------------------------------------------------------


async def probe_paths(
    paths: Sequence[PathSpec], max_idle_s: float, open_timeout_s: float = 5.0
) -> Observations:
    """Run the real probes over ``paths`` at the same time (like ``labkit.probe_lab``)."""
    plan = Plan(
        paths=tuple(paths),
        connect=ConnectOptions(open_timeout_s=open_timeout_s),
        idle=IdlePlan(max_idle_s=max_idle_s),
    )
    observations = Observations(started_at="", duration_s=0.0)
    # run_plan has its own hard stop; this only bounds a hung run (it then ends interrupted).
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(
            run_plan(plan, RunStatus(), observations), max_idle_s + PROBE_SLACK_S
        )
    return observations


def judge(observations: Observations, elapsed_s: float) -> LabRun:
    """Diagnose, build the report and validate it against the schema."""
    diagnosis = diagnose(observations)
    report = build_report(observations, diagnosis)
    validate_report(report)
    return LabRun(observations, diagnosis, report, elapsed_s)


@dataclass
class RealRun:
    """One probe run through a real proxy: the lab run, the proxy, and its logs at the end."""

    lab: LabRun
    proxy: RealProxy
    proxy_log: str
    verdict_s: float

    def ends(self, path: str = "via-proxy", stage: str = "idle") -> Counter[str]:
        """How the connections of one stage ended, counted (``local``: the probe closed it)."""
        return Counter(self.lab.endings(path, stage))


StartProxy = Callable[[int], AbstractAsyncContextManager[RealProxy]]
"""Given the backend port, an async context manager running a proxy in front of it."""


def probe_real(
    start_proxy: StartProxy,
    max_idle_s: float,
    server: ServeOptions | None = None,
    paths: tuple[str, ...] = ("direct", "via-proxy"),
) -> RealRun:
    """Backend in-process, a real proxy in front, both paths probed at once, then diagnosed.

    ``verdict_s`` is the time to verdict: from the start of probing to the diagnosis.
    """

    async def main() -> tuple[Observations, RealProxy, float]:
        options = server or ServeOptions()
        options.port = 0
        async with running_server(options) as backend_port:
            backend_url = f"ws://{HOST}:{backend_port}/"
            async with start_proxy(backend_port) as proxy:
                specs = {
                    "direct": PathSpec("direct", backend_url),
                    "via-proxy": proxy.path_to(backend_url),
                }
                began = time.monotonic()
                observations = await probe_paths([specs[p] for p in paths], max_idle_s)
                return observations, proxy, time.monotonic() - began

    observations, proxy, probe_s = asyncio.run(main())  # stops the proxy and the backend
    began = time.monotonic()
    lab = judge(observations, probe_s)
    verdict_s = probe_s + time.monotonic() - began
    return RealRun(lab, proxy, proxy.log_text(), verdict_s)


def summary_line(case: str, run: RealRun, configured_s: float | None) -> str:
    """One line of figures for the lead's notes (shown with ``pytest -s``)."""
    verdict = run.lab.verdict
    measured = verdict.idle_timeout_s
    ends = dict(run.ends())
    return (
        f"[real-proxy] {case} ({run.proxy.version}): status={verdict.status} "
        f"culprit={verdict.culprit} hop={verdict.hop} "
        f"idle_timeout_s={measured if measured is None else round(measured, 3)} "
        f"configured_s={configured_s} via-proxy idle endings={ends} "
        f"time_to_verdict_s={run.verdict_s:.2f}"
    )
