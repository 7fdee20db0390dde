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
    Url,
    connect_options,
    fail,
    path_specs,
    run_gatherer,
    with_options,
)
from wsdoctor.execute import Gatherer

if TYPE_CHECKING:
    from wsdoctor.budget import Budget
    from wsdoctor.diagnosis.model import Diagnosis, Finding
    from wsdoctor.loadgen.engine import LocustRamp, LocustSettings
    from wsdoctor.plan import CapacityPlan, ConnectOptions, PathSpec

MAX_CONNECTIONS_CEILING = 1_000_000
MAX_RATE = 100_000.0
MAX_HOLD_S = 3600.0
ENGINES = ("asyncio", "locust")
MAX_LOCAL_WORKERS = 64
MAX_WORKERS = 10_000


@with_options(CONNECT, REPORT)
def capacity(
    url: Url,
    max_connections: Annotated[
        int,
        typer.Option("--max-connections", metavar="N", help="Never hold more than N connections."),
    ] = 200,
    rate: Annotated[
        float,
        typer.Option(
            "--rate", metavar="PER_SECOND", help="New connections per second while ramping."
        ),
    ] = 200.0,
    hold: Annotated[
        float,
        typer.Option(
            "--hold", metavar="SECONDS", help="Seconds each level is held before it is checked."
        ),
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
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            metavar="NAME",
            help="asyncio (this process) or locust (a Locust master and worker processes; "
            "needs wsdoctor[locust]).",
        ),
    ] = "asyncio",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            metavar="N",
            help="With --engine locust: local worker processes [default: 2, or 0 with "
            "--expect-workers].",
        ),
    ] = None,
    master_bind: Annotated[
        str | None,
        typer.Option(
            "--master-bind",
            metavar="HOST:PORT",
            help="With --engine locust: where the master listens for workers started "
            "elsewhere with `wsdoctor capacity-worker --master HOST:PORT`.",
        ),
    ] = None,
    expect_workers: Annotated[
        int,
        typer.Option(
            "--expect-workers",
            metavar="N",
            help="With --master-bind: wait for N workers started elsewhere.",
        ),
    ] = 0,
    wait_workers: Annotated[
        float,
        typer.Option(
            "--wait-workers",
            metavar="SECONDS",
            help="With --engine locust: how long to wait for every worker to arrive.",
        ),
    ] = 30.0,
    *,
    connect: ConnectArgs,
    report: ReportArgs,
) -> None:
    """Ramp up concurrent connections and record where the server starts to fail.

    Only loopback targets unless --yes-i-own-this-server: this is a load test.

    \b
    Examples:
      wsdoctor capacity ws://127.0.0.1:8765/ --max-connections 2000
      wsdoctor capacity wss://staging.example.com/ws --yes-i-own-this-server --storm
    """
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
    locust = _locust_settings(engine, workers, master_bind, expect_workers, wait_workers, storm)
    plan = CapacityPlan(max_connections=max_connections, rate_per_s=rate, hold_s=hold, storm=storm)
    run_gatherer(CapacityGatherer(path, options, plan, report.max_time, locust), outputs)


class CapacityGatherer(Gatherer):
    """The ramp over one path."""

    def __init__(
        self,
        path: PathSpec,
        connect: ConnectOptions,
        plan: CapacityPlan,
        max_time_s: float | None,
        locust: LocustSettings | None = None,
    ) -> None:
        from wsdoctor.observations import Observations
        from wsdoctor.status import RunStatus

        self.path, self.connect, self.plan, self.max_time_s = path, connect, plan, max_time_s
        self.status = RunStatus()
        self.observations = Observations(started_at="", duration_s=0.0)
        self.locust: LocustRamp | None = None
        if locust is not None:
            from wsdoctor.loadgen.engine import LocustRamp

            self.locust = LocustRamp(locust, path, connect, plan, self.status)

    def budget(self) -> Budget:
        from wsdoctor.budget import capacity_budget, limited

        budget = capacity_budget(self.plan, self.connect.open_timeout_s, self.max_time_s)
        if self.locust is None:
            return budget
        return limited([*budget.parts, ("locust", self.locust.overhead_s())], self.max_time_s)

    async def gather(self) -> None:
        from wsdoctor.probes.capacity import run_capacity

        await run_capacity(
            self.path, self.connect, self.plan, self.status, self.observations, self.locust
        )

    def diagnose(self, incident: Finding | None) -> Diagnosis:
        """The verdict, made inconclusive when the load engine failed (a lost worker ...)."""
        if incident is None and self.locust is not None and self.locust.error:
            from wsdoctor.diagnosis.catalogue import finding

            error = self.locust.error
            incident = finding("load_engine_failed", [f"locust engine: {error}"], what=error)
        return super().diagnose(incident)


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


def _locust_settings(
    engine: str,
    workers: int | None,
    master_bind: str | None,
    expect_workers: int,
    wait_workers: float,
    storm: bool,
) -> LocustSettings | None:
    """The Locust engine's settings, or None for the asyncio engine; usage errors exit 2."""
    import importlib.util

    if engine not in ENGINES:
        fail(f"--engine must be one of {', '.join(ENGINES)}")
    if engine == "asyncio":
        if workers is not None or master_bind or expect_workers:
            fail("--workers, --master-bind and --expect-workers need --engine locust")
        return None
    if importlib.util.find_spec("locust") is None:
        fail("--engine locust needs Locust: pip install 'wsdoctor[locust]'")
    if storm:
        fail("--storm is not available with --engine locust")
    if not 0 <= expect_workers <= MAX_WORKERS:
        fail(f"--expect-workers must be between 0 and {MAX_WORKERS}")
    if expect_workers and not master_bind:
        fail("--expect-workers needs --master-bind HOST:PORT, where those workers connect")
    local = workers if workers is not None else (0 if expect_workers else 2)
    if not 0 <= local <= MAX_LOCAL_WORKERS:
        fail(f"--workers must be between 0 and {MAX_LOCAL_WORKERS}")
    if local + expect_workers == 0:
        fail("--engine locust needs at least one worker (--workers or --expect-workers)")
    if not (math.isfinite(wait_workers) and 0 < wait_workers <= MAX_HOLD_S):
        fail(f"--wait-workers must be above 0 and at most {MAX_HOLD_S:g} seconds")
    from wsdoctor.commands.capacity_worker import host_port
    from wsdoctor.loadgen.engine import LocustSettings

    host, port = ("127.0.0.1", None)
    if master_bind is not None:
        host, port = host_port(master_bind, "--master-bind")
    return LocustSettings(local, expect_workers, host, port, wait_workers)
