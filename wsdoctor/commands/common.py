"""What every command shares: option types and groups, one-line errors, plans from options.

A command is a function with its own options, decorated with the option groups it shares
(:data:`CONNECT`, :data:`REPORT`...); it validates its options into a gatherer and hands it to
:func:`run`. Everything after that (budget, signals, diagnosis, reports, exit code) is
``wsdoctor.execute``.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from wsdoctor.exitcodes import EXIT_USAGE

if TYPE_CHECKING:
    from wsdoctor.execute import Gatherer, Outputs
    from wsdoctor.plan import ConnectOptions, PathSpec, Plan

MAX_TIME_LIMIT_S = 86400.0 * 365

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
HtmlOut = Annotated[
    str | None,
    typer.Option("--html", help="Write a self-contained HTML page with the timeline to PATH."),
]
NoColor = Annotated[bool, typer.Option("--no-color", help="Plain text, no colours.")]
Debug = Annotated[
    bool,
    typer.Option(
        "--debug", help="Show tracebacks of internal errors, the run budget and stack dumps."
    ),
]
MaxTime = Annotated[
    float | None,
    typer.Option(
        "--max-time",
        help="End the run after S seconds at the most, with a report of what it found "
        "(default: a budget computed from the plan).",
    ),
]
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


# --- option groups ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectArgs:
    """How probe connections open: ``-H``, ``--subprotocol``, ``--origin``, TLS, timeout."""

    header: list[str] | None = None
    subprotocol: list[str] | None = None
    origin: str | None = None
    insecure: bool = False
    cacert: str | None = None
    open_timeout: float = 10.0


@dataclass(frozen=True)
class StageArgs:
    """Which stages run and how far: ``--max-idle``, ``--quick``, ``--stages``..."""

    max_idle: float | None = None
    quick: bool = False
    heartbeat_message: str | None = None
    stages: str | None = None
    max_message: str | None = None


@dataclass(frozen=True)
class ReportArgs:
    """Where reports go and how long the run may take."""

    json_out: str | None = None
    no_color: bool = False
    debug: bool = False
    max_time: float | None = None
    html_out: str | None = None

    def outputs(self) -> Outputs:
        """The pipeline's outputs (after checking that the JSON and HTML reports can be written)."""
        from wsdoctor.execute import Outputs

        check_json_path(self.json_out)
        check_html_path(self.html_out)
        check_max_time(self.max_time)
        return Outputs(
            json_path=self.json_out,
            html_path=self.html_out,
            color=use_color(self.no_color),
            debug=self.debug,
        )


@dataclass(frozen=True)
class OptionGroup:
    """Options several commands share, handed to the command as one ``keyword`` argument."""

    keyword: str
    cls: type
    annotations: dict[str, Any]
    defaults: dict[str, Any]

    def parameters(self) -> list[inspect.Parameter]:
        kind = inspect.Parameter.KEYWORD_ONLY
        return [
            inspect.Parameter(name, kind, default=self.defaults[name], annotation=annotation)
            for name, annotation in self.annotations.items()
        ]

    def collect(self, kwargs: dict[str, Any]) -> Any:
        return self.cls(**{name: kwargs.pop(name) for name in self.annotations})

    def with_defaults(self, **defaults: Any) -> OptionGroup:
        """The same group with other defaults (e.g. a shorter ``open_timeout``)."""
        return OptionGroup(self.keyword, self.cls, self.annotations, {**self.defaults, **defaults})


def _group(keyword: str, cls: type, annotations: dict[str, Any]) -> OptionGroup:
    defaults = {f.name: f.default for f in fields(cls)}
    return OptionGroup(keyword, cls, annotations, defaults)


CONNECT = _group(
    "connect",
    ConnectArgs,
    {
        "header": Headers,
        "subprotocol": Subprotocol,
        "origin": Origin,
        "insecure": Insecure,
        "cacert": CaCert,
        "open_timeout": OpenTimeout,
    },
)
STAGES = _group(
    "stage",
    StageArgs,
    {
        "max_idle": MaxIdle,
        "quick": Quick,
        "heartbeat_message": HeartbeatMessage,
        "stages": Stages,
        "max_message": MaxMessage,
    },
)
REPORT = _group(
    "report",
    ReportArgs,
    {
        "json_out": JsonOut,
        "html_out": HtmlOut,
        "no_color": NoColor,
        "debug": Debug,
        "max_time": MaxTime,
    },
)
REPORT_NO_BUDGET = OptionGroup(
    "report",
    ReportArgs,
    {"json_out": JsonOut, "no_color": NoColor, "debug": Debug},
    {"json_out": None, "no_color": False, "debug": False},
)


def with_options(*groups: OptionGroup) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add each group's options to a command; it receives them as ``group.keyword=...``."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        keywords = {group.keyword for group in groups}
        own = [p for p in signature.parameters.values() if p.name not in keywords]
        params = own + [p for group in groups for p in group.parameters()]

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            for group in groups:
                kwargs[group.keyword] = group.collect(kwargs)
            return func(*args, **kwargs)

        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


# --- checks and plans -------------------------------------------------------------------------


def check_json_path(json_out: str | None) -> None:
    """Fail before probing, not after, when the JSON report could not be written."""
    if json_out is None or json_out == "-":
        return
    directory = os.path.dirname(os.path.abspath(json_out))
    if os.path.isdir(json_out) or not os.access(directory, os.W_OK):
        fail(f"cannot write --json {json_out!r}: not a file in a writable directory")


def check_html_path(html_out: str | None) -> None:
    """Fail before probing, not after, when the HTML page could not be written."""
    if html_out is None:
        return
    directory = os.path.dirname(os.path.abspath(html_out))
    if html_out == "-" or os.path.isdir(html_out) or not os.access(directory, os.W_OK):
        fail(f"cannot write --html {html_out!r}: not a file in a writable directory")


def check_seconds(name: str, value: float | None, limit: float) -> None:
    """``value`` (when given) is a number of seconds above 0 and at most ``limit``."""
    if value is not None and not (math.isfinite(value) and 0 < value <= limit):
        fail(f"{name} must be a number of seconds above 0 and at most {limit:g}, got {value}")


def check_max_time(max_time: float | None) -> None:
    """``--max-time`` is a number of seconds above 0."""
    check_seconds("--max-time", max_time, MAX_TIME_LIMIT_S)


def check_url(url: str) -> str:
    """A usable ws(s):// URL, else a one-line usage error."""
    from wsdoctor.plan import PlanError, validate_ws_url

    try:
        return validate_ws_url(url)
    except PlanError as exc:
        fail(str(exc))


def connect_options(args: ConnectArgs) -> ConnectOptions:
    """Validate the connection options (exit 2 on bad input)."""
    from wsdoctor.plan import (
        ConnectOptions,
        PlanError,
        parse_header,
        validate_header_value,
        validate_token_list,
    )

    try:
        if not (math.isfinite(args.open_timeout) and 0.1 <= args.open_timeout <= 600):
            raise PlanError(
                f"--open-timeout must be between 0.1 and 600 s, got {args.open_timeout}"
            )
        cacert = args.cacert
        if cacert is not None and not (os.path.isfile(cacert) and os.access(cacert, os.R_OK)):
            raise PlanError(f"cannot read --cacert file {cacert!r}")
        return ConnectOptions(
            headers=tuple(parse_header(h) for h in args.header or ()),
            subprotocols=validate_token_list("--subprotocol", tuple(args.subprotocol or ())),
            origin=validate_header_value("--origin", args.origin),
            insecure=args.insecure,
            cacert=cacert,
            open_timeout_s=args.open_timeout,
        )
    except PlanError as exc:
        fail(str(exc))


def path_specs(paths: Sequence[tuple[str, str, str | None]]) -> tuple[PathSpec, ...]:
    """Validated paths: ``(name, ws URL, forward proxy or None)`` each (exit 2 on bad input)."""
    from wsdoctor.plan import PathSpec, PlanError, validate_proxy_url, validate_ws_url

    try:
        return tuple(
            PathSpec(name, validate_ws_url(url), validate_proxy_url(proxy) if proxy else None)
            for name, url, proxy in paths
        )
    except PlanError as exc:
        fail(str(exc))


def build_plan(
    *,
    paths: Sequence[tuple[str, str, str | None]],
    connect: ConnectArgs,
    stage: StageArgs,
) -> Plan:
    """Validate options into a Plan; exit with a one-line error on bad input."""
    from wsdoctor.plan import PlanError, plan_from_options

    specs = path_specs(paths)
    options = connect_options(connect)
    try:
        return plan_from_options(
            paths=specs,
            connect=options,
            max_idle_s=stage.max_idle,
            quick=stage.quick,
            stages=stage.stages,
            max_message=stage.max_message,
            heartbeat_message=stage.heartbeat_message,
        )
    except PlanError as exc:
        fail(str(exc))


def run_gatherer(gatherer: Gatherer, outputs: Outputs) -> NoReturn:
    """Hand the gatherer to the one pipeline and exit with its code."""
    from wsdoctor.execute import run_command

    run_command(gatherer, outputs)
