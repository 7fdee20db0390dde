"""`wsdoctor demo`: a built-in lab to diagnose."""

from __future__ import annotations

from typing import Annotated

import typer

from wsdoctor.commands.common import REPORT, ReportArgs, fail, run_gatherer, with_options


@with_options(REPORT)
def demo(
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout", metavar="SECONDS", help="The lab proxy's idle timeout (1-20)."
        ),
    ] = 4.0,
    *,
    report: ReportArgs,
) -> None:
    """Diagnose a built-in lab: a server behind a proxy that drops idle connections.

    The demo finds a problem on purpose, so it exits 1 (a problem was found).

    \b
    Examples:
      wsdoctor demo
      wsdoctor demo --idle-timeout 2 --html demo.html
    """
    from wsdoctor.demo import demo_fixture, demo_plan
    from wsdoctor.execute import PlanGatherer

    outputs = report.outputs()
    if not 1 <= idle_timeout <= 20:
        fail("--idle-timeout must be between 1 and 20 seconds for the demo")
    lab = demo_fixture(idle_timeout)
    typer.echo(
        f"wsdoctor demo: a WebSocket server, and a proxy in front of it that closes "
        f"connections idle for {idle_timeout:g} s. Probing both paths...",
        err=True,
    )
    run_gatherer(PlanGatherer(demo_plan(lab), report.max_time, fixture=lab.running), outputs)
