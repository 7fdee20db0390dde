"""`wsdoctor serve`: the reference endpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from wsdoctor.commands.common import (
    fail,
)


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
    max_messages_per_s: Annotated[
        float | None,
        typer.Option(
            "--max-messages-per-s", help="Close clients sending more than N messages in 1 s."
        ),
    ] = None,
    rate_close_code: Annotated[
        int, typer.Option("--rate-close-code", help="Close code for that: 1008 or 1013.")
    ] = 1008,
    max_connections: Annotated[
        int | None,
        typer.Option("--max-connections", help="Answer HTTP 503 beyond N open connections."),
    ] = None,
) -> None:
    """Run the reference WebSocket endpoint (echo, JSON pings, optional bad behaviour)."""
    import asyncio

    from wsdoctor.server import ServeOptions, run_server

    if close_with not in ("frame", "fin", "rst"):
        fail("--close-with must be frame, fin or rst")
    if max_messages_per_s is not None and not 0 < max_messages_per_s <= 1_000_000:
        fail(f"--max-messages-per-s must be between 0 and 1000000, got {max_messages_per_s}")
    if rate_close_code not in (1008, 1013):
        fail(f"--rate-close-code must be 1008 or 1013, got {rate_close_code}")
    for name, value in (
        ("--ping-interval", ping_interval),
        ("--idle-timeout", idle_timeout),
        ("--max-age", max_age),
    ):
        if value is not None and not 0 < value <= 86400:
            fail(f"{name} must be between 0 and 86400 seconds, got {value}")
    if not 0 <= port <= 65535:
        fail(f"--port must be between 0 and 65535, got {port}")
    options = ServeOptions(
        host=host,
        port=port,
        ping_interval_s=ping_interval,
        idle_timeout_s=idle_timeout,
        idle_ignores_pings=idle_ignores_pings,
        idle_close=close_with,  # type: ignore[arg-type]
        max_age_s=max_age,
        max_age_close=close_with,  # type: ignore[arg-type]
        max_messages_per_s=max_messages_per_s,
        rate_close_code=rate_close_code,
        max_connections=max_connections,
    )
    if max_connections is not None and max_connections < 1:
        fail(f"--max-connections must be at least 1, got {max_connections}")

    def ready(bound: int) -> None:
        typer.echo(f"wsdoctor serve: listening on ws://{host}:{bound}/ (Ctrl-C to stop)", err=True)

    try:
        asyncio.run(run_server(options, ready))
    except KeyboardInterrupt:
        typer.echo("wsdoctor serve: stopped", err=True)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
