"""The size, rate and stability stages: real servers and the fault proxy on loopback, the rules
on hand-written steps, and the command-line options that pick stages.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from labkit import json_report, lab, run_cli
from observation_builders import idle_path, observations

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import Diagnosis
from wsdoctor.diagnosis.rules.limits import stability_figures
from wsdoctor.observations import (
    ConnectionRecord,
    Ending,
    Event,
    Handshake,
    HandshakeFailure,
    Observations,
    PathResult,
    StageResult,
    Step,
)
from wsdoctor.plan import (
    ALL_STAGES,
    ConnectOptions,
    IdlePlan,
    LoadPlan,
    PathSpec,
    Plan,
    PlanError,
    StabilityPlan,
    default_stages,
    parse_message_size,
    parse_stages,
)
from wsdoctor.probes.runner import run_plan
from wsdoctor.report.json_report import build_report, validate_report
from wsdoctor.report.text import describe_steps
from wsdoctor.server import ServeOptions
from wsdoctor.status import RunStatus

KIB = 1024
QUICK_RATES = (20.0, 50.0, 100.0, 200.0)


def probe(
    stages: tuple[str, ...],
    server: ServeOptions | None = None,
    fault: dict | None = None,
    path: str = "direct",
    **plan: object,
) -> tuple[Observations, Diagnosis]:
    """Run ``stages`` against a lab server (behind the fault proxy if ``fault``), diagnose."""

    async def main() -> Observations:
        async with lab(server, fault) as (direct, proxied):
            url = direct if path == "direct" else proxied
            assert url is not None
            full = Plan(
                paths=(PathSpec(path, url),),
                connect=ConnectOptions(open_timeout_s=5.0),
                idle=IdlePlan(max_idle_s=3.0),
                stages=("handshake", *stages),
                **plan,  # type: ignore[arg-type]
            )
            obs = Observations(started_at="", duration_s=0.0)
            await run_plan(full, RunStatus(), obs)
            return obs

    obs = asyncio.run(main())
    diagnosis = diagnose(obs)
    validate_report(build_report(obs, diagnosis))
    return obs, diagnosis


def stage_of(obs: Observations, name: str) -> StageResult:
    found = obs.paths[0].stage(name)
    assert found is not None, [s.name for s in obs.paths[0].stages]
    return found


def codes(diagnosis: Diagnosis) -> set[str]:
    return {f.code for f in diagnosis.findings}


def evidence(diagnosis: Diagnosis, code: str) -> str:
    return "\n".join(line for f in diagnosis.findings if f.code == code for line in f.evidence)


# --- against real servers ------------------------------------------------------------------


def test_message_size_limit_is_bisected() -> None:
    limit = 64 * KIB
    obs, diagnosis = probe(("echo", "size"), ServeOptions(max_message_bytes=limit))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "message_size_limit",
        "server",
    )
    assert verdict.max_message_bytes is not None
    assert limit - max(0.01 * limit, KIB) <= verdict.max_message_bytes <= limit
    steps = stage_of(obs, "size").steps
    ramp = [s for s in steps if s.phase is None]
    bisect = [s for s in steps if s.phase == "bisect"]
    assert steps == ramp + bisect  # the powers of two first, then the bisection
    assert [s.ok for s in ramp] == [True] * (len(ramp) - 1) + [False]
    last = ramp[-1]
    assert last.ending is not None and (last.ending.kind, last.ending.code) == ("close_frame", 1009)
    assert limit < last.value <= 2 * limit
    assert 1 <= len(bisect) <= 8
    assert all(limit < s.value < last.value and not s.ok for s in bisect)  # 64 KiB is exact
    assert all(s.ending is not None and s.ending.code == 1009 for s in bisect)
    assert all(s.answered == 1 for s in ramp[:-1])  # the server echoed what it accepted
    assert "closed 1009" in (describe_steps(stage_of(obs, "size")) or "")


def test_size_stage_without_a_limit_stops_at_the_budget() -> None:
    obs, diagnosis = probe(("size",), load=LoadPlan(max_message_bytes=100_000))
    steps = stage_of(obs, "size").steps
    assert all(s.ok for s in steps)
    assert steps[-1].value == 100_000
    assert "size_ok" in codes(diagnosis)
    assert diagnosis.verdict.status == "healthy"  # no idle stage: the passing stages decide


@pytest.mark.parametrize("code", [1008, 1013])
def test_message_rate_limit_is_found(code: int) -> None:
    server = ServeOptions(max_messages_per_s=70, rate_close_code=code)
    obs, diagnosis = probe(("rate",), server, load=LoadPlan(rates=QUICK_RATES))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == ("problem", "rate_limit", "server")
    steps = stage_of(obs, "rate").steps
    assert [(s.value, s.ok) for s in steps] == [(20.0, True), (50.0, True), (100.0, False)]
    assert steps[-1].ending is not None and steps[-1].ending.code == code
    assert f"close {code}" in verdict.summary and "50/s went through" in verdict.summary


def test_stalls_and_latency_spikes_are_network_instability() -> None:
    fault = {"latency_ms": 2.0, "jitter_ms": 2.0, "stall_every_s": 1.0, "stall_for_s": 0.5}
    obs, diagnosis = probe(("stability",), fault=fault, path="via-proxy")
    verdict = diagnosis.verdict
    assert (verdict.culprit, verdict.hop) == ("network_instability", "network")
    figures = stability_figures(obs.paths[0])
    assert figures is not None
    assert figures.pings >= 15 and figures.lost == 0 and figures.drops == 0
    assert 400 <= figures.longest_gap_ms <= 1000
    text = evidence(diagnosis, "network_instability")
    for figure in ("p50", "p99", "longest", "per minute"):
        assert figure in text
    assert "stall" in verdict.summary


def test_steady_path_is_stable() -> None:
    obs, diagnosis = probe(("stability",), stability=StabilityPlan(duration_s=2.0))
    assert "network_instability" not in codes(diagnosis)
    assert diagnosis.verdict.status == "healthy"
    figures = stability_figures(obs.paths[0])
    assert figures is not None and figures.pings >= 5 and len(figures.rtt_ms) == figures.pings


def test_healthy_server_with_every_stage_is_healthy() -> None:
    obs, diagnosis = probe(
        ALL_STAGES[1:],
        load=LoadPlan(rates=(20.0, 200.0)),
        stability=StabilityPlan(duration_s=2.0),
    )
    assert diagnosis.verdict.status == "healthy", diagnosis.verdict.summary
    assert diagnosis.verdict.culprit == "none"
    assert {s.name for s in obs.paths[0].stages} == set(ALL_STAGES)
    # The load stages ran after the idle stage, never beside it.
    idle, size = stage_of(obs, "idle"), stage_of(obs, "size")
    assert size.started_at >= idle.started_at + idle.duration_s
    assert {"size_ok", "rate_ok", "idle_ok"} <= codes(diagnosis)


# --- rules on hand-written steps -----------------------------------------------------------


def _ending(kind: str, code: int | None = None, reason: str | None = None) -> Ending:
    return Ending(kind=kind, age_s=0.5, idle_s=0.0, code=code, reason=reason)  # type: ignore[arg-type]


def _stepped(name: str, values: list[float], last: Step | None) -> StageResult:
    steps = [Step(value=v, ok=True, sent=1, answered=1) for v in values]
    if last is not None:
        steps.append(last)
    return StageResult(name=name, started_at=200.0, duration_s=1.0, steps=steps)  # type: ignore[arg-type]


def _with(path: PathResult, *stages: StageResult) -> PathResult:
    path.stages.extend(stages)
    return path


def test_known_frame_limit_is_named() -> None:
    sizes = [256.0 * 2**i for i in range(8)]  # up to 32 KiB
    failed = Step(value=64 * KIB, ok=False, sent=1, failed=1, ending=_ending("close_frame", 1009))
    diagnosis = diagnose(observations(_with(idle_path(), _stepped("size", sizes, failed))))
    assert diagnosis.verdict.culprit == "message_size_limit"
    assert diagnosis.verdict.max_message_bytes == 32 * KIB
    assert "API Gateway" in evidence(diagnosis, "message_size_limit")


def test_first_message_closed_is_not_a_size_limit() -> None:
    failed = Step(value=256, ok=False, sent=1, failed=1, ending=_ending("close_frame", 1003))
    diagnosis = diagnose(observations(_with(idle_path(), _stepped("size", [], failed))))
    assert diagnosis.verdict.culprit == "none"
    assert "size_first_message_closed" in codes(diagnosis)


def test_idle_drop_stays_the_verdict_over_a_size_limit() -> None:
    failed = Step(value=2 * KIB, ok=False, sent=1, failed=1, ending=_ending("eof"))
    path = _with(idle_path(drop_at=60.0), _stepped("size", [256.0, 512.0, 1024.0], failed))
    diagnosis = diagnose(observations(path))
    assert diagnosis.verdict.culprit == "proxy_idle_timeout"
    assert "message_size_limit" in codes(diagnosis)


def test_size_limit_only_behind_the_proxy_is_placed_there() -> None:
    ok = _stepped("size", [256.0 * 2**i for i in range(13)], None)
    failed = Step(value=2 * KIB, ok=False, sent=1, failed=1, ending=_ending("eof"))
    proxied = _with(idle_path("via-proxy"), _stepped("size", [256.0, 512.0, 1024.0], failed))
    verdict = diagnose(observations(_with(idle_path(), ok), proxied)).verdict
    assert (verdict.culprit, verdict.hop, verdict.max_message_bytes) == (
        "message_size_limit",
        "proxy",
        1024,
    )


@pytest.mark.parametrize(
    ("paths", "kind", "hop"),
    [
        (("direct",), "eof", "server"),  # nothing between the probe and the server
        (("direct",), "silent", "network"),
        (("via-proxy",), "close_frame", "server"),  # the far end said 1009
        (("via-proxy",), "eof", None),  # cut through a proxy, nothing to compare
        (("direct", "via-proxy"), "eof", "server"),  # the same on the direct path
    ],
)
def test_size_limit_names_its_hop(paths: tuple[str, ...], kind: str, hop: str | None) -> None:
    def failed() -> Step:
        code = 1009 if kind == "close_frame" else None
        return Step(value=2 * KIB, ok=False, sent=1, failed=1, ending=_ending(kind, code))

    made = [
        _with(idle_path(name), _stepped("size", [256.0, 512.0, 1024.0], failed())) for name in paths
    ]
    diagnosis = diagnose(observations(*made))
    verdict = diagnosis.verdict
    assert (verdict.culprit, verdict.hop, verdict.max_message_bytes) == (
        "message_size_limit",
        hop,
        1024,
    )
    placed = "not placed" in evidence(diagnosis, "message_size_limit")
    assert placed == (hop is None)


@pytest.mark.parametrize(
    ("direct_rates", "proxied", "hop"),
    [
        (
            None,
            Step(value=100, ok=False, sent=60, failed=1, ending=_ending("close_frame", 1008)),
            "server",
        ),
        (
            None,
            Step(value=100, ok=False, sent=60, failed=1, ending=_ending("eof"), status=429),
            "server",
        ),
        (
            [10.0, 100.0, 200.0],
            Step(value=100, ok=False, sent=60, failed=1, ending=_ending("close_frame", 1013)),
            "proxy",
        ),
    ],
)
def test_rate_limit_names_its_hop(
    direct_rates: list[float] | None, proxied: Step, hop: str
) -> None:
    made = [_with(idle_path("via-proxy"), _stepped("rate", [10.0, 50.0], proxied))]
    if direct_rates is not None:
        made.insert(0, _with(idle_path(), _stepped("rate", direct_rates, None)))
    verdict = diagnose(observations(*made)).verdict
    assert (verdict.culprit, verdict.hop) == ("rate_limit", hop)


@pytest.mark.parametrize(("status", "culprit"), [(503, "server_limits"), (429, "rate_limit")])
def test_refused_probe_connections_name_the_server(status: int, culprit: str) -> None:
    path = idle_path()
    idle = path.stage("idle")
    assert idle is not None
    failure = HandshakeFailure(reason="http_status", message=f"HTTP {status}", status=status)
    idle.connections.append(
        ConnectionRecord(
            id="rung-99",
            role="rung",
            opened_at=0.5,
            handshake=Handshake(ok=False, status=status, failure=failure),
            ending=Ending(kind="handshake_failed", age_s=0.0, idle_s=0.0, detail="http_status"),
        )
    )
    diagnosis = diagnose(observations(path))
    assert "connections_refused" in codes(diagnosis)
    assert (diagnosis.verdict.culprit, diagnosis.verdict.hop) == (culprit, "server")


def test_reconnect_refused_with_429_is_a_rate_limit() -> None:
    failed = Step(value=200, ok=False, sent=90, failed=1, ending=_ending("eof"), status=429)
    diagnosis = diagnose(observations(_with(idle_path(), _stepped("rate", [10.0, 100.0], failed))))
    assert diagnosis.verdict.culprit == "rate_limit"
    assert "refused with HTTP 429" in evidence(diagnosis, "rate_limit")


def test_burst_ended_by_a_fin_is_no_rate_limit() -> None:
    failed = Step(value=200, ok=False, sent=90, failed=1, ending=_ending("eof"))
    diagnosis = diagnose(observations(_with(idle_path(), _stepped("rate", [10.0, 100.0], failed))))
    assert diagnosis.verdict.culprit == "none"
    assert "burst_closed" in codes(diagnosis)


def _stability_conn(record_id: str, pong_times: list[float], ending: Ending) -> ConnectionRecord:
    events = [Event(t - 0.001, "ping_sent") for t in pong_times]
    events += [Event(t, "pong_received", rtt_ms=1.0) for t in pong_times]
    return ConnectionRecord(
        id=record_id,
        role="heartbeat",
        opened_at=1.0,
        handshake=Handshake(ok=True, status=101),
        ending=ending,
        interval_s=0.2,
        events=sorted(events, key=lambda e: e.t),
    )


def test_drops_in_the_stability_stage_give_a_drop_rate() -> None:
    beats = [round(0.2 * i, 3) for i in range(1, 15)]
    stage = StageResult(
        name="stability",
        started_at=1.0,
        duration_s=6.0,
        connections=[
            _stability_conn("stability-1", beats, dataclasses.replace(_ending("reset"), age_s=3.0)),
            _stability_conn("stability-2", beats, Ending(kind="local", age_s=3.0, idle_s=0.1)),
        ],
    )
    diagnosis = diagnose(observations(_with(idle_path(), stage)))
    assert diagnosis.verdict.culprit == "network_instability"
    assert "1 drop(s), 10.0 per minute" in evidence(diagnosis, "network_instability")


# --- options -------------------------------------------------------------------------------


def test_stage_lists_and_defaults() -> None:
    assert parse_stages("size") == ("handshake", "size")
    assert parse_stages(" Idle , rate") == ("handshake", "idle", "heartbeat", "rate")
    local = (PathSpec("direct", "ws://localhost:8080/"),)
    remote = (PathSpec("direct", "wss://ws.example.com/"),)
    via_remote_proxy = (PathSpec("direct", "ws://127.0.0.1:1/", "http://proxy.example:3128"),)
    assert default_stages(local) == ALL_STAGES
    assert "stability" in default_stages(remote)
    assert not {"size", "rate"} & set(default_stages(remote) + default_stages(via_remote_proxy))
    assert parse_message_size("64KiB") == 64 * KIB == parse_message_size("65536")
    for bad in ("", "size,,rate", "echo,bogus"):
        with pytest.raises(PlanError):
            parse_stages(bad)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--stages", "size,bogus"], "unknown stage 'bogus' in --stages"),
        (["--stages", "size,,rate"], "empty stage name in --stages"),
        (["--max-message", "12 parsecs"], "--max-message must be a size"),
        (["--max-message", "100"], "--max-message must be between"),
    ],
)
def test_bad_stage_options_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    result = run_cli("probe", "ws://127.0.0.1:1/", *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr


def test_bad_rate_close_code_for_serve_is_exit_2() -> None:
    result = run_cli("serve", "--port", "0", "--rate-close-code", "1000")
    assert result.returncode == 2
    assert "--rate-close-code must be 1008 or 1013" in result.stderr


def test_probe_command_runs_only_the_chosen_stages() -> None:
    async def main() -> dict:
        async with lab(ServeOptions(max_message_bytes=16 * KIB)) as urls:
            result = await asyncio.to_thread(
                run_cli,
                "probe",
                urls[0],
                "--stages",
                "size",
                "--max-message",
                "64KiB",
                "--json",
                "-",
            )
            assert result.returncode == 1, result.stderr
            return json_report(result)

    report = asyncio.run(main())
    assert [s["name"] for s in report["paths"][0]["stages"]] == ["handshake", "size"]
    assert report["verdict"]["culprit"] == "message_size_limit"
    assert report["verdict"]["max_message_bytes"] == 16 * KIB
    assert report["verdict"]["hop"] == "server"
    phases = [s["phase"] for s in report["paths"][0]["stages"][1]["steps"]]
    assert phases.count(None) == 8 and 1 <= phases.count("bisect") <= 8


def test_plan_budgets_are_plain_data() -> None:
    plan = Plan(paths=(PathSpec("direct", "ws://127.0.0.1:1/"),))
    assert plan.load.sizes()[-1] == plan.load.max_message_bytes == 1 << 20
    assert dataclasses.replace(plan.load, max_message_bytes=3000).sizes() == [
        256,
        512,
        1024,
        2048,
        3000,
    ]
