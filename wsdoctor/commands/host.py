"""`wsdoctor host`: read this machine's connection limits and say which one stops a server first."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from wsdoctor.commands.common import JsonOut, NoColor, fail, use_color
from wsdoctor.commands.probe import check_json_path

MAX_TARGET = 100_000_000  # connections: beyond any one host's file descriptor ceiling


def host(
    pid: Annotated[
        int | None, typer.Option("--pid", help="Also read the limits of this running server.")
    ] = None,
    target_connections: Annotated[
        int | None,
        typer.Option(
            "--target-connections", help="Say which limit stops N connections, and what to set."
        ),
    ] = None,
    root: Annotated[
        str,
        typer.Option("--root", help="Read /proc under this directory (a recorded copy)."),
    ] = "/",
    json_out: JsonOut = None,
    no_color: NoColor = False,
) -> None:
    """Read the limits that decide how many WebSocket connections this machine holds."""
    import time
    from datetime import datetime, timezone

    from wsdoctor.diagnosis.engine import diagnose
    from wsdoctor.execute import EXIT_INCONCLUSIVE, Outputs, exit_code_for
    from wsdoctor.observations import Observations
    from wsdoctor.probes.hostlimits import gather_host_facts, process_exists

    if not os.path.isdir(root):
        fail(f"--root {root!r} is not a directory")
    if pid is not None and (pid < 1 or not process_exists(root, pid)):
        fail(f"no process with pid {pid}")
    if target_connections is not None and not 1 <= target_connections <= MAX_TARGET:
        fail(f"--target-connections must be between 1 and {MAX_TARGET}, got {target_connections}")
    check_json_path(json_out)
    began = time.monotonic()
    observations = Observations(
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=0.0,
        host=gather_host_facts(root, pid, target_connections),
    )
    observations.duration_s = round(time.monotonic() - began, 3)
    diagnosis = diagnose(observations)
    try:
        _render(observations, diagnosis, Outputs(json_path=json_out, color=use_color(no_color)))
    except OSError as exc:
        typer.echo(f"wsdoctor: error: {exc}", err=True)
        raise typer.Exit(EXIT_INCONCLUSIVE) from None
    raise typer.Exit(exit_code_for(diagnosis, None))


def _render(observations, diagnosis, outputs) -> None:  # noqa: ANN001 - lazily imported types
    from rich.console import Console

    from wsdoctor.execute import PLAIN_WIDTH
    from wsdoctor.report.host import render_host
    from wsdoctor.report.json_report import build_report, write_json
    from wsdoctor.report.terminal import render_terminal

    console = Console(stderr=outputs.json_path == "-", no_color=not outputs.color, highlight=False)
    if not console.is_terminal:
        console.width = PLAIN_WIDTH
    render_terminal(observations, diagnosis, console)
    render_host(observations.host, console)
    if outputs.json_path:
        write_json(build_report(observations, diagnosis), outputs.json_path)
