"""What every command shares: option types, one-line errors, plan building, running a plan."""

from __future__ import annotations

import os
from typing import Annotated, NoReturn

import typer

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
ForwardProxy = Annotated[
    str | None,
    typer.Option("--proxy", help="Forward proxy: http://host:port or socks5://host:port."),
]
NoProxy = Annotated[
    bool, typer.Option("--no-proxy", help="Ignore HTTPS_PROXY/ALL_PROXY variables.")
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
Stages = Annotated[
    str | None,
    typer.Option(
        "--stages",
        help="Comma-separated stages: handshake,echo,idle,heartbeat,size,rate,stability "
        "(default: all but size and rate, which load the server, unless the target is loopback).",
    ),
]
MaxMessage = Annotated[
    str | None,
    typer.Option(
        "--max-message", help="Largest message the size stage sends, e.g. 65536 or 4MiB (1MiB)."
    ),
]


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with the usage-error code."""
    typer.echo(f"wsdoctor: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def use_color(no_color: bool) -> bool:
    """Colours unless --no-color or NO_COLOR say otherwise."""
    return not no_color and "NO_COLOR" not in os.environ


def build_plan(
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
    stages: str | None = None,
    max_message: str | None = None,
):  # noqa: ANN202 - returns wsdoctor.plan.Plan, imported lazily
    """Validate options into a Plan; exit with a one-line error on bad input."""
    from wsdoctor.plan import (
        DEFAULT_HEARTBEAT_MESSAGE,
        DEFAULT_MAX_IDLE_S,
        QUICK_MAX_IDLE_S,
        ConnectOptions,
        IdlePlan,
        LoadPlan,
        PathSpec,
        Plan,
        PlanError,
        default_stages,
        parse_header,
        parse_message_size,
        parse_stages,
        validate_header_value,
        validate_max_idle,
        validate_proxy_url,
        validate_token_list,
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
        if cacert is not None and not (os.path.isfile(cacert) and os.access(cacert, os.R_OK)):
            raise PlanError(f"cannot read --cacert file {cacert!r}")
        if heartbeat_message is not None and not heartbeat_message:
            raise PlanError("--heartbeat-message must not be empty")
        connect = ConnectOptions(
            headers=tuple(parse_header(h) for h in header or ()),
            subprotocols=validate_token_list("--subprotocol", tuple(subprotocol or ())),
            origin=validate_header_value("--origin", origin),
            insecure=insecure,
            cacert=cacert,
            open_timeout_s=open_timeout,
        )
        chosen = parse_stages(stages) if stages is not None else default_stages(specs)
        load = LoadPlan() if max_message is None else LoadPlan(parse_message_size(max_message))
    except PlanError as exc:
        fail(str(exc))
    return Plan(
        paths=specs,
        connect=connect,
        idle=IdlePlan(max_idle_s=idle_budget),
        heartbeat_message=heartbeat_message or DEFAULT_HEARTBEAT_MESSAGE,
        stages=chosen,
        load=load,
    )


def run_plan_command(
    plan, json_out: str | None, no_color: bool, debug: bool, fixture=None
) -> NoReturn:  # noqa: ANN001
    """Probe, diagnose, render, and exit with the verdict's code."""
    from wsdoctor.execute import EXIT_INCONCLUSIVE, Outputs, execute

    outputs = Outputs(json_path=json_out, color=use_color(no_color))
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
