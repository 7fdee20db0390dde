"""`wsdoctor check`: expectations over one or more targets at once, for CI pipelines.

Targets come from the command line, from a ``wsdoctor.toml`` (``-c``), or both. Each target's
plan runs concurrently; each run is diagnosed and judged against its expectations. The exit
code is 0 when every expectation holds, 1 when one fails, 3 when one could not be proven.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from wsdoctor.commands.common import Debug, Headers, JsonOut, NoColor, build_plan, fail, use_color

if TYPE_CHECKING:
    import asyncio

    from rich.console import Console

    from wsdoctor.checkconfig import TargetSpec
    from wsdoctor.diagnosis.expectations import Outcome, TargetCheck
    from wsdoctor.observations import Observations
    from wsdoctor.plan import Plan
    from wsdoctor.probes.status import RunStatus

PROGRESS_TICK_S = 0.5
PLAIN_REPEAT_S = 10.0
SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3}


@dataclass
class _Run:
    """One target while it runs: its spec, plan, live status and observations."""

    spec: TargetSpec
    plan: Plan
    status: RunStatus
    observations: Observations


def check(
    urls: Annotated[
        list[str] | None,
        typer.Argument(help="WebSocket URLs to check (ws:// or wss://).", show_default=False),
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Targets from a wsdoctor.toml file.")
    ] = None,
    via_proxy: Annotated[
        str | None,
        typer.Option("--via-proxy", help="Also check through this entry point or proxy."),
    ] = None,
    proxy: Annotated[
        str | None, typer.Option("--proxy", help="Also check through this forward proxy.")
    ] = None,
    header: Headers = None,
    require_idle: Annotated[
        float | None,
        typer.Option("--require-idle", help="A connection must survive S idle seconds."),
    ] = None,
    require_lifetime: Annotated[
        float | None,
        typer.Option("--require-lifetime", help="A connection must live S seconds."),
    ] = None,
    max_rtt_ms: Annotated[
        float | None, typer.Option("--max-rtt-ms", help="RTT p95 must be at most this.")
    ] = None,
    max_handshake_ms: Annotated[
        float | None,
        typer.Option("--max-handshake-ms", help="The opening handshake must take at most this."),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option("--fail-on", help="Fail when the verdict names one of these culprits."),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Fail on any problem verdict except these culprits."),
    ] = None,
    max_idle: Annotated[
        float | None,
        typer.Option(
            "--max-idle",
            help="Longest idle period to test (default: the longest --require-*, else 30 s "
            "when the verdict is judged, else none).",
        ),
    ] = None,
    open_timeout: Annotated[
        float | None, typer.Option("--open-timeout", help="Seconds allowed for each handshake.")
    ] = None,
    junit: Annotated[
        str | None, typer.Option("--junit", help="Write a JUnit XML report to PATH.")
    ] = None,
    markdown: Annotated[
        str | None, typer.Option("--markdown", help="Write a Markdown summary to PATH.")
    ] = None,
    json_out: JsonOut = None,
    no_color: NoColor = False,
    debug: Debug = False,
) -> None:
    """Check endpoints against expectations; exit 0 when every one holds (for CI)."""
    from wsdoctor.checkconfig import ConfigError

    expectations = {
        "require-idle": require_idle,
        "require-lifetime": require_lifetime,
        "max-rtt-ms": max_rtt_ms,
        "max-handshake-ms": max_handshake_ms,
        "fail-on": fail_on,
        "allow": allow,
        "max-idle": max_idle,
        "open-timeout": open_timeout,
    }
    connection = {"via-proxy": via_proxy, "proxy": proxy, "headers": header}
    try:
        specs = _targets(urls or [], config, expectations, connection)
    except ConfigError as exc:
        fail(str(exc))
    for option, path in (("--junit", junit), ("--markdown", markdown), ("--json", json_out)):
        if path and path != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            fail(f"cannot write {option} file {path!r}: its directory does not exist")
    runs = [_prepare(spec) for spec in specs]
    try:
        code = _check(runs, junit, markdown, json_out, use_color(no_color))
    except OSError as exc:
        if debug:
            raise
        typer.echo(f"wsdoctor: error: {exc}", err=True)
        code = EXIT_CODES["inconclusive"]
    except Exception as exc:  # noqa: BLE001 - one line for users, traceback with --debug
        if debug:
            raise
        typer.echo(f"wsdoctor: internal error: {type(exc).__name__}: {exc}", err=True)
        code = EXIT_CODES["inconclusive"]
    raise typer.Exit(code)


def _targets(
    urls: list[str],
    config: str | None,
    expectations: dict[str, Any],
    connection: dict[str, Any],
) -> list[TargetSpec]:
    """Every target to check, validated (raises ConfigError)."""
    from wsdoctor.checkconfig import (
        ConfigError,
        cli_key,
        command_line_layer,
        command_line_targets,
        file_targets,
    )

    if not urls and config is None:
        raise ConfigError("check needs a URL or -c wsdoctor.toml")
    given = [cli_key(k) for k, v in connection.items() if v]
    if given and not urls:
        raise ConfigError(f"{', '.join(given)} apply to URLs given on the command line")
    overrides = command_line_layer(expectations)
    targets = command_line_targets(urls, command_line_layer({**expectations, **connection}))
    if config is not None:
        targets += file_targets(config, os.environ, overrides)
    names = [t.name for t in targets]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"two targets are named {duplicate!r}")
    return targets


def _prepare(spec: TargetSpec) -> _Run:
    from wsdoctor.observations import Observations
    from wsdoctor.plan import entry_points
    from wsdoctor.probes.status import RunStatus

    paths = [("direct", spec.url, None)]
    if spec.via:
        paths += entry_points(spec.url, [spec.via])
    plan = build_plan(
        paths,
        spec.idle_budget_s,
        True,
        [f"{name}: {value}" for name, value in spec.headers],
        None,
        None,
        False,
        None,
        None,
        spec.open_timeout_s,
    )
    idle = ("idle", "heartbeat") if spec.idle_budget_s is not None else ()
    plan = dataclasses.replace(plan, stages=("handshake", "echo", *idle))
    return _Run(spec, plan, RunStatus(), Observations(started_at="", duration_s=0.0))


def _check(
    runs: list[_Run], junit: str | None, markdown: str | None, json_out: str | None, color: bool
) -> int:
    """Run every target, judge it, write every output; return the exit code."""
    import asyncio
    import signal
    from datetime import datetime, timezone

    from wsdoctor.diagnosis.engine import diagnose
    from wsdoctor.diagnosis.expectations import TargetCheck, evaluate, worst
    from wsdoctor.execute import EXIT_SIGINT, EXIT_SIGTERM

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    began = time.monotonic()
    secrets = sorted({s for run in runs for s in run.spec.secrets}, key=len, reverse=True)
    try:
        stopped_by = asyncio.run(_run_all(runs, color, secrets))
    except KeyboardInterrupt:
        stopped_by = signal.SIGINT
        for run in runs:
            run.observations.interrupted = True
    checks = []
    for run in runs:
        diagnosis = diagnose(run.observations)
        results = evaluate(run.spec.expectations, run.observations, diagnosis)
        checks.append(
            _scrub(TargetCheck(run.spec.name, run.observations, diagnosis, results), secrets)
        )
    outcome = worst(c.outcome for c in checks)
    code = EXIT_CODES[outcome]
    if stopped_by is not None:
        code = EXIT_SIGTERM if stopped_by == signal.SIGTERM else EXIT_SIGINT
    duration_s = round(time.monotonic() - began, 3)
    interrupted = stopped_by is not None
    _write_outputs(checks, junit, markdown, json_out, interrupted, duration_s)
    if json_out:
        from wsdoctor.report.json_report import write_json

        report = _json_report(checks, started_at, duration_s, outcome, code, interrupted)
        write_json(report, json_out)
    _print_summary(
        checks, outcome, interrupted, color, sys.stderr if json_out == "-" else sys.stdout
    )
    return code


async def _run_all(runs: list[_Run], color: bool, secrets: list[str]) -> int | None:
    """Probe every target concurrently, showing progress; return the signal that stopped it."""
    import asyncio

    from wsdoctor.probes.runner import run_plan
    from wsdoctor.signals import cancel_on_signals

    tasks = [asyncio.create_task(run_plan(run.plan, run.status, run.observations)) for run in runs]
    with cancel_on_signals(*tasks) as stopped_by:
        await _progress(runs, tasks, color, secrets)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for run, outcome in zip(runs, outcomes):
        if isinstance(outcome, asyncio.CancelledError):
            run.observations.interrupted = True
        elif isinstance(outcome, BaseException):
            raise outcome
    return stopped_by[0] if stopped_by else None


def _stage_of(run: _Run, done: bool) -> str:
    if done:
        return f"done in {run.observations.duration_s:.1f} s"
    stages = {p.stage for p in run.status.paths.values()}
    if len(stages) <= 1:
        return next(iter(stages), "starting")
    return ", ".join(f"{name} {p.stage}" for name, p in run.status.paths.items())


async def _progress(
    runs: list[_Run], tasks: list[asyncio.Task[None]], color: bool, secrets: list[str]
) -> None:
    """A live table on a colour terminal; otherwise one plain line per target as it moves on."""
    import asyncio

    from rich.console import Console

    console = Console(stderr=True, no_color=not color, highlight=False)
    if color and console.is_terminal:
        await _live_progress(runs, tasks, console)
        return
    last: dict[int, tuple[str, float]] = {}
    while True:
        for index, (run, task) in enumerate(zip(runs, tasks)):
            stage = _stage_of(run, task.done())
            elapsed = run.status.elapsed()
            seen = last.get(index)
            if seen and seen[0] == stage and (task.done() or elapsed - seen[1] < PLAIN_REPEAT_S):
                continue
            last[index] = (stage, elapsed)
            line = f"[{elapsed:6.1f} s] {run.spec.name}: {stage}"
            print(_scrub(line, secrets), file=sys.stderr, flush=True)
        if all(task.done() for task in tasks):
            return
        await asyncio.wait(tasks, timeout=PROGRESS_TICK_S)


async def _live_progress(
    runs: list[_Run], tasks: list[asyncio.Task[None]], console: Console
) -> None:
    import asyncio

    from rich.live import Live
    from rich.table import Table

    def table() -> Table:
        grid = Table(title="wsdoctor check", title_justify="left")
        for column in ("target", "stage", "elapsed", "open", "drops"):
            grid.add_column(column)
        for run, task in zip(runs, tasks):
            paths = run.status.paths.values()
            grid.add_row(
                run.spec.name,
                _stage_of(run, task.done()),
                f"{run.status.elapsed():.1f} s",
                str(sum(p.open_connections for p in paths)),
                str(sum(p.drops for p in paths)),
            )
        return grid

    with Live(table(), console=console, transient=True) as live:
        while not all(task.done() for task in tasks):
            await asyncio.wait(tasks, timeout=PROGRESS_TICK_S)
            live.update(table())


def _scrub(value: Any, secrets: list[str]) -> Any:
    """``value`` (text, list, dict or dataclass, deeply) with every secret replaced."""
    from wsdoctor.redact import REDACTED

    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _scrub(getattr(value, f.name), secrets)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    return value


def _write_outputs(
    checks: list[TargetCheck],
    junit: str | None,
    markdown: str | None,
    json_out: str | None,
    interrupted: bool,
    duration_s: float,
) -> None:
    """The JUnit and Markdown files, and the GitHub job summary when there is one."""
    from wsdoctor.report.junit import render_junit
    from wsdoctor.report.markdown import render_markdown

    if junit:
        with open(junit, "w", encoding="utf-8") as file:
            file.write(render_junit(checks, duration_s))
    summary_path = os.environ.get(SUMMARY_ENV)
    if markdown or summary_path:
        text = render_markdown(checks, interrupted)
        if markdown:
            with open(markdown, "w", encoding="utf-8") as file:
                file.write(text)
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as file:
                file.write(text + "\n")


def _json_report(
    checks: list[TargetCheck],
    started_at: str,
    duration_s: float,
    outcome: Outcome,
    exit_code: int,
    interrupted: bool,
) -> dict[str, Any]:
    """``wsdoctor.check/1``: the overall outcome and, per target, a ``wsdoctor.report/1``.

    Each target's report keeps that contract whole and adds a ``check`` object: the target's
    name, its outcome and its expectations' results.
    """
    from wsdoctor import __version__
    from wsdoctor.observations import to_dict
    from wsdoctor.report.json_report import build_report

    targets = []
    for check in checks:
        report = build_report(check.observations, check.diagnosis)
        report["check"] = {
            "target": check.name,
            "outcome": check.outcome,
            "expectations": [to_dict(result) for result in check.results],
        }
        targets.append(report)
    return {
        "schema": "wsdoctor.check/1",
        "tool": {"name": "wsdoctor", "version": __version__},
        "started_at": started_at,
        "duration_s": duration_s,
        "interrupted": interrupted,
        "outcome": outcome,
        "exit_code": exit_code,
        "targets": targets,
    }


def _print_summary(
    checks: list[TargetCheck], outcome: Outcome, interrupted: bool, color: bool, stream: TextIO
) -> None:
    """One line per target and per expectation; evidence under those that did not pass."""
    styles = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    paint = color and stream.isatty()

    def mark(word: str) -> str:
        text = word.upper()
        return typer.style(text, fg=styles[word], bold=True) if paint else text

    lines = []
    for check in checks:
        verdict = check.diagnosis.verdict
        lines.append(f"{mark(check.outcome)} {check.name}: {verdict.status}, {verdict.culprit}")
        for result in check.results:
            lines.append(
                f"  {result.outcome:<12} {result.name:<17} {result.required:<28} {result.measured}"
            )
            if result.outcome != "pass":
                lines.append(f"  {'':<12} {result.detail}")
    count = sum(1 for c in checks if c.outcome == outcome)
    words = {"pass": "passed", "fail": "failed", "inconclusive": "inconclusive"}
    noun = "target" if len(checks) == 1 else "targets"
    tail = f"wsdoctor check: {count} of {len(checks)} {noun} {words[outcome]}"
    lines.append(tail + (" (interrupted: partial results)" if interrupted else ""))
    stream.write("\n".join(lines) + "\n")
    stream.flush()
