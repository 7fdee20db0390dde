"""The command line: options become a plan, the verdict becomes an exit code.

Heavy libraries (websockets, httpx, most of rich) are imported inside the commands that use
them, so that ``wsdoctor --version`` and ``--help`` start instantly.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, NoReturn

import typer

from wsdoctor import __version__

app = typer.Typer(
    name="wsdoctor",
    help="Find out why WebSocket connections drop, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_USAGE = 2

MaxIdle = Annotated[
    float | None,
    typer.Option("--max-idle", help="Longest idle period to test, in seconds (default 120)."),
]
Quick = Annotated[bool, typer.Option("--quick", help="Shorter run: --max-idle 30.")]
Headers = Annotated[
    list[str] | None,
    typer.Option("--header", "-H", help="Extra handshake header 'Name: value' (repeatable)."),
]
Subprotocol = Annotated[
    list[str] | None, typer.Option("--subprotocol", help="Offer this subprotocol (repeatable).")
]
Origin = Annotated[str | None, typer.Option("--origin", help="Origin header to send.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates.")]
CaCert = Annotated[str | None, typer.Option("--cacert", help="CA bundle (PEM) to trust.")]
HeartbeatMessage = Annotated[
    str | None,
    typer.Option("--heartbeat-message", help="Application heartbeat text (default a JSON ping)."),
]
JsonOut = Annotated[
    str | None, typer.Option("--json", help="Write the JSON report to PATH ('-' for stdout).")
]
NoColor = Annotated[bool, typer.Option("--no-color", help="Plain text, no colours.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")]
OpenTimeout = Annotated[
    float, typer.Option("--open-timeout", help="Seconds allowed for each handshake.")
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"wsdoctor: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wsdoctor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Find out why WebSocket connections drop, and prove it."""


def _use_color(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ


def _build_plan(
    paths: list[tuple[str, str, str | None]],
    max_idle: float | None,
    quick: bool,
    header: list[str] | None,
    subprotocol: list[str] | None,
    origin: str | None,
    insecure: bool,
    cacert: str | None,
    heartbeat_message: str | None,
    open_timeout: float,
):  # noqa: ANN202 - returns wsdoctor.plan.Plan, imported lazily
    from wsdoctor.plan import (
        DEFAULT_HEARTBEAT_MESSAGE,
        DEFAULT_MAX_IDLE_S,
        QUICK_MAX_IDLE_S,
        ConnectOptions,
        IdlePlan,
        PathSpec,
        Plan,
        PlanError,
        parse_header,
        validate_max_idle,
        validate_proxy_url,
        validate_ws_url,
    )

    try:
        specs = tuple(
            PathSpec(name, validate_ws_url(url), validate_proxy_url(proxy) if proxy else None)
            for name, url, proxy in paths
        )
        idle_budget = (
            max_idle
            if max_idle is not None
            else (QUICK_MAX_IDLE_S if quick else DEFAULT_MAX_IDLE_S)
        )
        validate_max_idle(idle_budget)
        if not 0.1 <= open_timeout <= 600:
            raise PlanError(f"--open-timeout must be between 0.1 and 600 s, got {open_timeout}")
        if cacert is not None and not os.access(cacert, os.R_OK):
            raise PlanError(f"cannot read --cacert file {cacert!r}")
        if heartbeat_message is not None and not heartbeat_message:
            raise PlanError("--heartbeat-message must not be empty")
        connect = ConnectOptions(
            headers=tuple(parse_header(h) for h in header or ()),
            subprotocols=tuple(subprotocol or ()),
            origin=origin,
            insecure=insecure,
            cacert=cacert,
            open_timeout_s=open_timeout,
        )
    except PlanError as exc:
        _fail(str(exc))
    return Plan(
        paths=specs,
        connect=connect,
        idle=IdlePlan(max_idle_s=idle_budget),
        heartbeat_message=heartbeat_message or DEFAULT_HEARTBEAT_MESSAGE,
    )


def _run(plan, json_out: str | None, no_color: bool, debug: bool, fixture=None) -> NoReturn:  # noqa: ANN001
    from wsdoctor.execute import EXIT_INCONCLUSIVE, Outputs, execute

    outputs = Outputs(json_path=json_out, color=_use_color(no_color))
    try:
        code = execute(plan, outputs, fixture)
    except OSError as exc:
        if debug:
            raise
        typer.echo(f"wsdoctor: error: {exc}", err=True)
        code = EXIT_INCONCLUSIVE
    except Exception as exc:  # noqa: BLE001 - one line for users, traceback with --debug
        if debug:
            raise
        typer.echo(f"wsdoctor: internal error: {type(exc).__name__}: {exc}", err=True)
        code = EXIT_INCONCLUSIVE
    raise typer.Exit(code)


@app.command()
def probe(
    url: Annotated[str, typer.Argument(help="The WebSocket URL (ws:// or wss://).")],
    proxy: Annotated[
        str | None,
        typer.Option("--proxy", help="Forward proxy: http://host:port or socks5://host:port."),
    ] = None,
    no_proxy: Annotated[
        bool, typer.Option("--no-proxy", help="Ignore HTTPS_PROXY/ALL_PROXY variables.")
    ] = False,
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
    debug: Debug = False,
) -> None:
    """Probe one endpoint in stages and name why its connections drop."""
    from wsdoctor.plan import environment_proxy

    if proxy is None and not no_proxy:
        proxy = environment_proxy(url)
    paths = [("direct", url, None)]
    if proxy:
        paths.append(("via-proxy", url, proxy))
    plan = _build_plan(
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
    )
    _run(plan, json_out, no_color, debug)


@app.command()
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
    debug: Debug = False,
) -> None:
    """Probe the same service over several paths at once and place the fault at a hop."""
    from wsdoctor.plan import entry_points

    entries = ([via_proxy] if via_proxy else []) + list(via or [])
    if not entries:
        _fail("compare needs --via-proxy URL (or --via URL)")
    paths = [("direct", direct, None), *entry_points(direct, entries)]
    plan = _build_plan(
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
    )
    _run(plan, json_out, no_color, debug)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind (0: any free port).")] = 8765,
    ping_interval: Annotated[
        float | None, typer.Option("--ping-interval", help="Ping clients every S seconds.")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option("--idle-timeout", help="Close clients idle for S seconds.")
    ] = None,
    idle_ignores_pings: Annotated[
        bool,
        typer.Option("--idle-ignores-pings", help="Only data messages reset the idle timer."),
    ] = False,
    max_age: Annotated[
        float | None, typer.Option("--max-age", help="Close connections at S seconds of age.")
    ] = None,
    close_with: Annotated[
        str,
        typer.Option("--close-with", help="How timeouts end connections: frame, fin or rst."),
    ] = "frame",
) -> None:
    """Run the reference WebSocket endpoint (echo, JSON pings, optional bad behaviour)."""
    import asyncio

    from wsdoctor.server import ServeOptions, run_server

    if close_with not in ("frame", "fin", "rst"):
        _fail("--close-with must be frame, fin or rst")
    for name, value in (
        ("--ping-interval", ping_interval),
        ("--idle-timeout", idle_timeout),
        ("--max-age", max_age),
    ):
        if value is not None and not 0 < value <= 86400:
            _fail(f"{name} must be between 0 and 86400 seconds, got {value}")
    if not 0 <= port <= 65535:
        _fail(f"--port must be between 0 and 65535, got {port}")
    options = ServeOptions(
        host=host,
        port=port,
        ping_interval_s=ping_interval,
        idle_timeout_s=idle_timeout,
        idle_ignores_pings=idle_ignores_pings,
        idle_close=close_with,  # type: ignore[arg-type]
        max_age_s=max_age,
        max_age_close=close_with,  # type: ignore[arg-type]
    )

    def ready(bound: int) -> None:
        typer.echo(f"wsdoctor serve: listening on ws://{host}:{bound}/ (Ctrl-C to stop)", err=True)

    try:
        asyncio.run(run_server(options, ready))
    except KeyboardInterrupt:
        typer.echo("wsdoctor serve: stopped", err=True)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@app.command()
def demo(
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", help="The lab proxy's idle timeout, seconds.")
    ] = 4.0,
    json_out: JsonOut = None,
    no_color: NoColor = False,
    debug: Debug = False,
) -> None:
    """Diagnose a built-in lab: a server behind a proxy that drops idle connections."""
    from wsdoctor.demo import demo_fixture, demo_plan

    if not 1 <= idle_timeout <= 20:
        _fail("--idle-timeout must be between 1 and 20 seconds for the demo")
    lab = demo_fixture(idle_timeout)
    typer.echo(
        f"wsdoctor demo: a WebSocket server, and a proxy in front of it that closes "
        f"connections idle for {idle_timeout:g} s. Probing both paths...",
        err=True,
    )
    _run(demo_plan(lab), json_out, no_color, debug, fixture=lab.running)


def main() -> None:
    """Entry point of the ``wsdoctor`` command."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
