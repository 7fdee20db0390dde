"""`wsdoctor lint`: find the proxy configuration line that drops WebSockets.

Parsers (``wsdoctor.lint``) read nginx, HAProxy, Apache, Caddy and Kubernetes ingress-nginx
configuration into settings with file and line; pure rules (``diagnosis/lint_rules.py``) judge
them; reporters render the terminal view, ``wsdoctor.lint/1`` JSON and SARIF 2.1.0. With
``--report`` a probe's measured idle timeout or lifetime cap is joined to the setting behind it.

Exit codes: 0 nothing at or above ``--fail-on``, 1 findings at or above it, 2 bad input, 3 an
internal error (one line, never a traceback).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsdoctor.commands.common import NoColor, use_color
from wsdoctor.exitcodes import EXIT_HEALTHY, EXIT_INCONCLUSIVE, EXIT_PROBLEM, EXIT_USAGE

if TYPE_CHECKING:
    from wsdoctor.diagnosis.lint_rules import Measurement

FAIL_ON = ("info", "warning", "error", "never")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"wsdoctor: error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def _number(value: Any, field: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"{source}: verdict.{field} is not a number: {value!r}")
    return float(value)


def read_measurement(path: str) -> Measurement:
    """The measured figures of a ``wsdoctor.report/1`` (``probe --json``) file."""
    import json

    from wsdoctor.diagnosis.lint_rules import Measurement

    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except OSError as error:
        raise _fail(f"cannot read --report {path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f"{path}:{error.lineno}" if isinstance(error, json.JSONDecodeError) else path
        raise _fail(f"{where}: not a JSON report ({error})") from None
    if not isinstance(report, dict) or not isinstance(report.get("verdict"), dict):
        raise _fail(f"{path}: not a wsdoctor report (no verdict); write one with probe --json")
    schema = report.get("schema")
    if schema is not None and schema != "wsdoctor.report/1":
        raise _fail(f"{path}: report schema {schema!r}, expected 'wsdoctor.report/1'")
    verdict = report["verdict"]
    span = verdict.get("idle_timeout_range_s")
    if span is not None and not (
        isinstance(span, list) and len(span) == 2 and all(isinstance(v, (int, float)) for v in span)
    ):
        raise _fail(f"{path}: verdict.idle_timeout_range_s is not [low, high]: {span!r}")
    return Measurement(
        idle_timeout_s=_number(verdict.get("idle_timeout_s"), "idle_timeout_s", path),
        idle_timeout_range_s=[float(v) for v in span] if span else None,
        lifetime_cap_s=_number(verdict.get("lifetime_cap_s"), "lifetime_cap_s", path),
        culprit=verdict.get("culprit"),
        hop=verdict.get("hop"),
        source=path,
    )


def _write(path: str, text: str, what: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise _fail(f"cannot write {what} {path}: {error.strerror or error}") from None


def lint(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE...",
            help="Proxy configuration files: nginx, HAProxy, Apache, Caddyfile, Kubernetes YAML.",
            show_default=False,
        ),
    ],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="PRODUCT",
            help="The product, when the file does not say: nginx, haproxy, apache, caddy, "
            "kubernetes.",
        ),
    ] = None,
    report: Annotated[
        str | None,
        typer.Option(
            "--report",
            metavar="REPORT",
            help="A probe's JSON report: name the setting behind its measured idle timeout.",
        ),
    ] = None,
    heartbeat: Annotated[
        float | None,
        typer.Option(
            "--heartbeat", metavar="SECONDS", help="The application's heartbeat interval."
        ),
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            metavar="SEVERITY",
            help="Exit 1 on findings of this severity or worse (info, warning, error, never).",
        ),
    ] = "warning",
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar="PATH",
            help="Write the wsdoctor.lint/1 JSON to PATH ('-' for stdout).",
        ),
    ] = None,
    sarif: Annotated[
        str | None,
        typer.Option("--sarif", metavar="PATH", help="Write SARIF 2.1.0 to PATH ('-' for stdout)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show info notes.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the summary line only (for CI logs).")
    ] = False,
    no_color: NoColor = False,
) -> None:
    """Find the proxy configuration lines that drop WebSocket connections.

    Exit codes: 0 nothing at or above --fail-on, 1 findings at or above it, 2 bad input.

    \b
    Examples:
      wsdoctor lint /etc/nginx/nginx.conf
      wsdoctor lint haproxy.cfg --heartbeat 30 --sarif lint.sarif
      wsdoctor lint nginx.conf --report run.json  # run.json from probe --json
    """
    import json

    from wsdoctor.diagnosis.lint_rules import findings_at_or_above, join_measurement
    from wsdoctor.diagnosis.lint_rules import lint as run_rules
    from wsdoctor.lint import FORMATS, LintInputError, load

    if fail_on not in FAIL_ON:
        raise _fail(f"--fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    if format is not None and format not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if heartbeat is not None and not (math.isfinite(heartbeat) and heartbeat > 0):
        raise _fail(f"--heartbeat must be a positive number of seconds, got {heartbeat:g}")
    if json_out == "-" and sarif == "-":
        raise _fail("--json and --sarif cannot both write to stdout")
    measurement = read_measurement(report) if report is not None else None
    try:
        configs = load(paths, format)
        result = run_rules(configs, heartbeat)
    except LintInputError as error:
        raise _fail(str(error)) from None
    except RecursionError:
        raise _fail("configuration nested too deeply (an include loop?)") from None
    except Exception as error:  # a parser bug must still end in one line, not a traceback
        typer.echo(
            f"wsdoctor: error: internal error while linting {' '.join(paths)}: "
            f"{type(error).__name__}: {error} (please report it with the file)",
            err=True,
        )
        raise typer.Exit(EXIT_INCONCLUSIVE) from None
    if measurement is not None:
        join_measurement(result, measurement)
    if json_out is not None:
        from wsdoctor.report.lint_json import build_lint_report, dumps

        _write(json_out, dumps(build_lint_report(result)), "--json")
    if sarif is not None:
        from wsdoctor.report.lint_sarif import build_sarif

        _write(sarif, json.dumps(build_sarif(result), indent=2) + "\n", "--sarif")
    from rich.console import Console

    from wsdoctor.report.lint_terminal import render_lint_terminal

    to_stderr = "-" in (json_out, sarif)
    console = Console(
        stderr=to_stderr, highlight=False, no_color=not use_color(no_color), soft_wrap=True
    )
    render_lint_terminal(result, console, verbose, quiet)
    failing = [] if fail_on == "never" else findings_at_or_above(result, fail_on)
    raise typer.Exit(EXIT_PROBLEM if failing else EXIT_HEALTHY)
