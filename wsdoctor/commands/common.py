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
from wsdoctor.plan import DEFAULT_OPEN_TIMEOUT_S

if TYPE_CHECKING:
    from wsdoctor.execute import Gatherer, Outputs
    from wsdoctor.plan import ConnectOptions, PathSpec, Plan

MAX_TIME_LIMIT_S = 86400.0 * 365

MaxIdle = Annotated[
    float | None,
    typer.Option(
        "--max-idle",
        metavar="SECONDS",
        help="Longest idle period to test (default 120; 30 with --quick).",
    ),
]
Quick = Annotated[bool, typer.Option("--quick", help="Shorter run: --max-idle 30.")]
Headers = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        "-H",
        metavar="'NAME: VALUE'",
        help="Extra handshake header, as in curl (repeatable).",
    ),
]
Subprotocol = Annotated[
    list[str] | None,
    typer.Option("--subprotocol", metavar="NAME", help="Offer this subprotocol (repeatable)."),
]
ForwardProxy = Annotated[
    str | None,
    typer.Option(
        "--proxy",
        metavar="PROXY_URL",
        help="Forward proxy, http://host:port or socks5://host:port; probe and check try the "
        "direct path too (default: HTTP_PROXY for ws://, HTTPS_PROXY for wss://, else "
        "ALL_PROXY; NO_PROXY exempts hosts, as in curl).",
    ),
]
NoProxy = Annotated[
    bool,
    typer.Option(
        "--no-proxy",
        help="Connect directly: ignore HTTP_PROXY, HTTPS_PROXY and ALL_PROXY.",
    ),
]
Origin = Annotated[
    str | None, typer.Option("--origin", metavar="ORIGIN", help="Origin header to send.")
]
Insecure = Annotated[
    bool, typer.Option("--insecure", "-k", help="Do not verify TLS certificates (as curl -k).")
]
CaCert = Annotated[
    str | None,
    typer.Option("--cacert", metavar="FILE", help="Trust the CA certificates in this PEM file."),
]
ClientCert = Annotated[
    str | None,
    typer.Option(
        "--cert",
        metavar="FILE",
        help="Client certificate (PEM) for mutual TLS; with the key unless --key is given.",
    ),
]
ClientKey = Annotated[
    str | None,
    typer.Option(
        "--key", metavar="FILE", help="Private key (PEM, unencrypted) of the --cert certificate."
    ),
]
HeartbeatMessage = Annotated[
    str | None,
    typer.Option(
        "--heartbeat-message",
        metavar="TEXT",
        help="Application heartbeat text (default a JSON ping).",
    ),
]
JsonOut = Annotated[
    str | None,
    typer.Option("--json", metavar="PATH", help="Write the JSON report to PATH ('-' for stdout)."),
]
HtmlOut = Annotated[
    str | None,
    typer.Option(
        "--html",
        metavar="PATH",
        help="Write a self-contained HTML page with the timeline to PATH.",
    ),
]
NoColor = Annotated[bool, typer.Option("--no-color", help="Plain text, no colours.")]
Debug = Annotated[
    bool,
    typer.Option(
        "--debug", help="Show tracebacks of internal errors, the run budget and stack dumps."
    ),
]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print the verdict line only (for CI logs)."),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Also print every stage's details and every connection."),
]
MaxTime = Annotated[
    float | None,
    typer.Option(
        "--max-time",
        metavar="SECONDS",
        help="End the run after SECONDS at the most, with a report of what it found "
        "(default: a budget computed from the plan).",
    ),
]
OpenTimeout = Annotated[
    float | None,
    typer.Option(
        "--open-timeout",
        metavar="SECONDS",
        help=f"Seconds allowed for each handshake (default {DEFAULT_OPEN_TIMEOUT_S:g}).",
    ),
]
Stages = Annotated[
    str | None,
    typer.Option(
        "--stages",
        metavar="STAGE,...",
        help="Stages to run, of handshake,echo,idle,heartbeat,size,rate,stability "
        "(default: all but size and rate, which load the server, unless the target is "
        "loopback). 'handshake,echo' is a one-second connectivity check.",
    ),
]
MaxMessage = Annotated[
    str | None,
    typer.Option(
        "--max-message",
        metavar="SIZE",
        help="Largest message the size stage sends, e.g. 65536 or 4MiB (default 1MiB).",
    ),
]
Url = Annotated[str, typer.Argument(metavar="URL", help="The WebSocket URL (ws:// or wss://).")]


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
    """How connections open: ``-H``, ``--subprotocol``, ``--origin``, TLS, timeout."""

    header: list[str] | None = None
    subprotocol: list[str] | None = None
    origin: str | None = None
    insecure: bool = False
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    open_timeout: float | None = None  # None: DEFAULT_OPEN_TIMEOUT_S


@dataclass(frozen=True)
class ProxyArgs:
    """Which forward proxy connections go through: ``--proxy``, ``--no-proxy``."""

    proxy: str | None = None
    no_proxy: bool = False

    def for_url(self, url: str) -> str | None:
        """The forward proxy for ``url``: ``--proxy``, else the environment's (unless off)."""
        from wsdoctor.plan import environment_proxy

        if self.proxy is not None or self.no_proxy:
            return self.proxy
        return environment_proxy(check_url(url))


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
    """Where reports go, how much the terminal shows, and how long the run may take."""

    json_out: str | None = None
    no_color: bool = False
    debug: bool = False
    quiet: bool = False
    verbose: bool = False
    max_time: float | None = None
    html_out: str | None = None

    def outputs(self) -> Outputs:
        """The pipeline's outputs (after checking that the JSON and HTML reports can be written)."""
        from wsdoctor.execute import Outputs

        if self.quiet and self.verbose:
            fail("--quiet and --verbose cannot be used together")
        check_output_path("--json", self.json_out, stdout_ok=True)
        check_output_path("--html", self.html_out)
        check_max_time(self.max_time)
        return Outputs(
            json_path=self.json_out,
            html_path=self.html_out,
            color=use_color(self.no_color),
            debug=self.debug,
            verbosity=-1 if self.quiet else 1 if self.verbose else 0,
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
        "cert": ClientCert,
        "key": ClientKey,
        "open_timeout": OpenTimeout,
    },
)
PROXY = _group("proxy", ProxyArgs, {"proxy": ForwardProxy, "no_proxy": NoProxy})
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
_OUTPUT_OPTIONS = {"quiet": Quiet, "verbose": Verbose, "no_color": NoColor, "debug": Debug}
REPORT = _group(
    "report",
    ReportArgs,
    {"json_out": JsonOut, "html_out": HtmlOut, "max_time": MaxTime, **_OUTPUT_OPTIONS},
)
REPORT_NO_BUDGET = _group("report", ReportArgs, {"json_out": JsonOut, **_OUTPUT_OPTIONS})
TERMINAL = _group("report", ReportArgs, {"no_color": NoColor, "debug": Debug})
"""For commands that only print as they go (``serve``)."""


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


def check_output_path(option: str, path: str | None, *, stdout_ok: bool = False) -> None:
    """Fail before the run, not after, when ``path`` could not be written as a file."""
    if path is None or (stdout_ok and path == "-"):
        return
    directory = os.path.dirname(os.path.abspath(path))
    if path == "-" or os.path.isdir(path):
        fail(f"cannot write {option} {path!r}: give a file name")
    if not os.path.isdir(directory):
        fail(f"cannot write {option} {path!r}: {directory!r} is not a directory")
    if not os.access(directory, os.W_OK):
        fail(f"cannot write {option} {path!r}: the directory {directory!r} is not writable")


def check_seconds(name: str, value: float | None, limit: float) -> None:
    """``value`` (when given) is a number of seconds above 0 and at most ``limit``."""
    if value is not None and not (math.isfinite(value) and 0 < value <= limit):
        fail(f"{name} must be above 0 and at most {seconds_limit(limit)}, got {value:g}")


def seconds_limit(limit: float) -> str:
    """An upper bound in seconds, in words a person reads at once (``365 days``)."""
    if limit >= 86400 and limit % 86400 == 0:
        days = int(limit // 86400)
        return f"{days} day{'s' if days > 1 else ''} ({limit:.0f} s)"
    return f"{limit:g} s"


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
        open_timeout = DEFAULT_OPEN_TIMEOUT_S if args.open_timeout is None else args.open_timeout
        if not (math.isfinite(open_timeout) and 0.1 <= open_timeout <= 600):
            raise PlanError(f"--open-timeout must be between 0.1 and 600 s, got {open_timeout:g}")
        for option, path in (("--cacert", args.cacert), ("--cert", args.cert), ("--key", args.key)):
            if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
                raise PlanError(f"cannot read {option} file {path!r}")
        if args.key is not None and args.cert is None:
            raise PlanError("--key needs --cert")
        if args.cert is not None:
            _check_client_certificate(args.cert, args.key)
        return ConnectOptions(
            headers=tuple(parse_header(h) for h in args.header or ()),
            subprotocols=validate_token_list("--subprotocol", tuple(args.subprotocol or ())),
            origin=validate_header_value("--origin", args.origin),
            insecure=args.insecure,
            cacert=args.cacert,
            client_cert=args.cert,
            client_key=args.key,
            open_timeout_s=open_timeout,
        )
    except PlanError as exc:
        fail(str(exc))


def _check_client_certificate(cert: str, key: str | None) -> None:
    """Raise PlanError unless ``cert`` (and ``key``) load as a client certificate chain."""
    import ssl

    from wsdoctor.plan import PlanError
    from wsdoctor.tls import client_context

    try:
        client_context(client_cert=cert, client_key=key)
    except (ssl.SSLError, OSError) as exc:
        what = "--cert/--key" if key else "--cert (no --key: the key must be in the same file)"
        why = getattr(exc, "reason", None) or exc
        raise PlanError(f"cannot use {what}: {why}") from None


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
