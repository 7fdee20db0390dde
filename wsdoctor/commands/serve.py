"""`wsdoctor serve`: the reference endpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from wsdoctor.commands.common import TERMINAL, ReportArgs, check_seconds, fail, with_options
from wsdoctor.exitcodes import EXIT_INCONCLUSIVE

MAX_SECONDS = 86400.0
MAX_HANDSHAKE_S = 3600.0
MAX_CONNECTIONS = 1_000_000
MAX_TOKEN_CHARS = 1024


def _check_token(token: str | None) -> None:
    """Reject tokens a header cannot carry; never echo the token itself."""
    if token is None:
        return
    if not 1 <= len(token) <= MAX_TOKEN_CHARS or not all("!" <= c <= "~" for c in token):
        fail(f"--token must be 1 to {MAX_TOKEN_CHARS} visible ASCII characters, without spaces")


def bind_warning(host: str, token: str | None) -> str | None:
    """One line warning that ``host`` is reachable from other machines, or None for loopback."""
    from wsdoctor.plan import is_loopback_host

    if is_loopback_host(host):
        return None
    open_to = "anyone who can reach it" if token is None else "holders of the token"
    return (
        f"wsdoctor serve: warning: {host} is not a loopback address: other machines can "
        f"connect ({open_to})"
    )


def _url(host: str, port: int) -> str:
    return f"ws://[{host}]:{port}/" if ":" in host else f"ws://{host}:{port}/"


@with_options(TERMINAL)
def serve(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to bind.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", help="Port to bind (0: any free port).")
    ] = 8765,
    ping_interval: Annotated[
        float | None,
        typer.Option("--ping-interval", metavar="SECONDS", help="Ping clients every SECONDS."),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option("--idle-timeout", metavar="SECONDS", help="Close clients idle for SECONDS."),
    ] = None,
    idle_ignores_pings: Annotated[
        bool,
        typer.Option("--idle-ignores-pings", help="Only data messages reset the idle timer."),
    ] = False,
    max_age: Annotated[
        float | None,
        typer.Option("--max-age", metavar="SECONDS", help="Close connections at SECONDS of age."),
    ] = None,
    close_with: Annotated[
        str,
        typer.Option(
            "--close-with", metavar="HOW", help="How timeouts end connections: frame, fin or rst."
        ),
    ] = "frame",
    max_messages_per_s: Annotated[
        float | None,
        typer.Option(
            "--max-messages-per-s",
            metavar="N",
            help="Close clients sending more than N messages in 1 s.",
        ),
    ] = None,
    rate_close_code: Annotated[
        int,
        typer.Option(
            "--rate-close-code", metavar="CODE", help="Close code for that: 1008 or 1013."
        ),
    ] = 1008,
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections", metavar="N", help="Answer HTTP 503 beyond N open connections."
        ),
    ] = None,
    max_message: Annotated[
        str | None,
        typer.Option(
            "--max-message",
            metavar="SIZE",
            help="Close with 1009 on messages larger than this, e.g. 65536 or 64KiB (1MiB).",
        ),
    ] = None,
    handshake_timeout: Annotated[
        float,
        typer.Option(
            "--handshake-timeout",
            metavar="SECONDS",
            help="Drop clients that have not finished the handshake in SECONDS.",
        ),
    ] = 10.0,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            envvar="WSDOCTOR_SERVE_TOKEN",
            show_envvar=True,
            help="Require 'Authorization: Bearer TOKEN' or '?token=TOKEN' (else HTTP 401).",
        ),
    ] = None,
    *,
    report: ReportArgs,
) -> None:
    """Run the reference WebSocket endpoint (echo, JSON pings, optional bad behaviour).

    \b
    Examples:
      wsdoctor serve
      wsdoctor serve --port 9000 --idle-timeout 5 --close-with fin
      WSDOCTOR_SERVE_TOKEN=s3cret wsdoctor serve --max-connections 100
    """
    debug = report.debug
    import asyncio
    import signal

    from wsdoctor.plan import PlanError, parse_message_size
    from wsdoctor.server import ServeOptions, serve_until_signalled

    if not host.strip():
        fail("--host must not be empty (use 0.0.0.0 or :: to listen on every interface)")
    if not 0 <= port <= 65535:
        fail(f"--port must be between 0 and 65535, got {port}")
    for name, value in (
        ("--ping-interval", ping_interval),
        ("--idle-timeout", idle_timeout),
        ("--max-age", max_age),
    ):
        check_seconds(name, value, MAX_SECONDS)
    check_seconds("--handshake-timeout", handshake_timeout, MAX_HANDSHAKE_S)
    if close_with not in ("frame", "fin", "rst"):
        fail("--close-with must be frame, fin or rst")
    if max_messages_per_s is not None and not 0 < max_messages_per_s <= 1_000_000:
        fail(f"--max-messages-per-s must be between 0 and 1000000, got {max_messages_per_s}")
    if rate_close_code not in (1008, 1013):
        fail(f"--rate-close-code must be 1008 or 1013, got {rate_close_code}")
    if max_connections is not None and not 1 <= max_connections <= MAX_CONNECTIONS:
        fail(f"--max-connections must be between 1 and {MAX_CONNECTIONS}, got {max_connections}")
    try:
        max_message_bytes = parse_message_size(max_message) if max_message else 1 << 20
    except PlanError as exc:
        fail(str(exc))
    _check_token(token)
    options = ServeOptions(
        host=host,
        port=port,
        ping_interval_s=ping_interval,
        idle_timeout_s=idle_timeout,
        idle_ignores_pings=idle_ignores_pings,
        idle_close=close_with,  # type: ignore[arg-type]
        max_age_s=max_age,
        max_age_close=close_with,  # type: ignore[arg-type]
        max_message_bytes=max_message_bytes,
        max_messages_per_s=max_messages_per_s,
        rate_close_code=rate_close_code,
        max_connections=max_connections,
        open_timeout_s=handshake_timeout,
        token=token,
    )

    def ready(bound: int) -> None:
        guarded = ", token required" if token else ""
        typer.echo(
            f"wsdoctor serve: listening on {_url(host, bound)} (Ctrl-C to stop{guarded})", err=True
        )
        warning = bind_warning(host, token)
        if warning is not None:
            typer.echo(warning, err=True)

    try:
        stopped_by = asyncio.run(serve_until_signalled(options, ready))
    except KeyboardInterrupt:
        stopped_by = signal.SIGINT
    except OSError as exc:
        if debug:
            raise
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - one line for users, traceback with --debug
        if debug:
            raise
        typer.echo(f"wsdoctor: internal error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(EXIT_INCONCLUSIVE) from None
    typer.echo(f"wsdoctor serve: stopped ({signal.Signals(stopped_by).name})", err=True)
