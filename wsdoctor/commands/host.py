"""`wsdoctor host`: read this machine's connection limits and say which one stops a server first."""

from __future__ import annotations

import os
from datetime import UTC
from typing import TYPE_CHECKING, Annotated

import typer

from wsdoctor.commands.common import REPORT_NO_BUDGET, ReportArgs, fail, run_gatherer, with_options
from wsdoctor.execute import Gatherer, make_console

if TYPE_CHECKING:
    from wsdoctor.budget import Budget
    from wsdoctor.diagnosis.model import Diagnosis
    from wsdoctor.execute import Outputs

MAX_TARGET = 100_000_000  # connections: beyond any one host's file descriptor ceiling


@with_options(REPORT_NO_BUDGET)
def host(
    pid: Annotated[
        int | None,
        typer.Option("--pid", metavar="PID", help="Also read the limits of this running server."),
    ] = None,
    target_connections: Annotated[
        int | None,
        typer.Option(
            "--target-connections",
            metavar="N",
            help="Say which limit stops N connections, and what to set.",
        ),
    ] = None,
    root: Annotated[
        str,
        typer.Option("--root", metavar="DIR", help="Read /proc under DIR (a recorded copy)."),
    ] = "/",
    *,
    report: ReportArgs,
) -> None:
    """Read the limits that decide how many WebSocket connections this machine holds.

    \b
    Examples:
      wsdoctor host
      sudo wsdoctor host --pid "$(pgrep -o nginx)" --target-connections 50000
    """
    from wsdoctor.probes.hostlimits import process_exists

    if not os.path.isdir(root):
        fail(f"--root {root!r} is not a directory")
    if pid is not None and (pid < 1 or not process_exists(root, pid)):
        fail(f"no process with pid {pid}")
    if target_connections is not None and not 1 <= target_connections <= MAX_TARGET:
        fail(f"--target-connections must be between 1 and {MAX_TARGET}, got {target_connections}")
    run_gatherer(HostGatherer(root, pid, target_connections), report.outputs())


class HostGatherer(Gatherer):
    """Files under /proc: no network, a short fixed budget."""

    def __init__(self, root: str, pid: int | None, target_connections: int | None) -> None:
        from wsdoctor.observations import Observations

        self.root, self.pid, self.target_connections = root, pid, target_connections
        self.observations = Observations(started_at="", duration_s=0.0)

    def budget(self) -> Budget:
        from wsdoctor.budget import HOST_BUDGET_S, limited

        return limited([("host", HOST_BUDGET_S)], None)

    def prepare(self) -> None:
        """Nothing to load: no network."""

    async def gather(self) -> None:
        import time
        from datetime import datetime

        from wsdoctor.probes.hostlimits import gather_host_facts

        began = time.monotonic()
        self.observations.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.observations.host = gather_host_facts(self.root, self.pid, self.target_connections)
        self.observations.duration_s = round(time.monotonic() - began, 3)

    def where(self) -> str:
        return f"reading limits under {self.root}"

    async def progress(self, work: object, outputs: Outputs) -> None:
        """Nothing to show: reading a few files takes no time."""

    def render(self, diagnosis: Diagnosis, outputs: Outputs) -> None:
        from wsdoctor.report.host import render_host
        from wsdoctor.report.terminal import render_terminal

        console = make_console(outputs)
        render_terminal(self.observations, diagnosis, console)
        render_host(self.observations.host, console)
