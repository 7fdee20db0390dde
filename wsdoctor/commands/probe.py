"""`wsdoctor probe` and `wsdoctor compare`: staged probes over one or more paths."""

from __future__ import annotations

from typing import Annotated

import typer

from wsdoctor.commands.common import (
    CONNECT,
    REPORT,
    STAGES,
    ConnectArgs,
    ForwardProxy,
    NoProxy,
    ReportArgs,
    StageArgs,
    build_plan,
    check_url,
    fail,
    run_gatherer,
    with_options,
)


@with_options(STAGES, CONNECT, REPORT)
def probe(
    url: Annotated[str, typer.Argument(help="The WebSocket URL (ws:// or wss://).")],
    proxy: ForwardProxy = None,
    no_proxy: NoProxy = False,
    *,
    stage: StageArgs,
    connect: ConnectArgs,
    report: ReportArgs,
) -> None:
    """Probe one endpoint in stages and name why its connections drop."""
    from wsdoctor.plan import environment_proxy

    report.outputs()  # fail on an unwritable --json before anything else
    if proxy is None and not no_proxy:
        proxy = environment_proxy(check_url(url))
    paths: list[tuple[str, str, str | None]] = [("direct", url, None)]
    if proxy:
        paths.append(("via-proxy", url, proxy))
    _run_paths(paths, stage, connect, report)


@with_options(STAGES, CONNECT, REPORT)
def compare(
    direct: Annotated[str, typer.Option("--direct", help="The backend's own WebSocket URL.")],
    via_proxy: Annotated[
        str | None,
        typer.Option(
            "--via-proxy",
            help="A ws(s):// entry point through a reverse proxy, or an http(s):// or "
            "socks5:// forward proxy for the direct URL.",
        ),
    ] = None,
    via: Annotated[
        list[str] | None,
        typer.Option("--via", help="More entry points, innermost first (repeatable)."),
    ] = None,
    *,
    stage: StageArgs,
    connect: ConnectArgs,
    report: ReportArgs,
) -> None:
    """Probe the same service over several paths at once and place the fault at a hop."""
    from wsdoctor.plan import entry_points

    entries = ([via_proxy] if via_proxy else []) + list(via or [])
    if not entries:
        fail("compare needs --via-proxy URL (or --via URL)")
    report.outputs()  # fail on an unwritable --json before anything else
    paths = [("direct", direct, None), *entry_points(direct, entries)]
    _run_paths(paths, stage, connect, report)


def _run_paths(
    paths: list[tuple[str, str, str | None]],
    stage: StageArgs,
    connect: ConnectArgs,
    report: ReportArgs,
) -> None:
    from wsdoctor.execute import PlanGatherer

    plan = build_plan(paths=paths, connect=connect, stage=stage)
    run_gatherer(PlanGatherer(plan, report.max_time), report.outputs())
