"""`wsdoctor watch`: a long-running monitor of one endpoint, for intermittent drops."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from wsdoctor.commands.common import (
    CONNECT,
    PROXY,
    REPORT,
    ConnectArgs,
    ProxyArgs,
    ReportArgs,
    Url,
    check_output_path,
    check_seconds,
    connect_options,
    fail,
    path_specs,
    run_gatherer,
    with_options,
)
from wsdoctor.execute import Gatherer, make_console, progress_console

if TYPE_CHECKING:
    import asyncio

    from rich.console import Console

    from wsdoctor.budget import Budget
    from wsdoctor.diagnosis.model import Diagnosis, Finding
    from wsdoctor.execute import Outputs
    from wsdoctor.metrics import WatchMetrics
    from wsdoctor.observations import Observations, WatchLog
    from wsdoctor.plan import WatchPlan
    from wsdoctor.report.watch import EventLog
    from wsdoctor.status import WatchStatus

MAX_CONNECTIONS = 100
MAX_SECONDS = 86400.0 * 365
REFRESH_S = 0.5
TEXTFILE_EVERY_S = 1.0


@with_options(CONNECT, PROXY, REPORT)
def watch(
    url: Url,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            metavar="SECONDS",
            help="Stop after SECONDS (default: run until Ctrl-C).",
        ),
    ] = None,
    interval: Annotated[
        float,
        typer.Option("--interval", metavar="SECONDS", help="Heartbeat every SECONDS."),
    ] = 15.0,
    heartbeat_message: Annotated[
        str | None,
        typer.Option(
            "--heartbeat-message",
            metavar="TEXT",
            help="Also send this application message at each heartbeat (default: pings only).",
        ),
    ] = None,
    backoff_base: Annotated[
        float,
        typer.Option("--backoff-base", metavar="SECONDS", help="First reconnect backoff ceiling."),
    ] = 0.5,
    backoff_max: Annotated[
        float,
        typer.Option("--backoff-max", metavar="SECONDS", help="Longest reconnect backoff."),
    ] = 30.0,
    connections: Annotated[
        int,
        typer.Option(
            "--connections", metavar="N", help="Connections to keep open at once (1-100)."
        ),
    ] = 1,
    events: Annotated[
        str | None,
        typer.Option("--events", metavar="PATH", help="Append every event as JSON lines to PATH."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", metavar="PORT", help="Serve Prometheus metrics on PORT (0: any)."
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host", metavar="ADDRESS", help="Address the metrics endpoint binds."
        ),
    ] = "127.0.0.1",
    metrics_textfile: Annotated[
        str | None,
        typer.Option(
            "--metrics-textfile",
            metavar="PATH",
            help="Keep Prometheus metrics in PATH (node exporter textfile).",
        ),
    ] = None,
    *,
    connect: ConnectArgs,
    proxy: ProxyArgs,
    report: ReportArgs,
) -> None:
    """Keep connections open with heartbeats; record, classify and count every drop.

    Reconnects back off (jittered, from --backoff-base doubling up to --backoff-max) on
    consecutive failures only: a failed handshake, or a connection that ended within
    min(--backoff-max, 5 s). A connection that stayed up that long starts the backoff over.

    \b
    Examples:
      wsdoctor watch wss://example.com/socket
      wsdoctor watch wss://example.com/socket --interval 30 --duration 3600 --events drops.jsonl
      wsdoctor watch ws://127.0.0.1:8765/ --connections 10 --metrics-port 9321
    """
    from wsdoctor.backoff import BackoffPolicy
    from wsdoctor.plan import WatchPlan

    check_seconds("--duration", duration, MAX_SECONDS)
    check_seconds("--interval", interval, 86400.0)
    check_seconds("--backoff-base", backoff_base, 86400.0)
    check_seconds("--backoff-max", backoff_max, 86400.0)
    if backoff_max < backoff_base:
        fail(f"--backoff-max ({backoff_max:g}) must not be below --backoff-base ({backoff_base:g})")
    if not 1 <= connections <= MAX_CONNECTIONS:
        fail(f"--connections must be between 1 and {MAX_CONNECTIONS}, got {connections}")
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        fail(f"--metrics-port must be between 0 and 65535, got {metrics_port}")
    check_output_path("--events", events)
    check_output_path("--metrics-textfile", metrics_textfile)
    outputs = report.outputs()
    if heartbeat_message is not None and not heartbeat_message:
        fail("--heartbeat-message must not be empty")
    (spec,) = path_specs([("direct", url, proxy.for_url(url))])
    plan = WatchPlan(
        path=spec,
        connect=connect_options(connect),
        interval_s=interval,
        heartbeat_message=heartbeat_message,
        connections=connections,
        duration_s=duration,
        backoff=BackoffPolicy(base_s=backoff_base, max_s=backoff_max),
    )
    sinks = _Outputs(
        events_path=events,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        metrics_textfile=metrics_textfile,
    )
    run_gatherer(WatchGatherer(plan, outputs, sinks, report.max_time), outputs)


class _Outputs(NamedTuple):
    """Where a watch reports besides the pipeline's outputs: events log and metrics."""

    events_path: str | None
    metrics_port: int | None
    metrics_host: str
    metrics_textfile: str | None


@dataclass
class _Sink:
    """Takes each event of the watch to the events log, the metrics and plain output."""

    observations: Observations
    console: Console
    plain: bool  # a line per event rather than a live panel
    events: EventLog | None
    metrics: WatchMetrics | None
    textfile: str | None
    dirty: bool = False
    quiet: bool = False  # -q: neither, only the verdict line at the end
    labels: list[str] = field(default_factory=list)

    def causes(self) -> list[str]:
        """The cause of every drop so far, as the diagnosis sees it."""
        from wsdoctor.diagnosis.rules.watch import disconnect_causes

        log = self.observations.watch
        return disconnect_causes(log) if log is not None else []

    def __call__(self, event: dict[str, Any]) -> None:
        """Label a drop (or an opening outage) with its cause as known now; when this event
        reveals a pattern, relabel the earlier drops it explains, everywhere (see relabel)."""
        if event["event"] not in ("disconnect", "handshake_failed"):
            self.send(event)
            return
        causes = self.causes()
        if "index" in event:
            event["cause"] = causes[event["index"]]
        self.send(event)
        self.relabel(causes, event["t"])

    def relabel(self, causes: list[str] | None = None, t: float | None = None) -> None:
        """A ``relabel`` event for every drop whose cause changed since it was told: the
        events log, the metrics and the plain lines follow it, so that all of them end with
        the causes the summary gives."""
        log = self.observations.watch
        if log is None:
            return
        causes = self.causes() if causes is None else causes
        when = log.duration_s if t is None else t
        for index, (was, cause) in enumerate(zip(self.labels, causes)):
            if was != cause:
                connection = log.disconnects[index].connection
                self.send(
                    {
                        "event": "relabel",
                        "t": when,
                        "connection": connection,
                        "index": index,
                        "cause": cause,
                        "was": was,
                    }
                )
        self.labels = list(causes)

    def send(self, event: dict[str, Any]) -> None:
        """Take one event to the events log, the metrics and the plain output."""
        from wsdoctor.report.watch import event_line

        if self.events is not None:
            self.events.write(event)
        if self.metrics is not None:
            self.metrics.observe(event)
            self.dirty = True
        if self.plain and not self.quiet:
            line = event_line(event)
            if line is not None:
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def flush_textfile(self) -> None:
        """Rewrite the metrics textfile if anything changed since the last write."""
        if self.metrics is not None and self.textfile is not None and self.dirty:
            self.metrics.write_textfile(self.textfile)
            self.dirty = False


class WatchGatherer(Gatherer):
    """The watch: connections kept open until the duration ends or a signal stops it."""

    def __init__(
        self, plan: WatchPlan, outputs: Outputs, sinks: _Outputs, max_time_s: float | None
    ) -> None:

        from wsdoctor.observations import Observations
        from wsdoctor.report.watch import EventLog
        from wsdoctor.status import WatchStatus

        self.plan, self.max_time_s = plan, max_time_s
        self.observations = Observations(started_at="", duration_s=0.0)
        self.status = WatchStatus()
        console = progress_console(outputs.color)
        self.metrics, self.server = _start_metrics(plan, sinks)
        events = None
        if sinks.events_path is not None:
            try:
                events = EventLog(sinks.events_path)
            except OSError as exc:
                self.cleanup()
                fail(f"cannot write --events {sinks.events_path!r}: {exc.strerror or exc}")
        plain = not (console.is_terminal and outputs.color)
        self.sink = _Sink(
            self.observations,
            console,
            plain,
            events,
            self.metrics,
            sinks.metrics_textfile,
            quiet=outputs.quiet,
        )
        self.stopped = False

    def budget(self) -> Budget | None:
        from wsdoctor.budget import watch_budget

        return watch_budget(self.plan.duration_s, self.max_time_s)

    async def gather(self) -> None:
        from wsdoctor.probes.watch import run_watch

        await run_watch(self.plan, self.observations, self.status, self.sink)

    async def progress(self, work: asyncio.Task[None], outputs: Outputs) -> None:
        await _display(work, self.observations, self.status, self.sink, self.sink.console)

    def where(self) -> str:
        return f"watching {len(self.status.slots)} connections"

    def mark_interrupted(self) -> None:
        """A watch without --duration ends by being stopped: that is not an interruption."""
        self.stopped = True

    def cleanup(self) -> None:
        if getattr(self, "sink", None) is not None:
            self.sink.relabel()  # the last word on every drop, before the outputs close
        if self.metrics is not None:
            self.metrics.stopped()
            self.sink.dirty = True
            self.sink.flush_textfile()
        if self.server is not None:
            self.server.close()
        if getattr(self, "sink", None) is not None and self.sink.events is not None:
            self.sink.events.close()

    def conclude(self, outputs: Outputs, stopped_by: int | None, incident: Finding | None) -> int:
        stopped = self.stopped or stopped_by is not None
        self.observations.interrupted = stopped and self.plan.duration_s is not None
        return super().conclude(outputs, stopped_by, incident)

    def render(self, diagnosis: Diagnosis, outputs: Outputs) -> None:
        from wsdoctor.report.watch import render_watch_summary

        console = make_console(outputs)
        render_watch_summary(self.observations, diagnosis, self.sink.causes(), console)


def _start_metrics(plan: WatchPlan, outputs: _Outputs) -> tuple[Any, Any]:
    """The watch's metrics and their HTTP server, when asked for (else None, None)."""
    if outputs.metrics_port is None and outputs.metrics_textfile is None:
        return None, None
    from wsdoctor.metrics import WatchMetrics

    metrics = WatchMetrics(plan.connections, plan.path.url)
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

    if sink.plain or sink.quiet:
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
