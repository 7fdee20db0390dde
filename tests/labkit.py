"""Shared test helpers: run the real probes against real servers on loopback, in-process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import Diagnosis
from wsdoctor.lab import FaultConfig, FaultProxy
from wsdoctor.observations import Observations
from wsdoctor.plan import ConnectOptions, IdlePlan, PathSpec, Plan
from wsdoctor.probes.runner import run_plan
from wsdoctor.report.json_report import build_report, validate_report
from wsdoctor.server import ServeOptions, running_server
from wsdoctor.status import RunStatus

HOST = "127.0.0.1"


def tolerance(seconds: float) -> float:
    """The accuracy the brief asks of a measured timeout: max(0.5 s, 5 %)."""
    return max(0.5, 0.05 * seconds)


@dataclass
class LabRun:
    """What one probe run against a lab produced."""

    observations: Observations
    diagnosis: Diagnosis
    report: dict
    elapsed_s: float

    @property
    def verdict(self):  # noqa: ANN201 - Verdict
        return self.diagnosis.verdict

    def endings(self, path: str, stage: str = "idle") -> list[str]:
        """How each connection of one stage on one path ended."""
        found = next(p for p in self.observations.paths if p.name == path).stage(stage)
        return [c.ending.kind for c in found.connections] if found else []

    def finding_codes(self) -> set[str]:
        """The codes of every finding."""
        return {f.code for f in self.diagnosis.findings}


@asynccontextmanager
async def lab(
    server: ServeOptions | None = None, fault: dict | None = None
) -> AsyncIterator[tuple[str, str | None]]:
    """A reference server and, if ``fault`` is given, the fault proxy in front of it."""
    async with AsyncExitStack() as stack:
        options = server or ServeOptions()
        options.port = 0
        port = await stack.enter_async_context(running_server(options))
        direct = f"ws://{HOST}:{port}/"
        proxied = None
        if fault is not None:
            proxy = FaultProxy(FaultConfig(HOST, port, **fault))
            await stack.enter_async_context(proxy)
            proxied = f"ws://{HOST}:{proxy.port}/"
        yield direct, proxied


def probe_urls(urls: dict[str, str], max_idle: float = 10.0) -> LabRun:
    """Probe the given ``{path name: URL}`` at once (servers already running), and diagnose."""

    async def main() -> Observations:
        plan = Plan(
            paths=tuple(PathSpec(name, url) for name, url in urls.items()),
            connect=ConnectOptions(open_timeout_s=5.0),
            idle=IdlePlan(max_idle_s=max_idle),
        )
        observations = Observations(started_at="", duration_s=0.0)
        await run_plan(plan, RunStatus(), observations)
        return observations

    return _diagnosed(asyncio.run(main()))


def _diagnosed(observations: Observations, elapsed_s: float = 0.0) -> LabRun:
    diagnosis = diagnose(observations)
    report = build_report(observations, diagnosis)
    validate_report(report)
    return LabRun(observations, diagnosis, report, elapsed_s)


def probe_lab(
    server: ServeOptions | None = None,
    fault: dict | None = None,
    max_idle: float = 10.0,
    paths: tuple[str, ...] = ("direct", "via-proxy"),
) -> LabRun:
    """Start a lab, probe the named paths at once, diagnose, and validate the report."""

    async def main() -> Observations:
        async with lab(server, fault) as (direct, proxied):
            urls = {"direct": direct, "via-proxy": proxied}
            plan = Plan(
                paths=tuple(PathSpec(name, urls[name]) for name in paths),  # type: ignore[arg-type]
                connect=ConnectOptions(open_timeout_s=5.0),
                idle=IdlePlan(max_idle_s=max_idle),
            )
            observations = Observations(started_at="", duration_s=0.0)
            await run_plan(plan, RunStatus(), observations)
            return observations

    began = time.monotonic()
    observations = asyncio.run(main())
    return _diagnosed(observations, time.monotonic() - began)


def run_cli(
    *args: str, timeout: float = 90, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m wsdoctor`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "wsdoctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def json_report(result: subprocess.CompletedProcess) -> dict:
    """The JSON report a CLI run printed on stdout (with ``--json -``), validated."""
    report = json.loads(result.stdout)
    validate_report(report)
    return report


def require_binary(name: str) -> str:
    """The path of a lab binary; skip when absent, but fail in CI (WSDOCTOR_REQUIRE_LAB=1)."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        if os.environ.get("WSDOCTOR_REQUIRE_LAB") == "1":
            pytest.fail(f"{name} is required in CI (WSDOCTOR_REQUIRE_LAB=1) but not installed")
        pytest.skip(f"{name} is not installed")
    return path
