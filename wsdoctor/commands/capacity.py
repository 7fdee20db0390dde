"""`wsdoctor capacity`: ramp up concurrent connections politely and find the server's limit."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from wsdoctor.commands.common import (
    CaCert,
    Debug,
    Headers,
    Insecure,
    JsonOut,
    NoColor,
    OpenTimeout,
    Origin,
    Subprotocol,
    build_plan,
    fail,
    use_color,
)

MAX_CONNECTIONS_CEILING = 1_000_000
MAX_RATE = 100_000.0
MAX_HOLD_S = 3600.0


def capacity(
    url: Annotated[str, typer.Argument(help="The WebSocket URL (ws:// or wss://).")],
    max_connections: Annotated[
        int, typer.Option("--max-connections", help="Never hold more than N connections.")
    ] = 200,
    rate: Annotated[
        float, typer.Option("--rate", help="New connections per second while ramping.")
    ] = 200.0,
    hold: Annotated[
        float, typer.Option("--hold", help="Seconds each level is held before it is checked.")
    ] = 1.0,
    storm: Annotated[
        bool,
        typer.Option(
            "--storm",
            help="Also drop every held connection at once and reconnect them, without and "
            "with backoff (all at once: --rate does not apply, --max-connections does).",
        ),
    ] = False,
    yes_i_own_this_server: Annotated[
        bool,
        typer.Option("--yes-i-own-this-server", help="Allow a target that is not loopback."),
    ] = False,
    header: Headers = None,
    subprotocol: Subprotocol = None,
    origin: Origin = None,
    insecure: Insecure = False,
    cacert: CaCert = None,
    json_out: JsonOut = None,
    no_color: NoColor = False,
    open_timeout: OpenTimeout = 5.0,
    debug: Debug = False,
) -> None:
    """Ramp up concurrent connections and record where the server starts to fail."""
    from wsdoctor.commands.probe import check_json_path
    from wsdoctor.probes.capacity import CapacityPlan

    check_json_path(json_out)
    if not 1 <= max_connections <= MAX_CONNECTIONS_CEILING:
        fail(f"--max-connections must be between 1 and {MAX_CONNECTIONS_CEILING}")
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        fail(f"--rate must be above 0 and at most {MAX_RATE:g} connections per second")
    if not (math.isfinite(hold) and 0 <= hold <= MAX_HOLD_S):
        fail(f"--hold must be between 0 and {MAX_HOLD_S:g} seconds")
    plan = build_plan(
        [("direct", url, None)],
        None,
        False,
        header,
        subprotocol,
        origin,
        insecure,
        cacert,
        None,
        open_timeout,
    )
    path = plan.paths[0]
    if not yes_i_own_this_server:
        _require_loopback(path.url)
    capacity_plan = CapacityPlan(
        max_connections=max_connections, rate_per_s=rate, hold_s=hold, storm=storm
    )
    try:
        code = _execute(path, plan.connect, capacity_plan, json_out, no_color)
    except Exception as exc:  # noqa: BLE001 - one line for users, traceback with --debug
        if debug:
            raise
        label = "error" if isinstance(exc, OSError) else f"internal error: {type(exc).__name__}"
        typer.echo(f"wsdoctor: {label}: {exc}", err=True)
        code = 3
    raise typer.Exit(code)


def _require_loopback(url: str) -> None:
    """Exit with a usage error unless every address ``url``'s host resolves to is loopback."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        fail(f"cannot resolve {host!r}: {getattr(exc, 'strerror', None) or exc}")
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    outside = sorted(
        str(a)
        for a in addresses
        if not (a.is_loopback or (a.version == 6 and a.ipv4_mapped and a.ipv4_mapped.is_loopback))
    )
    if outside:
        fail(
            f"refusing to load {host} ({', '.join(outside)}): not a loopback address; "
            "pass --yes-i-own-this-server if you own this server"
        )


def _execute(path, connect, capacity_plan, json_out: str | None, no_color: bool) -> int:  # noqa: ANN001
    """Ramp with a live display, diagnose, render; return the exit code."""
    import asyncio
    import signal

    from wsdoctor.diagnosis.engine import diagnose
    from wsdoctor.execute import Outputs, exit_code_for, render, show_progress
    from wsdoctor.observations import Observations
    from wsdoctor.probes.capacity import run_capacity
    from wsdoctor.probes.status import RunStatus
    from wsdoctor.signals import cancel_on_signals

    outputs = Outputs(json_path=json_out, color=use_color(no_color))
    observations = Observations(started_at="", duration_s=0.0)
    stopped_by: list[int] = []

    async def main() -> None:
        status = RunStatus()
        work = asyncio.create_task(run_capacity(path, connect, capacity_plan, status, observations))
        with cancel_on_signals(work) as received:
            await show_progress(work, outputs, status)
            await work
        stopped_by.extend(received)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        stopped_by.append(signal.SIGINT)
        observations.interrupted = True
    diagnosis = diagnose(observations)
    render(observations, diagnosis, outputs)
    return exit_code_for(diagnosis, stopped_by[0] if stopped_by else None)
