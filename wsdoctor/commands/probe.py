"""`wsdoctor probe` and `wsdoctor compare`: staged probes over one or more paths."""

from __future__ import annotations

from typing import Annotated

import typer

from wsdoctor.commands.common import (
    CONNECT,
    PROXY,
    REPORT,
    STAGES,
    ConnectArgs,
    ProxyArgs,
    ReportArgs,
    StageArgs,
    Url,
    build_plan,
    fail,
    run_gatherer,
    with_options,
)


@with_options(STAGES, CONNECT, PROXY, REPORT)
def probe(
    url: Url,
    *,
    stage: StageArgs,
    connect: ConnectArgs,
    proxy: ProxyArgs,
    report: ReportArgs,
) -> None:
    """Probe one endpoint in stages and name why its connections drop.

    Exit codes: 0 healthy, 1 a problem was found, 2 bad input, 3 inconclusive.

    \b
    Examples:
      wsdoctor probe wss://example.com/socket
      wsdoctor probe ws://127.0.0.1:8765/ --stages handshake,echo
      wsdoctor probe wss://api.example.com/ws -H 'Authorization: Bearer $TOKEN' --quick
    """
    report.outputs()  # fail on an unwritable --json before anything else
    paths: list[tuple[str, str, str | None]] = [("direct", url, None)]
    forward = proxy.for_url(url)
    if forward:
        paths.append(("via-proxy", url, forward))
    _run_paths(paths, stage, connect, report)


@with_options(STAGES, CONNECT, REPORT)
def compare(
    direct: Annotated[
        str,
        typer.Option("--direct", metavar="URL", help="The backend's own WebSocket URL."),
    ],
    via_proxy: Annotated[
        str | None,
        typer.Option(
            "--via-proxy",
            metavar="URL",
            help="A ws(s):// entry point through a reverse proxy, or an http(s):// or "
            "socks5:// forward proxy for the direct URL.",
        ),
    ] = None,
    via: Annotated[
        list[str] | None,
        typer.Option(
            "--via", metavar="URL", help="More entry points, innermost first (repeatable)."
        ),
    ] = None,
    *,
    stage: StageArgs,
    connect: ConnectArgs,
    report: ReportArgs,
) -> None:
    """Probe the same service over several paths at once and place the fault at a hop.

    Every path is given explicitly: proxy variables from the environment are not used.

    \b
    Examples:
      wsdoctor compare --direct ws://10.0.0.5:8080/ws --via-proxy wss://example.com/ws
      wsdoctor compare --direct ws://app:8080/ws --via-proxy http://squid:3128
      wsdoctor compare --direct ws://app:8080/ws --via ws://nginx/ws --via wss://cdn/ws
    """
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
