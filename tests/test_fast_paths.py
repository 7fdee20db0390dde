"""What a quick check does not pay for, load stages on several paths at once, and the lowest
declared dependency versions (the constraints CI installs them from).

Speed goals live in benchmarks/ (startup.py, time_to_verdict.py); these tests check the
structure that makes them reachable: no HTTP client on a quick check, no CA bundle for ws://,
one client per run, load stages that overlap across paths, and bounds read from pyproject.toml.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.observations import Observations, StageResult
from wsdoctor.plan import ConnectOptions, LoadPlan, PathSpec, Plan
from wsdoctor.probes.runner import (
    INTERRUPTED_NOTE,
    NOT_REMEASURED_NOTE,
    REMEASURED_NOTE,
    run_plan,
    wants_fingerprints,
)
from wsdoctor.report.json_report import build_report, validate_report
from wsdoctor.server import ServeOptions, running_server
from wsdoctor.status import RunStatus

ROOT = Path(__file__).resolve().parent.parent

QUICK_RUN = textwrap.dedent(
    """
    import asyncio, sys
    from wsdoctor.observations import Observations
    from wsdoctor.plan import LoadPlan, PathSpec, Plan
    from wsdoctor.probes.runner import run_plan
    from wsdoctor.server import ServeOptions, running_server
    from wsdoctor.status import RunStatus

    async def main():
        async with running_server(ServeOptions(port=0)) as port:
            plan = Plan(
                paths=(PathSpec("direct", f"ws://127.0.0.1:{port}/"),),
                stages=tuple(sys.argv[1].split(",")),
                load=LoadPlan(max_message_bytes=1024, rates=(20.0,), burst_s=0.2),
            )
            obs = Observations(started_at="", duration_s=0.0)
            await run_plan(plan, RunStatus(), obs)
        ok = obs.paths[0].stages[0].connections[0].handshake.ok
        print(ok, "httpx" in sys.modules, sorted(f.source for f in obs.paths[0].fingerprints))

    asyncio.run(main())
    """
)


def quick_run(stages: str) -> list[str]:
    """Run ``stages`` in a fresh interpreter: handshake ok, httpx imported, fingerprint sources."""
    result = subprocess.run(
        [sys.executable, "-c", QUICK_RUN, stages],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split(maxsplit=2)


@pytest.mark.parametrize("stages", ["handshake", "handshake,echo"])
def test_a_quick_check_never_imports_the_http_client(stages: str) -> None:
    ok, imported, sources = quick_run(stages)
    assert ok == "True"
    assert imported == "False"  # no httpx, no client, no plain HTTP request
    assert sources.strip() == "['upgrade']"  # the upgrade response still names the server


def test_longer_stages_still_make_the_plain_http_request() -> None:
    ok, imported, sources = quick_run("handshake,size")
    assert ok == "True"
    assert imported == "True"
    assert "'upgrade'" in sources


def _connections_to_a_silent_server(stages: tuple[str, ...]) -> tuple[str | None, int]:
    """Probe a server that accepts TCP and never answers: the failure, connections accepted."""

    async def main() -> tuple[str | None, int]:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            plan = Plan(
                paths=(PathSpec("direct", f"ws://127.0.0.1:{port}/"),),
                connect=ConnectOptions(open_timeout_s=0.5),
                stages=stages,
            )
            obs = Observations(started_at="", duration_s=0.0)
            await run_plan(plan, RunStatus(), obs)
            for writer in accepted:
                writer.close()
        failure = obs.paths[0].stages[0].connections[0].handshake.failure
        return (failure.reason if failure else None), len(accepted)

    return asyncio.run(main())


def test_no_plain_http_request_after_a_handshake_the_server_never_answered() -> None:
    # The request would only wait as long again for the same silence.
    assert _connections_to_a_silent_server(("handshake", "idle")) == ("timeout", 1)


def test_which_plans_make_the_plain_http_request() -> None:
    path = (PathSpec("direct", "ws://127.0.0.1:1/"),)
    assert not wants_fingerprints(Plan(paths=path, stages=("handshake",)))
    assert not wants_fingerprints(Plan(paths=path, stages=("handshake", "echo")))
    for stage in ("idle", "heartbeat", "stability", "size", "rate"):
        assert wants_fingerprints(Plan(paths=path, stages=("handshake", stage)))


def test_a_ca_bundle_is_loaded_only_when_tls_is_spoken() -> None:
    from wsdoctor.probes.http_probe import verify_for

    plain = ConnectOptions()
    assert verify_for(PathSpec("direct", "ws://example.test/"), plain) is False
    assert verify_for(PathSpec("p", "ws://example.test/", "http://proxy.test:3128"), plain) is False
    assert verify_for(PathSpec("direct", "wss://example.test/"), plain) is True
    assert verify_for(PathSpec("p", "ws://example.test/", "https://proxy.test:443"), plain) is True
    insecure = ConnectOptions(insecure=True)
    assert verify_for(PathSpec("direct", "wss://example.test/"), insecure) is False
    private = ConnectOptions(cacert="/etc/private-ca.pem")
    assert verify_for(PathSpec("direct", "wss://example.test/"), private) == "/etc/private-ca.pem"
    assert verify_for(PathSpec("direct", "ws://example.test/"), private) is False


def _trusted_cas(client: object) -> int:
    """How many CA certificates the client's TLS context holds (httpx 0.27 and 0.28 alike)."""
    context = client._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert isinstance(context, ssl.SSLContext)
    return int(context.cert_store_stats()["x509_ca"])


def test_one_client_per_run_and_no_certificates_for_ws(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsdoctor.probes.http_probe import HttpClients

    threads: list[str] = []

    async def no_thread(function: object, *args: object) -> object:
        threads.append(getattr(function, "__name__", "?"))
        return function(*args)  # type: ignore[operator]

    async def main() -> None:
        clients = HttpClients(ConnectOptions())
        direct = PathSpec("direct", "ws://127.0.0.1:1/")
        second = PathSpec("via-proxy", "ws://127.0.0.1:2/")
        first, again = await asyncio.gather(clients.client(direct), clients.client(second))
        assert first is again
        assert clients.built == 1
        assert _trusted_cas(first) == 0
        assert threads == []  # nothing to load: built on the loop
        secure = await clients.client(PathSpec("direct", "wss://127.0.0.1:1/"))
        assert secure is not first
        assert clients.built == 2
        assert _trusted_cas(secure) > 0
        assert threads == ["build_client"]  # the CA bundle loads in a worker thread
        await clients.aclose()
        assert first.is_closed and secure.is_closed

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    asyncio.run(main())


def _two_paths(server: ServeOptions, load: LoadPlan) -> Observations:
    async def main() -> Observations:
        async with running_server(server) as port:
            url = f"ws://127.0.0.1:{port}/"
            plan = Plan(
                paths=(PathSpec("direct", url), PathSpec("via-proxy", url)),
                connect=ConnectOptions(open_timeout_s=5.0),
                stages=("handshake", "echo", "size", "rate"),
                load=load,
            )
            obs = Observations(started_at="", duration_s=0.0)
            await run_plan(plan, RunStatus(), obs)
            return obs

    obs = asyncio.run(main())
    validate_report(build_report(obs, diagnose(obs)))  # the report contract, as before
    return obs


def _only(obs: Observations, path: int, name: str) -> StageResult:
    stages = [s for s in obs.paths[path].stages if s.name == name]
    assert len(stages) == 1, [s.name for s in obs.paths[path].stages]
    return stages[0]


def test_load_stages_of_two_paths_run_at_the_same_time() -> None:
    obs = _two_paths(
        ServeOptions(port=0), LoadPlan(max_message_bytes=8192, rates=(20.0, 50.0), burst_s=0.5)
    )
    rates = [_only(obs, index, "rate") for index in (0, 1)]
    for stage in rates:
        assert [step.ok for step in stage.steps] == [True, True]
        assert stage.notes == []
    first, second = rates
    # The two bursts overlap in time (the runner no longer waits for one path's load stages).
    assert first.started_at < second.started_at + second.duration_s
    assert second.started_at < first.started_at + first.duration_s
    for index in (0, 1):
        assert all(step.ok for step in _only(obs, index, "size").steps)
        names = [s.name for s in obs.paths[index].stages]
        assert names == ["handshake", "echo", "size", "rate"]


def test_a_load_stage_that_fails_beside_others_is_measured_again_alone() -> None:
    obs = _two_paths(
        ServeOptions(port=0, max_messages_per_s=30.0, rate_close_code=1008),
        LoadPlan(max_message_bytes=2048, rates=(20.0, 50.0), burst_s=1.0),
    )
    verdict = diagnose(obs).verdict
    assert (verdict.culprit, verdict.hop) == ("rate_limit", "server")  # both paths, alone too
    again = REMEASURED_NOTE.format(others=1)
    skipped = NOT_REMEASURED_NOTE.format(others=1)
    for index in (0, 1):
        rate = _only(obs, index, "rate")
        assert [step.ok for step in rate.steps] == [True, False]
        assert rate.steps[1].ending is not None and rate.steps[1].ending.code == 1008
        assert rate.notes == [again] or rate.notes == [skipped]
        # Replaced in place: the report keeps the stages in their order.
        assert [s.name for s in obs.paths[index].stages] == ["handshake", "echo", "size", "rate"]
    # The second measurement started after both concurrent ones had ended.
    remeasured = [_only(obs, i, "rate") for i in (0, 1) if _only(obs, i, "rate").notes == [again]]
    assert remeasured, "the budget leaves room to measure at least one path again"
    sizes = [_only(obs, i, "size") for i in (0, 1)]
    concurrent_end = max(s.started_at + s.duration_s for s in sizes)
    assert all(stage.started_at >= concurrent_end for stage in remeasured)


def test_a_size_limit_is_not_measured_again_when_no_burst_was_punished() -> None:
    obs = _two_paths(
        ServeOptions(port=0, max_message_bytes=4096),
        LoadPlan(max_message_bytes=16384, rates=(20.0,), burst_s=0.2),
    )
    for index in (0, 1):
        size = _only(obs, index, "size")
        failures = [step for step in size.steps if not step.ok]
        assert failures and all(s.ending and s.ending.code == 1009 for s in failures)
        assert size.notes == []  # per message: the other path's load does not move it
        assert all(step.ok for step in _only(obs, index, "rate").steps)
    verdict = diagnose(obs).verdict
    assert verdict.culprit == "message_size_limit"


def test_a_remeasurement_cut_short_keeps_one_stage_per_name() -> None:
    async def main() -> Observations:
        server = ServeOptions(port=0, max_messages_per_s=30.0, rate_close_code=1008)
        async with running_server(server) as port:
            url = f"ws://127.0.0.1:{port}/"
            plan = Plan(
                paths=(PathSpec("direct", url), PathSpec("via-proxy", url)),
                connect=ConnectOptions(open_timeout_s=5.0),
                stages=("handshake", "rate"),
                load=LoadPlan(rates=(20.0, 50.0), burst_s=1.0),
            )
            obs = Observations(started_at="", duration_s=0.0)
            status = RunStatus()
            task = asyncio.create_task(run_plan(plan, status, obs))
            # Both concurrent rate stages have ended and one path is measured again: stop.
            while not (
                obs.paths
                and all(p.stage("rate") for p in obs.paths)
                and any(s.stage == "rate" for s in status.paths.values())
            ):
                assert not task.done(), "the run ended before measuring a failure again"
                await asyncio.sleep(0.01)
            # Into the first burst measured alone (1 s long), past the concurrent stages' ends.
            await asyncio.sleep(0.3)
            assert not task.done()
            # Cancelled again until it ends, as a second Ctrl-C or the budget would: one cancel
            # can be lost in the burst's pacing (Python 3.11's wait_for race).
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.05)
            await asyncio.gather(task, return_exceptions=True)
            return obs

    obs = asyncio.run(main())
    assert obs.interrupted
    notes = []
    for path in obs.paths:
        assert [s.name for s in path.stages] == ["handshake", "rate"]
        notes += path.stages[1].notes
    assert INTERRUPTED_NOTE.format(others=1) in notes


def _constraints_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lowest_constraints", ROOT / ".ci" / "lowest_constraints.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lowest_pins_come_from_the_lower_bounds() -> None:
    script = _constraints_script()
    assert script.lowest_pin("typer>=0.27.2,<0.29") == "typer==0.27.2"
    assert script.lowest_pin("python-socks[asyncio] >= 2.4") == "python-socks==2.4"
    assert (
        script.lowest_pin("tomli>=2.0.1; python_version < '3.11'")
        == "tomli==2.0.1 ; python_version < '3.11'"
    )
    with pytest.raises(ValueError, match="no '>=' lower bound"):
        script.lowest_pin("rich")
    with pytest.raises(ValueError, match="no '>=' lower bound"):
        script.lowest_pin("rich<14")


def test_every_runtime_dependency_is_pinned_at_its_lower_bound() -> None:
    script = _constraints_script()
    project = script.tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = script.constraints(project)
    assert len(pins) == len(project["dependencies"])
    for requirement, pin in zip(project["dependencies"], pins):
        name, _, rest = pin.partition("==")
        assert requirement.lower().startswith(name.lower())
        assert f">={rest.split(' ;')[0]}" in requirement.replace(" ", "")
    python = script.lowest_python(project)
    assert project["requires-python"].replace(" ", "") == f">={python}"
