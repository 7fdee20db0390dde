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
from datetime import UTC
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsdoctor.commands.common import (
    CONNECT,
    PROXY,
    REPORT,
    ConnectArgs,
    ProxyArgs,
    ReportArgs,
    StageArgs,
    build_plan,
    check_output_path,
    fail,
    run_gatherer,
    with_options,
)
from wsdoctor.execute import Gatherer, Outputs, progress_console

if TYPE_CHECKING:
    import asyncio

    from wsdoctor.budget import Budget
    from wsdoctor.checkconfig import TargetSpec
    from wsdoctor.diagnosis.expectations import Outcome, TargetCheck
    from wsdoctor.diagnosis.model import Finding
    from wsdoctor.observations import Observations
    from wsdoctor.plan import Plan
    from wsdoctor.status import RunStatus

PROGRESS_TICK_S = 0.5
PLAIN_REPEAT_S = 10.0
SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


@dataclass
class _Run:
    """One target while it runs: its spec, plan, live status and observations."""

    spec: TargetSpec
    plan: Plan
    status: RunStatus
    observations: Observations
    done: bool = False

    @property
    def name(self) -> str:
        """The target's name."""
        return self.spec.name

    @property
    def stage(self) -> str:
        """Where the target's run is, in words."""
        if self.done:
            return f"done in {self.observations.duration_s:.1f} s"
        stages = {p.stage for p in self.status.paths.values()}
        if len(stages) <= 1:
            return next(iter(stages), "starting")
        return ", ".join(f"{name} {p.stage}" for name, p in self.status.paths.items())


@with_options(CONNECT, PROXY, REPORT)
def check(
    urls: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[URL]...",
            help="WebSocket URLs to check (ws:// or wss://).",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", metavar="FILE", help="Targets from a wsdoctor.toml file."),
    ] = None,
    via_proxy: Annotated[
        str | None,
        typer.Option(
            "--via-proxy", metavar="URL", help="Also check through this entry point or proxy."
        ),
    ] = None,
    require_idle: Annotated[
        float | None,
        typer.Option(
            "--require-idle", metavar="SECONDS", help="A connection must survive SECONDS idle."
        ),
    ] = None,
    require_lifetime: Annotated[
        float | None,
        typer.Option(
            "--require-lifetime", metavar="SECONDS", help="A connection must live SECONDS."
        ),
    ] = None,
    max_rtt_ms: Annotated[
        float | None,
        typer.Option("--max-rtt-ms", metavar="MS", help="RTT p95 must be at most MS."),
    ] = None,
    max_handshake_ms: Annotated[
        float | None,
        typer.Option(
            "--max-handshake-ms",
            metavar="MS",
            help="The opening handshake must take at most MS.",
        ),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            metavar="CULPRIT",
            help="Fail when the verdict names this culprit (repeatable).",
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="CULPRIT",
            help="Fail on any problem verdict except this culprit (repeatable).",
        ),
    ] = None,
    max_idle: Annotated[
        float | None,
        typer.Option(
            "--max-idle",
            metavar="SECONDS",
            help="Longest idle period to test (default: the longest --require-*, else 30 s "
            "when the verdict is judged, else none).",
        ),
    ] = None,
    junit: Annotated[
        str | None,
        typer.Option("--junit", metavar="PATH", help="Write a JUnit XML report to PATH."),
    ] = None,
    markdown: Annotated[
        str | None,
        typer.Option("--markdown", metavar="PATH", help="Write a Markdown summary to PATH."),
    ] = None,
    *,
    connect: ConnectArgs,
    proxy: ProxyArgs,
    report: ReportArgs,
) -> None:
    """Check endpoints against expectations; exit 0 when every one holds (for CI).

    Exit codes: 0 every expectation holds, 1 one fails, 2 bad input, 3 one could not be
    proven. Without expectations, a target passes when it upgrades and echoes. --proxy and
    --via-proxy add a second path to the targets given on the command line; the other
    connection options apply to every target.

    \b
    Examples:
      wsdoctor check wss://example.com/socket
      wsdoctor check wss://example.com/socket --require-idle 90 --junit report.xml
      wsdoctor check -c wsdoctor.toml --markdown summary.md
    """
    from wsdoctor.checkconfig import ConfigError

    expectations = {
        "require-idle": require_idle,
        "require-lifetime": require_lifetime,
        "max-rtt-ms": max_rtt_ms,
        "max-handshake-ms": max_handshake_ms,
        "fail-on": fail_on,
        "allow": allow,
        "max-idle": max_idle,
        "open-timeout": connect.open_timeout,
    }
    connection = {"via-proxy": via_proxy, "proxy": proxy.proxy, "headers": connect.header}
    try:
        specs = _targets(urls or [], config, expectations, connection)
    except ConfigError as exc:
        fail(str(exc))
    for option, path in (("--junit", junit), ("--markdown", markdown)):
        check_output_path(option, path)
    outputs = report.outputs()
    runs = [_prepare(spec, connect, proxy.no_proxy) for spec in specs]
    run_gatherer(CheckGatherer(runs, junit, markdown, report.max_time), outputs)


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


def _prepare(spec: TargetSpec, connect: ConnectArgs, no_proxy: bool) -> _Run:
    """A target's plan: its own headers and timeout, the command line's TLS and proxy rules."""
    from wsdoctor.observations import Observations
    from wsdoctor.plan import entry_points
    from wsdoctor.status import RunStatus

    paths: list[tuple[str, str, str | None]] = [("direct", spec.url, None)]
    via = spec.via or ProxyArgs(no_proxy=no_proxy).for_url(spec.url)
    if via:
        paths += entry_points(spec.url, [via])
    headers = [f"{name}: {value}" for name, value in spec.headers]
    plan = build_plan(
        paths=paths,
        connect=dataclasses.replace(connect, header=headers, open_timeout=spec.open_timeout_s),
        stage=StageArgs(max_idle=spec.idle_budget_s, quick=True),
    )
    idle = ("idle", "heartbeat") if spec.idle_budget_s is not None else ()
    plan = dataclasses.replace(plan, stages=("handshake", "echo", *idle))
    return _Run(spec, plan, RunStatus(), Observations(started_at="", duration_s=0.0))


class CheckGatherer(Gatherer):
    """Every target's plan at once; each run judged against its expectations."""

    def __init__(
        self, runs: list[_Run], junit: str | None, markdown: str | None, max_time_s: float | None
    ) -> None:
        self.runs, self.junit, self.markdown, self.max_time_s = runs, junit, markdown, max_time_s
        self.secrets = sorted({s for r in runs for s in r.spec.secrets}, key=len, reverse=True)
        self.started_at = ""
        self.began = time.monotonic()

    def budget(self) -> Budget:
        from wsdoctor.budget import limited, plan_budget

        budgets = [plan_budget(run.plan) for run in self.runs]
        longest = max(budgets, key=lambda b: b.planned_s)
        return limited(list(longest.parts), self.max_time_s)

    async def gather(self) -> None:
        import asyncio
        from datetime import datetime

        from wsdoctor.probes.runner import run_plan

        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.began = time.monotonic()

        async def one(run: _Run) -> None:
            try:
                await run_plan(run.plan, run.status, run.observations)
            finally:
                run.done = True

        await asyncio.gather(*(one(run) for run in self.runs))

    async def progress(self, work: asyncio.Task[None], outputs: Outputs) -> None:
        if outputs.quiet:
            import asyncio

            await asyncio.wait({work})
            return
        await _progress(self.runs, work, outputs.color, self.secrets)

    def where(self) -> str:
        return _scrub(", ".join(f"{r.spec.name}: {r.stage}" for r in self.runs), self.secrets)

    def mark_interrupted(self) -> None:
        for run in self.runs:
            run.observations.interrupted = True

    def _checks(self, incident: Finding | None) -> list[TargetCheck]:
        from wsdoctor.diagnosis.expectations import TargetCheck, evaluate
        from wsdoctor.execute import safe_diagnose, with_incident

        checks = []
        for run in self.runs:
            diagnosis, error = safe_diagnose(run.observations)
            diagnosis = with_incident(diagnosis, incident or error)
            results = evaluate(run.spec.expectations, run.observations, diagnosis)
            target = TargetCheck(run.spec.name, run.observations, diagnosis, results)
            checks.append(_scrub(target, self.secrets))
        return checks

    def conclude(self, outputs: Outputs, stopped_by: int | None, incident: Finding | None) -> int:
        from wsdoctor.diagnosis.expectations import worst
        from wsdoctor.exitcodes import exit_code
        from wsdoctor.report.check import render_check_summary
        from wsdoctor.report.json_report import write_json

        checks = self._checks(incident)
        outcome = "inconclusive" if incident is not None else worst(c.outcome for c in checks)
        code = exit_code(outcome, stopped_by)
        duration_s = round(time.monotonic() - self.began, 3)
        interrupted = stopped_by is not None or incident is not None
        _write_outputs(checks, self.junit, self.markdown, interrupted, duration_s)
        if outputs.json_path or outputs.html_path:
            report = self._report(checks, outcome, code, interrupted, duration_s)
            if outputs.json_path:
                write_json(report, outputs.json_path)
            if outputs.html_path:
                from wsdoctor.report.html import write_html

                write_html(report, outputs.html_path)
        stream = sys.stderr if outputs.json_path == "-" else sys.stdout
        render_check_summary(checks, outcome, interrupted, outputs.color, stream, outputs.quiet)
        return code

    def emergency_report(self, incident: Finding) -> dict[str, Any]:
        checks = self._checks(incident)
        duration_s = round(time.monotonic() - self.began, 3)
        return self._report(checks, "inconclusive", 3, True, duration_s)

    def _report(
        self,
        checks: list[TargetCheck],
        outcome: Outcome,
        exit_code: int,
        interrupted: bool,
        duration_s: float,
    ) -> dict[str, Any]:
        return _json_report(checks, self.started_at, duration_s, outcome, exit_code, interrupted)


async def _progress(
    runs: list[_Run], work: asyncio.Task[None], color: bool, secrets: list[str]
) -> None:
    """A live table on a colour terminal; otherwise one plain line per target as it moves on."""
    import asyncio

    from rich.live import Live

    from wsdoctor.report.check import progress_line, progress_table

    console = progress_console(color)
    if color and console.is_terminal:
        with Live(progress_table(runs), console=console, transient=True) as live:
            while not work.done():
                await asyncio.wait({work}, timeout=PROGRESS_TICK_S)
                live.update(progress_table(runs))
        return
    last: dict[int, tuple[str, float]] = {}
    while True:
        for index, run in enumerate(runs):
            stage = run.stage
            elapsed = run.status.elapsed()
            seen = last.get(index)
            if seen and seen[0] == stage and (run.done or elapsed - seen[1] < PLAIN_REPEAT_S):
                continue
            last[index] = (stage, elapsed)
            print(_scrub(progress_line(run), secrets), file=sys.stderr, flush=True)
        if work.done():
            return
        await asyncio.wait({work}, timeout=PROGRESS_TICK_S)


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
