"""`wsdoctor demo`: a built-in lab to diagnose."""

from __future__ import annotations

from typing import Annotated

import typer

from wsdoctor.commands.common import (
    Debug,
    JsonOut,
    NoColor,
    fail,
    run_plan_command,
)


def demo(
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", help="The lab proxy's idle timeout, seconds.")
    ] = 4.0,
    json_out: JsonOut = None,
    no_color: NoColor = False,
    debug: Debug = False,
) -> None:
    """Diagnose a built-in lab: a server behind a proxy that drops idle connections."""
    from wsdoctor.commands.probe import check_json_path
    from wsdoctor.demo import demo_fixture, demo_plan

    check_json_path(json_out)
    if not 1 <= idle_timeout <= 20:
        fail("--idle-timeout must be between 1 and 20 seconds for the demo")
    lab = demo_fixture(idle_timeout)
    typer.echo(
        f"wsdoctor demo: a WebSocket server, and a proxy in front of it that closes "
        f"connections idle for {idle_timeout:g} s. Probing both paths...",
        err=True,
    )
    run_plan_command(demo_plan(lab), json_out, no_color, debug, fixture=lab.running)
