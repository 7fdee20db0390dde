"""The JSON and terminal reporters, on hand-written observations and diagnoses."""

from __future__ import annotations

import copy
import io
import json
import sys
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from wsdoctor.diagnosis.model import CULPRITS, Diagnosis, Finding, Verdict
from wsdoctor.observations import (
    ConnectionRecord,
    ConnectionRole,
    Ending,
    Event,
    Fingerprint,
    Handshake,
    HandshakeFailure,
    LoopLag,
    Observations,
    PathResult,
    RttStats,
    StageResult,
    observations_from_dict,
)
from wsdoctor.report.json_report import (
    SCHEMA_ID,
    build_report,
    load_schema,
    validate_report,
    write_json,
)
from wsdoctor.report.terminal import render_terminal
from wsdoctor.report.text import describe_ending, format_seconds, verdict_figures

OK_HANDSHAKE = Handshake(
    ok=True,
    dns_s=0.002,
    tcp_s=0.011,
    tls_s=0.024,
    upgrade_s=0.013,
    status=101,
    headers={"server": "nginx/1.25.3"},
)
LAG = LoopLag(samples=600, p99_ms=1.4, max_ms=3.2)


def _conn(
    id: str, role: ConnectionRole, ending: Ending, opened_at: float = 0.0, **fields: Any
) -> ConnectionRecord:
    return ConnectionRecord(
        id=id, role=role, opened_at=opened_at, handshake=OK_HANDSHAKE, ending=ending, **fields
    )


def _handshake_stage() -> StageResult:
    ending = Ending(kind="local", age_s=0.06, idle_s=0.0, code=1000, initiator="client")
    return StageResult(
        name="handshake",
        started_at=0.0,
        duration_s=0.06,
        connections=[_conn("hs-1", "handshake", ending)],
        loop_lag=LAG,
    )


def _echo_stage() -> StageResult:
    events = [
        Event(t=0.1, kind="ping_sent"),
        Event(t=0.12, kind="pong_received", rtt_ms=20.3),
        Event(t=0.2, kind="message_sent", size=32),
        Event(t=0.22, kind="message_received", size=32, rtt_ms=21.0),
    ]
    ending = Ending(kind="local", age_s=2.0, idle_s=0.1, code=1000, initiator="client")
    return StageResult(
        name="echo",
        started_at=0.1,
        duration_s=2.0,
        connections=[_conn("echo-1", "echo", ending, opened_at=0.1, events=events)],
        rtt=[
            RttStats(
                kind="protocol",
                samples=50,
                p50_ms=20.1,
                p95_ms=24.0,
                p99_ms=31.5,
                max_ms=33.0,
                jitter_ms=1.2,
            ),
            RttStats(
                kind="application",
                samples=50,
                p50_ms=21.0,
                p95_ms=25.0,
                p99_ms=32.0,
                max_ms=34.0,
                jitter_ms=1.4,
                lost=1,
            ),
        ],
        loop_lag=LAG,
        app_echo=True,
    )


def healthy() -> tuple[Observations, Diagnosis]:
    """One direct path where nothing dropped within the idle budget."""
    idle_end = Ending(kind="open", age_s=120.0, idle_s=120.0)
    idle = StageResult(
        name="idle",
        started_at=2.1,
        duration_s=120.0,
        loop_lag=LAG,
        ping_timeout_s=10.0,
        max_idle_s=120.0,
        connections=[
            _conn("idle-s1", "sentinel", idle_end, opened_at=2.1),
            _conn(
                "idle-r60",
                "rung",
                Ending(kind="local", age_s=60.2, idle_s=0.0, code=1000, initiator="client"),
                opened_at=2.1,
                planned_idle_s=60.0,
                events=[
                    Event(t=60.1, kind="ping_sent"),
                    Event(t=60.12, kind="pong_received", rtt_ms=20.0),
                ],
            ),
        ],
    )
    path = PathResult(
        name="direct",
        url="wss://echo.example.com/ws?token=[redacted]",
        stages=[_handshake_stage(), _echo_stage(), idle],
    )
    verdict = Verdict(
        status="healthy",
        culprit="none",
        hop=None,
        confidence=0.8,
        summary="No drop within 120 s of idle; handshake and round trips look normal.",
    )
    observations = Observations(started_at="2025-05-01T10:00:00Z", duration_s=122.1, paths=[path])
    return observations, Diagnosis(findings=[], verdict=verdict)


def proxy_idle_timeout() -> tuple[Observations, Diagnosis]:
    """Direct survives; via the proxy, idle sentinels get a FIN at 60.1 s and a rung goes silent."""
    direct_idle = StageResult(
        name="idle",
        started_at=0.0,
        duration_s=65.0,
        loop_lag=LAG,
        ping_timeout_s=5.0,
        connections=[_conn("direct-s1", "sentinel", Ending(kind="open", age_s=65.0, idle_s=65.0))],
    )
    fin = Ending(kind="eof", age_s=60.1, idle_s=60.1, initiator="server")
    proxy_idle = StageResult(
        name="idle",
        started_at=0.0,
        duration_s=65.0,
        loop_lag=LAG,
        ping_timeout_s=5.0,
        connections=[
            _conn("proxy-s1", "sentinel", fin),
            _conn("proxy-s2", "sentinel", fin),
            _conn(
                "proxy-r64",
                "rung",
                Ending(kind="silent", age_s=64.0, idle_s=64.0, detail="no pong within 5 s"),
                planned_idle_s=59.0,
                events=[Event(t=59.0, kind="ping_sent"), Event(t=64.0, kind="ping_timeout")],
            ),
        ],
    )
    heartbeat = StageResult(
        name="heartbeat",
        started_at=0.0,
        duration_s=65.0,
        loop_lag=LAG,
        connections=[
            _conn(
                "proxy-hb30",
                "heartbeat",
                Ending(kind="open", age_s=65.0, idle_s=5.0),
                interval_s=30.0,
                events=[
                    Event(t=30.0, kind="ping_sent"),
                    Event(t=30.02, kind="pong_received", rtt_ms=20.0),
                ],
                server_pings=2,
                server_ping_interval_s=25.0,
            )
        ],
    )
    paths = [
        PathResult(name="direct", url="wss://app.example.com/ws", stages=[direct_idle]),
        PathResult(
            name="via-proxy",
            url="wss://edge.example.com/ws",
            proxy="http://proxy.local:3128",
            stages=[proxy_idle, heartbeat],
            fingerprints=[
                Fingerprint(
                    name="nginx",
                    kind="proxy",
                    header="Server",
                    value="nginx/1.25.3",
                    source="upgrade",
                )
            ],
        ),
    ]
    finding = Finding(
        code="proxy_idle_timeout",
        severity="error",
        title="Idle connections close on the proxied path at 60.1 s",
        evidence=["2 sentinels got a FIN at 60.1 s idle", "direct sentinel open after 65.0 s"],
        remedy="Raise proxy_read_timeout above your longest idle period.",
    )
    verdict = Verdict(
        status="problem",
        culprit="proxy_idle_timeout",
        hop="proxy",
        confidence=0.93,
        idle_timeout_s=60.1,
        remedies=["Set proxy_read_timeout 3600s in nginx.", "Send a heartbeat every 30 s."],
        summary="nginx closes idle WebSocket connections after 60.1 s (its default is 60 s).",
    )
    observations = Observations(started_at="2025-05-01T10:00:00Z", duration_s=65.3, paths=paths)
    return observations, Diagnosis(findings=[finding], verdict=verdict)


def handshake_failure() -> tuple[Observations, Diagnosis]:
    """The server answers the upgrade with 403: only the handshake stage ran."""
    failure = HandshakeFailure(reason="http_status", message="Forbidden", status=403)
    conn = ConnectionRecord(
        id="hs-1",
        role="handshake",
        opened_at=0.0,
        handshake=Handshake(
            ok=False,
            dns_s=0.002,
            tcp_s=0.01,
            tls_s=0.02,
            upgrade_s=0.01,
            status=403,
            failure=failure,
        ),
        ending=Ending(kind="handshake_failed", age_s=0.04, idle_s=0.0, detail="HTTP 403"),
    )
    stage = StageResult(name="handshake", started_at=0.0, duration_s=0.04, connections=[conn])
    path = PathResult(name="direct", url="wss://app.example.com/ws", stages=[stage])
    finding = Finding(
        code="handshake_rejected",
        severity="error",
        title="The upgrade was refused with HTTP 403",
        evidence=["status 403 Forbidden"],
        remedy="Check the credentials the client sends.",
    )
    verdict = Verdict(
        status="problem",
        culprit="handshake_rejected",
        hop="server",
        confidence=0.95,
        summary="The server rejects the WebSocket upgrade with HTTP 403.",
        remedies=["Send the expected Authorization header or cookie."],
    )
    observations = Observations(started_at="2025-05-01T10:00:00Z", duration_s=0.05, paths=[path])
    return observations, Diagnosis(findings=[finding], verdict=verdict)


def interrupted() -> tuple[Observations, Diagnosis]:
    """Ctrl-C during the idle stage: a partial run, inconclusive."""
    idle = StageResult(
        name="idle",
        started_at=2.1,
        duration_s=12.5,
        interrupted=True,
        notes=["interrupted by the user"],
        connections=[
            _conn(
                "idle-s1", "sentinel", Ending(kind="open", age_s=12.5, idle_s=12.5), opened_at=2.1
            )
        ],
    )
    path = PathResult(
        name="direct", url="wss://app.example.com/ws", stages=[_handshake_stage(), idle]
    )
    verdict = Verdict(
        status="inconclusive",
        culprit="none",
        hop=None,
        confidence=0.1,
        summary="Interrupted after 12.5 s of idle: no drop seen so far.",
    )
    observations = Observations(
        started_at="2025-05-01T10:00:00Z", duration_s=14.6, paths=[path], interrupted=True
    )
    return observations, Diagnosis(findings=[], verdict=verdict)


SHAPES = [healthy, proxy_idle_timeout, handshake_failure, interrupted]


def _render(observations: Observations, diagnosis: Diagnosis, width: int = 100) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, force_terminal=False)
    render_terminal(observations, diagnosis, console, verbose=True)
    return out.getvalue()


def _connection_ids(observations: Observations) -> list[str]:
    return [c.id for p in observations.paths for s in p.stages for c in s.connections]


@pytest.mark.parametrize("shape", SHAPES)
def test_report_validates_against_schema(shape):
    report = build_report(*shape())
    validate_report(report)
    assert report["schema"] == SCHEMA_ID == "wsdoctor.report/1"
    assert report["tool"]["name"] == "wsdoctor"


def test_report_carries_contract_fields():
    observations, diagnosis = proxy_idle_timeout()
    report = build_report(observations, diagnosis)
    assert report["verdict"]["culprit"] == "proxy_idle_timeout"
    assert report["verdict"]["idle_timeout_s"] == 60.1
    assert report["findings"][0]["evidence"] == diagnosis.findings[0].evidence
    assert [p["name"] for p in report["paths"]] == ["direct", "via-proxy"]
    assert report["interrupted"] is False
    assert report["duration_s"] == 65.3


def test_schema_culprits_match_model():
    schema = load_schema()
    culprit = schema["$defs"]["verdict"]["properties"]["culprit"]["enum"]
    assert tuple(culprit) == CULPRITS


def _delete_confidence(report: dict) -> None:
    del report["verdict"]["confidence"]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda r: r["verdict"].update(culprit="gremlins"),
        lambda r: r["verdict"].update(status="broken"),
        _delete_confidence,
        lambda r: r["verdict"].update(confidence=1.5),
        lambda r: r["verdict"].update(hop="moon"),
        lambda r: r["verdict"].update(connection_limit=2.5),
        lambda r: r["findings"][0].update(severity="fatal"),
        lambda r: r["paths"][1]["stages"][0]["connections"][0]["ending"].update(kind="vanished"),
        lambda r: r.update(schema="wsdoctor.report/2"),
        lambda r: r.pop("paths"),
    ],
)
def test_spoiled_report_fails_validation(spoil):
    report = copy.deepcopy(build_report(*proxy_idle_timeout()))
    spoil(report)
    with pytest.raises(jsonschema.ValidationError):
        validate_report(report)


def test_additional_properties_are_allowed():
    report = build_report(*healthy())
    report["extra"] = {"anything": 1}
    report["verdict"]["new_figure_s"] = 3.0
    validate_report(report)


def test_validate_without_jsonschema_raises_runtime_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    with pytest.raises(RuntimeError, match="jsonschema"):
        validate_report(build_report(*healthy()))


def test_write_json_to_file_round_trips(tmp_path):
    report = build_report(*proxy_idle_timeout())
    destination = tmp_path / "report.json"
    destination.write_text("stale")
    write_json(report, str(destination))
    assert json.loads(destination.read_text()) == report
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_write_json_dash_goes_to_stdout(capsys):
    report = build_report(*handshake_failure())
    write_json(report, "-")
    assert json.loads(capsys.readouterr().out) == report


@pytest.mark.parametrize("shape", SHAPES)
def test_observations_round_trip_through_report(shape, tmp_path):
    observations, diagnosis = shape()
    destination = tmp_path / "report.json"
    write_json(build_report(observations, diagnosis), str(destination))
    report = json.loads(destination.read_text())
    assert observations_from_dict(report) == observations


@pytest.mark.parametrize("shape", SHAPES)
def test_terminal_shows_verdict_and_every_connection(shape):
    observations, diagnosis = shape()
    output = _render(observations, diagnosis)
    assert "\x1b" not in output
    verdict = diagnosis.verdict
    assert verdict.culprit in output
    assert verdict.status.upper() in output
    assert verdict.summary in output
    for remedy in verdict.remedies:
        assert remedy in output
    for conn_id in _connection_ids(observations):
        assert conn_id in output
    assert output.index(verdict.culprit) < output.index("Stages on")
    assert all(len(line) <= 100 for line in output.splitlines())


def test_terminal_shows_measured_figures_and_endings():
    output = _render(*proxy_idle_timeout(), width=200)
    assert "Idle timeout" in output
    assert "60.1 s" in output
    assert "93 %" in output
    assert "FIN, no close frame by server" in output
    assert "silent, pings unanswered" in output
    assert "3 of 3 dropped: eof 2, silent 1" in output
    assert "Set proxy_read_timeout 3600s in nginx." in output
    assert "nginx (Server: nginx/1.25.3)" in output
    assert "every 25.0 s" in output
    assert "[proxy_idle_timeout]" in output


def test_terminal_shows_markup_like_text_verbatim():
    output = _render(*healthy())
    assert "token=[redacted]" in output


def test_terminal_marks_interrupted_and_handshake_failure():
    assert "interrupted: partial results" in _render(*interrupted())
    output = _render(*handshake_failure(), width=200)
    assert "handshake failed: http_status 403 (Forbidden)" in output
    assert "Findings: none" in _render(*healthy())


def test_terminal_colours_status_on_a_colour_console():
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system="standard")
    render_terminal(*proxy_idle_timeout(), console)
    assert "\x1b[1;31mPROBLEM" in out.getvalue()


def test_text_helpers():
    assert format_seconds(60.123) == "60.1 s"
    assert format_seconds(None) == "-"
    close = Ending(
        kind="close_frame", age_s=1.0, idle_s=1.0, code=1001, reason="bye", initiator="server"
    )
    assert describe_ending(close) == 'close frame 1001 "bye" by server'
    verdict = Verdict(
        status="problem",
        culprit="server_limits",
        hop="server",
        summary="s",
        confidence=0.5,
        connection_limit=100,
        max_message_bytes=65536,
    )
    assert verdict_figures(verdict) == [
        ("Connection limit", "100"),
        ("Max message size", "65536 bytes"),
    ]
