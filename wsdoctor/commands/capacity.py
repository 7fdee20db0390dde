"""`wsdoctor capacity`: ramp up concurrent connections politely and find the server's limit."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer

from wsdoctor.commands.common import (
    CONNECT,
    REPORT,
    ConnectArgs,
    ReportArgs,
    connect_options,
    fail,
    path_specs,
    run_gatherer,
    with_options,
)
from wsdoctor.execute import Gatherer

if TYPE_CHECKING:
    from wsdoctor.budget import Budget
    from wsdoctor.plan import CapacityPlan, ConnectOptions, PathSpec

MAX_CONNECTIONS_CEILING = 1_000_000
MAX_RATE = 100_000.0
MAX_HOLD_S = 3600.0


@with_options(CONNECT.with_defaults(open_timeout=5.0), REPORT)
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
    *,
    connect: ConnectArgs,
    report: ReportArgs,
) -> None:
    """Ramp up concurrent connections and record where the server starts to fail."""
    from wsdoctor.plan import CapacityPlan

    outputs = report.outputs()
    if not 1 <= max_connections <= MAX_CONNECTIONS_CEILING:
        fail(f"--max-connections must be between 1 and {MAX_CONNECTIONS_CEILING}")
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        fail(f"--rate must be above 0 and at most {MAX_RATE:g} connections per second")
    if not (math.isfinite(hold) and 0 <= hold <= MAX_HOLD_S):
        fail(f"--hold must be between 0 and {MAX_HOLD_S:g} seconds")
    (path,) = path_specs([("direct", url, None)])
    options = connect_options(connect)
    if not yes_i_own_this_server:
        _require_loopback(path.url)
    plan = CapacityPlan(max_connections=max_connections, rate_per_s=rate, hold_s=hold, storm=storm)
    run_gatherer(CapacityGatherer(path, options, plan, report.max_time), outputs)


class CapacityGatherer(Gatherer):
    """The ramp over one path."""

    def __init__(
        self,
        path: PathSpec,
        connect: ConnectOptions,
        plan: CapacityPlan,
        max_time_s: float | None,
    ) -> None:
        from wsdoctor.observations import Observations
        from wsdoctor.status import RunStatus

        self.path, self.connect, self.plan, self.max_time_s = path, connect, plan, max_time_s
        self.status = RunStatus()
        self.observations = Observations(started_at="", duration_s=0.0)

    def budget(self) -> Budget:
        from wsdoctor.budget import capacity_budget

        return capacity_budget(self.plan, self.connect.open_timeout_s, self.max_time_s)

    async def gather(self) -> None:
        from wsdoctor.probes.capacity import run_capacity

        await run_capacity(self.path, self.connect, self.plan, self.status, self.observations)


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
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
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
