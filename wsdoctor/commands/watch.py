"""`wsdoctor watch`: a long-running monitor of one endpoint, for intermittent drops."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from wsdoctor.commands.common import (
    CaCert,
    Debug,
    ForwardProxy,
    Headers,
    Insecure,
    JsonOut,
    NoColor,
    NoProxy,
    OpenTimeout,
    Origin,
    Subprotocol,
    build_plan,
    fail,
    use_color,
)

if TYPE_CHECKING:
    from rich.console import Console

    from wsdoctor.metrics import WatchMetrics
    from wsdoctor.observations import Observations, WatchLog
    from wsdoctor.probes.watch import WatchPlan, WatchStatus
    from wsdoctor.report.watch import EventLog

MAX_CONNECTIONS = 100
MAX_SECONDS = 86400.0 * 365
REFRESH_S = 0.5
TEXTFILE_EVERY_S = 1.0


def _positive(name: str, value: float | None, limit: float = MAX_SECONDS) -> None:
    if value is not None and not (math.isfinite(value) and 0 < value <= limit):
        fail(f"{name} must be a number of seconds above 0 and at most {limit:g}, got {value}")


def _writable_file(option: str, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        fail(f"cannot write {option} {path!r}: no writable directory {directory!r}")


def watch(
    url: Annotated[str, typer.Argument(help="The WebSocket URL (ws:// or wss://).")],
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Stop after S seconds (default: run until Ctrl-C)."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", help="Heartbeat every S seconds.")
    ] = 15.0,
    heartbeat_message: Annotated[
        str | None,
        typer.Option(
            "--heartbeat-message",
            help="Also send this application message at each heartbeat (default: pings only).",
        ),
    ] = None,
    backoff_base: Annotated[
        float, typer.Option("--backoff-base", help="First reconnect backoff ceiling, seconds.")
    ] = 0.5,
    backoff_max: Annotated[
        float, typer.Option("--backoff-max", help="Longest reconnect backoff, seconds.")
    ] = 30.0,
    connections: Annotated[
        int, typer.Option("--connections", help="Connections to keep open at once (1-100).")
    ] = 1,
    events: Annotated[
        str | None, typer.Option("--events", help="Append every event as JSON lines to PATH.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus metrics on this port (0: any)."),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics endpoint binds.")
    ] = "127.0.0.1",
    metrics_textfile: Annotated[
        str | None,
        typer.Option(
            "--metrics-textfile", help="Keep Prometheus metrics in PATH (node exporter textfile)."
        ),
    ] = None,
    proxy: ForwardProxy = None,
    no_proxy: NoProxy = False,
    header: Headers = None,
    subprotocol: Subprotocol = None,
    origin: Origin = None,
    insecure: Insecure = False,
    cacert: CaCert = None,
    json_out: JsonOut = None,
    no_color: NoColor = False,
    open_timeout: OpenTimeout = 10.0,
    debug: Debug = False,
) -> None:
    """Keep connections open with heartbeats; record, classify and count every drop."""
    from wsdoctor.backoff import BackoffPolicy
    from wsdoctor.plan import environment_proxy
    from wsdoctor.probes.watch import WatchPlan

    _positive("--duration", duration)
    _positive("--interval", interval, 86400.0)
    _positive("--backoff-base", backoff_base, 86400.0)
    _positive("--backoff-max", backoff_max, 86400.0)
    if backoff_max < backoff_base:
        fail(f"--backoff-max ({backoff_max:g}) must not be below --backoff-base ({backoff_base:g})")
    if not 1 <= connections <= MAX_CONNECTIONS:
        fail(f"--connections must be between 1 and {MAX_CONNECTIONS}, got {connections}")
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        fail(f"--metrics-port must be between 0 and 65535, got {metrics_port}")
    report_file = json_out if json_out != "-" else None
    for option, path in (
        ("--events", events),
        ("--metrics-textfile", metrics_textfile),
        ("--json", report_file),
    ):
        if path is not None:
            _writable_file(option, path)
    if proxy is None and not no_proxy:
        proxy = environment_proxy(url)
    base = build_plan(
        [("direct", url, proxy)],
        None,
        False,
        header,
        subprotocol,
        origin,
        insecure,
        cacert,
        heartbeat_message,
        open_timeout,
    )
    plan = WatchPlan(
        path=base.paths[0],
        connect=base.connect,
        interval_s=interval,
        heartbeat_message=heartbeat_message,
        connections=connections,
        duration_s=duration,
        backoff=BackoffPolicy(base_s=backoff_base, max_s=backoff_max),
    )
    outputs = _Outputs(
        json_path=json_out,
        color=use_color(no_color),
        events_path=events,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        metrics_textfile=metrics_textfile,
    )
    try:
        code = _execute(plan, outputs)
    except typer.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for users, traceback with --debug
        if debug:
            raise
        typer.echo(f"wsdoctor: internal error: {type(exc).__name__}: {exc}", err=True)
        code = 3
    raise typer.Exit(code)


class _Outputs(NamedTuple):
    """Where a watch reports: terminal, JSON report, events log, metrics."""

    json_path: str | None
    color: bool
    events_path: str | None
    metrics_port: int | None
    metrics_host: str
    metrics_textfile: str | None


class _Sink:
    """Takes each event of the watch to the events log, the metrics and plain output."""

    def __init__(
        self,
        observations: Observations,
        console: Console,
        plain: bool,
        events: EventLog | None,
        metrics: WatchMetrics | None,
        textfile: str | None,
    ) -> None:
        self.observations = observations
        self.console = console
        self.plain = plain
        self.events = events
        self.metrics = metrics
        self.textfile = textfile
        self.dirty = False

    def causes(self) -> list[str]:
        """The cause of every drop so far, as the diagnosis sees it."""
        from wsdoctor.diagnosis.rules.watch import disconnect_causes

        log = self.observations.watch
        return disconnect_causes(log) if log is not None else []

    def __call__(self, event: dict[str, Any]) -> None:
        from wsdoctor.report.watch import event_line

        if event["event"] == "disconnect":
            event["cause"] = self.causes()[event["index"]]
        if self.events is not None:
            self.events.write(event)
        if self.metrics is not None:
            self.metrics.observe(event)
            self.dirty = True
        if self.plain:
            line = event_line(event)
            if line is not None:
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def flush_textfile(self) -> None:
        """Rewrite the metrics textfile if anything changed since the last write."""
        if self.metrics is not None and self.textfile is not None and self.dirty:
            self.metrics.write_textfile(self.textfile)
            self.dirty = False


def _execute(plan: WatchPlan, outputs: _Outputs) -> int:
    """Watch, diagnose, render; return the exit code."""
    import asyncio
    import signal
    import sys

    from rich.console import Console

    from wsdoctor.diagnosis.engine import diagnose
    from wsdoctor.execute import PLAIN_WIDTH, exit_code_for
    from wsdoctor.observations import Observations
    from wsdoctor.probes.watch import WatchStatus
    from wsdoctor.report.json_report import build_report, write_json
    from wsdoctor.report.watch import EventLog, render_watch_summary

    console = Console(stderr=True, no_color=not outputs.color, highlight=False)
    observations = Observations(started_at="", duration_s=0.0)
    status = WatchStatus()
    metrics, server = _start_metrics(plan, outputs)
    events = None
    try:
        if outputs.events_path is not None:
            try:
                events = EventLog(outputs.events_path)
            except OSError as exc:
                fail(f"cannot write --events {outputs.events_path!r}: {exc.strerror or exc}")
        plain = not (console.is_terminal and outputs.color)
        sink = _Sink(observations, console, plain, events, metrics, outputs.metrics_textfile)
        try:
            stopped_by = asyncio.run(_run(plan, observations, status, sink, console))
        except KeyboardInterrupt:
            stopped_by = signal.SIGINT
        if metrics is not None:
            metrics.stopped()
            sink.dirty = True
            sink.flush_textfile()
    finally:
        if server is not None:
            server.close()
        if events is not None:
            events.close()
    observations.interrupted = stopped_by is not None and plan.duration_s is not None
    diagnosis = diagnose(observations)
    to_stdout_json = outputs.json_path == "-"
    out = Console(stderr=to_stdout_json, no_color=not outputs.color, highlight=False)
    if not out.is_terminal:
        out.width = PLAIN_WIDTH
    render_watch_summary(observations, diagnosis, sink.causes(), out)
    if outputs.json_path:
        write_json(build_report(observations, diagnosis), outputs.json_path)
    sys.stdout.flush()
    return exit_code_for(diagnosis, stopped_by)


def _start_metrics(plan: WatchPlan, outputs: _Outputs) -> tuple[Any, Any]:
    """The watch's metrics and their HTTP server, when asked for (else None, None)."""
    if outputs.metrics_port is None and outputs.metrics_textfile is None:
        return None, None
    from wsdoctor.metrics import WatchMetrics

    metrics = WatchMetrics(plan.connections)
    if outputs.metrics_port is None:
        return metrics, None
    try:
        server = metrics.serve(outputs.metrics_host, outputs.metrics_port)
    except OSError as exc:
        fail(
            f"cannot serve metrics on {outputs.metrics_host}:{outputs.metrics_port}: "
            f"{exc.strerror or exc}"
        )
    host = f"[{outputs.metrics_host}]" if ":" in outputs.metrics_host else outputs.metrics_host
    typer.echo(f"wsdoctor watch: metrics on http://{host}:{server.port}/metrics", err=True)
    return metrics, server


async def _run(
    plan: WatchPlan,
    observations: Observations,
    status: WatchStatus,
    sink: _Sink,
    console: Console,
) -> int | None:
    """Run the watch with its display until the duration ends or a signal stops it."""
    import asyncio
    import contextlib

    from wsdoctor.probes.watch import run_watch
    from wsdoctor.signals import cancel_on_signals

    work = asyncio.create_task(run_watch(plan, observations, status, sink))
    with cancel_on_signals(work) as stopped_by:
        await _display(work, observations, status, sink, console)
        with contextlib.suppress(asyncio.CancelledError):
            await work
    return stopped_by[0] if stopped_by else None


async def _display(
    work: Any, observations: Observations, status: WatchStatus, sink: _Sink, console: Console
) -> None:
    """Refresh the live panel (or just the textfile) until the watch ends."""
    import asyncio
    import time

    from rich.live import Live

    from wsdoctor.report.watch import watch_panel

    last_textfile = 0.0

    def panel() -> Any:
        log: WatchLog = observations.watch or _empty_log(status)
        return watch_panel(status, log, sink.causes())

    def tick() -> None:
        nonlocal last_textfile
        if time.monotonic() - last_textfile >= TEXTFILE_EVERY_S:
            sink.flush_textfile()
            last_textfile = time.monotonic()

    if sink.plain:
        while not work.done():
            await asyncio.wait({work}, timeout=REFRESH_S)
            tick()
        return
    with Live(panel(), console=console, transient=True, auto_refresh=False) as live:
        while not work.done():
            await asyncio.wait({work}, timeout=REFRESH_S)
            tick()
            live.update(panel(), refresh=True)


def _empty_log(status: WatchStatus) -> WatchLog:
    from wsdoctor.observations import WatchLog

    return WatchLog(duration_s=0.0, connections=len(status.slots), up_s=0.0)
