"""`wsdoctor probe` and `wsdoctor compare`: staged probes over one or more paths."""

from __future__ import annotations

from typing import Annotated

import typer

from wsdoctor.commands.common import (
    CaCert,
    Debug,
    ForwardProxy,
    Headers,
    HeartbeatMessage,
    Insecure,
    JsonOut,
    MaxIdle,
    MaxMessage,
    NoColor,
    NoProxy,
    OpenTimeout,
    Origin,
    Quick,
    Stages,
    Subprotocol,
    build_plan,
    fail,
    run_plan_command,
)


def probe(
    url: Annotated[str, typer.Argument(help="The WebSocket URL (ws:// or wss://).")],
    proxy: ForwardProxy = None,
    no_proxy: NoProxy = False,
    max_idle: MaxIdle = None,
    quick: Quick = False,
    header: Headers = None,
    subprotocol: Subprotocol = None,
    origin: Origin = None,
    insecure: Insecure = False,
    cacert: CaCert = None,
    heartbeat_message: HeartbeatMessage = None,
    json_out: JsonOut = None,
    no_color: NoColor = False,
    open_timeout: OpenTimeout = 10.0,
    stages: Stages = None,
    max_message: MaxMessage = None,
    debug: Debug = False,
) -> None:
    """Probe one endpoint in stages and name why its connections drop."""
    from wsdoctor.plan import environment_proxy

    check_json_path(json_out)
    if proxy is None and not no_proxy:
        proxy = environment_proxy(url)
    paths = [("direct", url, None)]
    if proxy:
        paths.append(("via-proxy", url, proxy))
    plan = build_plan(
        paths,
        max_idle,
        quick,
        header,
        subprotocol,
        origin,
        insecure,
        cacert,
        heartbeat_message,
        open_timeout,
        stages,
        max_message,
    )
    run_plan_command(plan, json_out, no_color, debug)


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
    max_idle: MaxIdle = None,
    quick: Quick = False,
    header: Headers = None,
    subprotocol: Subprotocol = None,
    origin: Origin = None,
    insecure: Insecure = False,
    cacert: CaCert = None,
    heartbeat_message: HeartbeatMessage = None,
    json_out: JsonOut = None,
    no_color: NoColor = False,
    open_timeout: OpenTimeout = 10.0,
    stages: Stages = None,
    max_message: MaxMessage = None,
    debug: Debug = False,
) -> None:
    """Probe the same service over several paths at once and place the fault at a hop."""
    from wsdoctor.plan import entry_points

    entries = ([via_proxy] if via_proxy else []) + list(via or [])
    if not entries:
        fail("compare needs --via-proxy URL (or --via URL)")
    check_json_path(json_out)
    paths = [("direct", direct, None), *entry_points(direct, entries)]
    plan = build_plan(
        paths,
        max_idle,
        quick,
        header,
        subprotocol,
        origin,
        insecure,
        cacert,
        heartbeat_message,
        open_timeout,
        stages,
        max_message,
    )
    run_plan_command(plan, json_out, no_color, debug)


def check_json_path(json_out: str | None) -> None:
    """Fail before probing, not after, when the JSON report could not be written."""
    import os

    if json_out is None or json_out == "-":
        return
    directory = os.path.dirname(os.path.abspath(json_out))
    if os.path.isdir(json_out) or not os.access(directory, os.W_OK):
        fail(f"cannot write --json {json_out!r}: not a file in a writable directory")
