"""`wsdoctor watch`: drops counted and classified, backoff, restarts, metrics, signals.

Rule tests use hand-written watch logs; lab tests run the real watch against real servers and
the fault proxy on loopback, in-process or as a real `python -m wsdoctor watch` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import HOST, lab, run_cli
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from websockets.asyncio.server import ServerConnection, serve

from wsdoctor.backoff import BackoffPolicy
from wsdoctor.demo import free_port
from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.rules.watch import disconnect_causes, watch_figures
from wsdoctor.lab import FaultConfig, FaultProxy
from wsdoctor.observations import (
    Disconnect,
    Ending,
    HandshakeFailure,
    Observations,
    PathResult,
    WatchLog,
)
from wsdoctor.plan import ConnectOptions, PathSpec, WatchPlan
from wsdoctor.probes.watch import run_watch
from wsdoctor.report.json_report import build_report, validate_report
from wsdoctor.report.watch import event_line, sparkline, watch_panel
from wsdoctor.status import SlotStatus, WatchStatus

# --- rules over hand-written watch logs ------------------------------------------------------


def _drop(
    at: float, conn: int, kind: str, age: float, idle: float | None = None, **more: object
) -> Disconnect:
    ending = Ending(kind=kind, age_s=age, idle_s=age if idle is None else idle)  # type: ignore[arg-type]
    for name in ("code", "reason", "initiator"):
        if name in more:
            setattr(ending, name, more.pop(name))
    if kind == "close_frame" and ending.initiator is None:
        ending.initiator = "server"
    return Disconnect(at_s=at, connection=conn, ending=ending, **more)  # type: ignore[arg-type]


def _judged(log: WatchLog) -> tuple[Observations, dict]:
    obs = Observations(
        started_at="2026-11-02T09:00:00+00:00",
        duration_s=log.duration_s,
        paths=[PathResult(name="direct", url="ws://ws.example.com/")],
        watch=log,
    )
    report = build_report(obs, diagnose(obs))
    validate_report(report)
    return obs, report


def test_a_watch_with_no_drop_is_healthy() -> None:
    _, report = _judged(WatchLog(duration_s=3600.0, connections=2, up_s=7199.0))
    assert report["verdict"]["status"] == "healthy"
    assert report["verdict"]["culprit"] == "none"
    summary = next(f for f in report["findings"] if f["code"] == "watch_summary")
    assert "up 99.99 % of the time" in summary["evidence"][0]


def test_abrupt_drops_of_many_connections_at_one_moment_are_a_restart() -> None:
    drops = [
        _drop(100.0 + 0.1 * i, i, kind, age=age, idle=1.0)
        for i, (kind, age) in enumerate([("eof", 99.0), ("reset", 60.0), ("eof", 31.5), ("eof", 7)])
    ]
    log = WatchLog(duration_s=200.0, connections=6, up_s=1150.0, disconnects=drops)
    assert disconnect_causes(log) == ["restart"] * 4
    _, report = _judged(log)
    assert report["verdict"]["culprit"] == "restart"


def test_drops_of_equal_age_at_one_moment_are_not_called_a_restart() -> None:
    drops = [_drop(30.0 + 0.05 * i, i, "eof", age=30.0, idle=1.0) for i in range(4)]
    log = WatchLog(duration_s=40.0, connections=4, up_s=150.0, disconnects=drops)
    assert "restart" not in disconnect_causes(log)


def test_two_of_many_connections_dropping_together_is_not_a_restart() -> None:
    drops = [_drop(50.0, 1, "eof", age=49.0, idle=2.0), _drop(50.5, 7, "eof", age=12.0, idle=2.0)]
    log = WatchLog(duration_s=100.0, connections=10, up_s=995.0, disconnects=drops)
    assert disconnect_causes(log) == ["network_instability"] * 2
    _, report = _judged(log)
    assert report["verdict"]["culprit"] == "network_instability"


def test_going_away_codes_name_a_restart_even_on_one_connection() -> None:
    log = WatchLog(
        duration_s=100.0,
        connections=1,
        up_s=99.0,
        disconnects=[_drop(40.0, 0, "close_frame", age=40.0, idle=3.0, code=1001)],
    )
    assert disconnect_causes(log) == ["restart"]


def test_a_drop_followed_by_refused_reconnects_is_a_restart() -> None:
    refused = HandshakeFailure("refused", "connection refused by ws.example.com:443")
    log = WatchLog(
        duration_s=100.0,
        connections=1,
        up_s=95.0,
        disconnects=[_drop(40.0, 0, "eof", age=40.0, idle=3.0, failure=refused)],
    )
    assert disconnect_causes(log) == ["restart"]


def test_connections_closed_right_after_opening_are_refusals_not_idle_timeouts() -> None:
    drops = [_drop(1.0 * k, 0, "eof", age=0.05) for k in range(1, 5)]
    drops.append(_drop(6.0, 0, "close_frame", age=0.04, code=4401))
    log = WatchLog(duration_s=7.0, connections=1, up_s=0.3, disconnects=drops)
    assert disconnect_causes(log) == ["server_limits"] * 4 + ["handshake_rejected"]
    _, report = _judged(log)
    assert report["verdict"]["culprit"] == "server_limits"


def test_drops_at_a_fixed_age_while_heartbeats_flow_are_a_lifetime_cap() -> None:
    drops = [_drop(60.3 * k, 0, "eof", age=60.0 + 0.1 * k, idle=4.0) for k in range(1, 5)]
    log = WatchLog(duration_s=250.0, connections=1, up_s=248.0, disconnects=drops)
    assert disconnect_causes(log) == ["lifetime_cap"] * 4
    _, report = _judged(log)
    assert report["verdict"]["culprit"] == "lifetime_cap"
    assert report["verdict"]["lifetime_cap_s"] == pytest.approx(60.2, abs=0.2)


@pytest.mark.parametrize(
    ("kind", "culprit", "timed"),
    [("eof", "proxy_idle_timeout", True), ("silent", "nat_firewall_idle_drop", False)],
)
def test_drops_before_the_first_heartbeat_are_an_idle_timeout(
    kind: str, culprit: str, timed: bool
) -> None:
    drops = [_drop(10.0 * k, 0, kind, age=8.0 + 0.01 * k) for k in range(1, 4)]
    log = WatchLog(duration_s=35.0, connections=1, up_s=24.0, disconnects=drops)
    _, report = _judged(log)
    assert report["verdict"]["culprit"] == culprit
    if timed:  # a FIN times the drop; silence only bounds it by the unanswered heartbeat
        assert report["verdict"]["idle_timeout_s"] == pytest.approx(8.02, abs=0.05)
    else:
        assert report["verdict"]["idle_timeout_s"] is None
        assert "within 8.0 s idle" in report["verdict"]["summary"]


@pytest.mark.parametrize(
    ("failure", "culprit"),
    [
        (HandshakeFailure("refused", "connection refused by ws.example.com:443"), "unreachable"),
        (HandshakeFailure("http_status", "HTTP 503", status=503), "server_limits"),
        (HandshakeFailure("tls", "certificate rejected"), "tls_error"),
    ],
)
def test_a_watch_that_never_connected_names_the_handshake_failure(
    failure: HandshakeFailure, culprit: str
) -> None:
    drop = _drop(0.0, 0, "handshake_failed", age=0.0, failure=failure, reconnect_attempts=5)
    _, report = _judged(WatchLog(duration_s=30.0, connections=1, up_s=0.0, disconnects=[drop]))
    assert report["verdict"]["status"] == "problem"
    assert report["verdict"]["culprit"] == culprit


def test_figures_availability_mean_time_between_drops_and_reconnect_times() -> None:
    drops = [_drop(t, 0, "reset", age=a, idle=1.0) for t, a in ((30.0, 30.0), (75.0, 40.0))]
    log = WatchLog(
        duration_s=100.0,
        connections=1,
        up_s=90.0,
        disconnects=drops,
        reconnect_times_s=[4.0, 6.0],
    )
    figures = watch_figures(log)
    assert figures.availability == pytest.approx(0.9)
    assert figures.drops == 2
    assert figures.mtbd_s == pytest.approx(45.0)
    assert (figures.reconnect_p50_s, figures.reconnect_p95_s) == (4.0, 6.0)
    _, report = _judged(log)
    evidence = next(f for f in report["findings"] if f["code"] == "watch_summary")["evidence"]
    assert "up 90.00 % of the time" in evidence[0]
    assert "mean time between drops 45.0 s" in evidence[1]


def test_the_live_panel_shows_state_rtts_reconnects_and_causes() -> None:
    now = time.monotonic()
    status = WatchStatus(
        started=now - 75,
        slots=[SlotStatus("up", now - 12, 1.3), SlotStatus("waiting")],
        reconnects=3,
    )
    status.recent_rtts_ms.extend([1.0, 1.2, 3.5, 0.9, 8.0, 1.3])
    log = WatchLog(
        duration_s=0.0,
        connections=2,
        up_s=0.0,
        disconnects=[
            _drop(10.0, 1, "eof", age=9.9, idle=0.2),
            _drop(20.0, 0, "close_frame", age=19.0, idle=0.2, code=1012),
        ],
    )
    console = Console(width=100, record=True, color_system=None)
    console.print(watch_panel(status, log, disconnect_causes(log)))
    text = console.export_text()
    assert "1/2 up, 1 waiting" in text
    assert "1.3 ms" in text and "0.9-8.0 ms" in text
    assert sparkline(status.recent_rtts_ms) in text
    assert "Reconnects   3" in text
    assert "#0  close 1012 at age 19.0 s -> restart" in text
    assert "#1  FIN at age 9.9 s -> network_instability" in text
    line = event_line(
        {
            "event": "reconnect_attempt",
            "t": 20.0,
            "connection": 0,
            "attempt": 3,
            "delay_s": 0.7,
            "ceiling_s": 2.0,
        }
    )
    assert line is not None and "attempt 3 in 0.70 s (backoff up to 2.00 s)" in line


def test_sparkline_spans_lowest_to_highest() -> None:
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert sparkline([5.0, 5.0]) == "▁▁"
    assert sparkline([]) == ""


# --- the real watch against real servers ------------------------------------------------------


def _plan(url: str, **overrides: object) -> WatchPlan:
    settings: dict = {
        "path": PathSpec("direct", url),
        "connect": ConnectOptions(open_timeout_s=2.0),
        "interval_s": 0.2,
        "duration_s": 6.0,
        "backoff": BackoffPolicy(base_s=0.1, max_s=1.5),
    }
    settings.update(overrides)
    return WatchPlan(**settings)


def _watched(
    plan: WatchPlan, events: list[dict], seed: int = 5
) -> tuple[Observations, asyncio.Task]:
    """Start watching; a seeded jitter keeps the lab's timeline the same from run to run."""
    observations = Observations(started_at="", duration_s=0.0)
    task = asyncio.create_task(
        run_watch(plan, observations, WatchStatus(), events.append, random.Random(seed))
    )
    return observations, task


def test_repeated_drops_are_counted_classified_and_reconnects_back_off() -> None:
    """The endpoint refuses at first, then sits behind a proxy that cuts every connection at
    1 s of age: failed handshakes and short-lived connections both keep the backoff growing."""
    port = free_port()
    events: list[dict] = []

    async def main() -> tuple[Observations, dict[str, int]]:
        async with lab() as (direct, _):
            upstream = int(direct.rsplit(":", 1)[1].strip("/"))
            plan = _plan(f"ws://{HOST}:{port}/", duration_s=7.0)
            observations, task = _watched(plan, events, seed=7)
            await asyncio.sleep(0.9)  # refused meanwhile: five attempts, none near 0.9 s
            config = FaultConfig(HOST, upstream, max_age_s=1.0)
            async with FaultProxy(config, port=port) as proxy:
                await task
                return observations, dict(proxy.faults_fired)

    observations, fired = asyncio.run(main())
    log = observations.watch
    assert log is not None
    first = log.disconnects[0]
    assert first.ending.kind == "handshake_failed"
    assert first.failure is not None and first.failure.reason == "refused"
    assert first.reconnect_attempts >= 2
    eofs = [d for d in log.disconnects if d.ending.kind == "eof"]
    assert 2 <= len(eofs) <= fired.get("max_age_fin", 0)
    assert all(d.ending.age_s == pytest.approx(1.0, abs=0.3) for d in eofs)
    diagnosis = diagnose(observations)
    assert diagnosis.verdict.culprit == "lifetime_cap"
    validate_report(build_report(observations, diagnosis))

    attempts = [e for e in events if e["event"] == "reconnect_attempt"]
    ceilings = [e["ceiling_s"] for e in attempts]
    delays = [e["delay_s"] for e in attempts]
    # No connection lived the stable period (the 1.5 s cap), so the ceiling never reset:
    # it doubles with every attempt, up to the cap; the waits are drawn under it, all apart.
    assert ceilings == [min(1.5, 0.1 * 2**k) for k in range(len(ceilings))]
    assert len(ceilings) >= 5
    assert all(0 <= d <= c <= 1.5 for d, c in zip(delays, ceilings))
    assert len(set(delays)) == len(delays)
    assert all(0 <= (d.reconnect_delay_s or 0) <= 1.5 for d in log.disconnects)
    # Every attempt waited out its delay before the next handshake (never a tight loop).
    resumed = [e for e in events if e["event"] in ("connect", "handshake_failed")][1:]
    for attempt, after in zip(attempts, resumed):
        assert after["t"] >= attempt["t"] + attempt["delay_s"] - 0.01


def _attempts_after_each_drop(events: list[dict]) -> list[dict]:
    """The first reconnect attempt scheduled after each disconnect."""
    out, dropped = [], False
    for event in events:
        if event["event"] == "disconnect":
            dropped = True
        elif event["event"] == "reconnect_attempt" and dropped:
            out.append(event)
            dropped = False
    return out


def test_backoff_starts_over_after_connections_that_stayed_up() -> None:
    """A proxy cuts every connection after 1.5 s idle (no heartbeat within the watch): each
    reconnect works and each connection outlives the stable period (the 0.8 s cap), so every
    drop is followed by attempt 1 under the base ceiling, never a growing wait."""
    events: list[dict] = []

    async def main() -> tuple[Observations, dict[str, int]]:
        async with lab(fault={"idle_timeout_s": 1.5}) as (_, proxied):
            assert proxied is not None
            plan = _plan(
                proxied,
                interval_s=30.0,
                duration_s=6.5,
                backoff=BackoffPolicy(base_s=0.2, max_s=0.8),
            )
            observations, task = _watched(plan, events)
            await task
        return observations

    observations = asyncio.run(main())
    log = observations.watch
    assert log is not None
    drops = log.disconnects
    assert len(drops) >= 3, drops
    assert all(d.ending.kind == "eof" and d.ending.age_s >= 1.0 for d in drops)
    assert len(log.reconnect_times_s) >= 3  # every reconnect worked
    after_drops = _attempts_after_each_drop(events)
    assert len(after_drops) == len(drops)
    assert [e["attempt"] for e in after_drops] == [1] * len(drops)
    assert [e["ceiling_s"] for e in after_drops] == [0.2] * len(drops)
    assert all(0 <= e["delay_s"] <= 0.2 for e in after_drops)
    assert not [e for e in events if e["event"] == "handshake_failed"]


def test_backoff_grows_while_the_target_refuses() -> None:
    """Nothing listens: every attempt fails, attempt numbers count up and the ceiling doubles
    up to the cap."""
    port = free_port()
    events: list[dict] = []

    async def main() -> Observations:
        plan = _plan(f"ws://{HOST}:{port}/", duration_s=3.0)
        observations, task = _watched(plan, events)
        await task
        return observations

    observations = asyncio.run(main())
    attempts = [e for e in events if e["event"] == "reconnect_attempt"]
    assert len(attempts) >= 4
    assert [e["attempt"] for e in attempts] == list(range(1, len(attempts) + 1))
    assert [e["ceiling_s"] for e in attempts] == [
        min(1.5, 0.1 * 2**k) for k in range(len(attempts))
    ]
    failed = [e for e in events if e["event"] == "handshake_failed"]
    assert len(failed) >= len(attempts) - 1
    assert all(e["failure"]["reason"] == "refused" for e in failed)
    assert observations.watch is not None and observations.watch.up_s == 0


async def _restarting_server(connections: set[ServerConnection]) -> tuple[object, int]:
    async def handler(ws: ServerConnection) -> None:
        connections.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connections.discard(ws)

    server = await serve(handler, HOST, 0)
    return server, server.sockets[0].getsockname()[1]


def test_many_connections_closed_at_once_with_1012_are_a_restart() -> None:
    events: list[dict] = []

    async def main() -> Observations:
        held: set[ServerConnection] = set()
        server, port = await _restarting_server(held)
        async with server:  # type: ignore[attr-defined]
            plan = _plan(
                f"ws://{HOST}:{port}/",
                connections=5,
                interval_s=0.5,
                duration_s=3.0,
                heartbeat_message='{"type":"ping"}',
            )
            observations, task = _watched(plan, events)
            for _ in range(40):  # all five open: at most 2 s
                if len(held) == 5:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            await asyncio.gather(*(ws.close(1012, "restarting") for ws in list(held)))
            await task
            return observations

    observations = asyncio.run(main())
    log = observations.watch
    assert log is not None
    restarts = [d for d in log.disconnects if d.ending.code == 1012]
    assert {d.connection for d in restarts} == set(range(5))
    assert set(disconnect_causes(log)) == {"restart"}
    assert len(log.reconnect_times_s) >= 5  # every one came back
    diagnosis = diagnose(observations)
    assert diagnosis.verdict.culprit == "restart"
    assert diagnosis.verdict.status == "problem"
    validate_report(build_report(observations, diagnosis))


# --- the command line, as real processes ------------------------------------------------------


@contextlib.contextmanager
def lab_in_thread(fault: dict | None = None) -> Iterator[str]:
    """A reference server (and the fault proxy in front when ``fault`` is given) served from a
    background thread; yields the URL to watch."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    urls: list[str] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        async with lab(fault=fault) as (direct, proxied):
            urls.append(proxied or direct)
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield urls[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(5)
        loop.close()


def _scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _sample_sum(families: dict[str, list], name: str, suffix: str = "") -> float:
    return sum(s.value for s in families.get(name, []) if s.name == name + suffix)


def test_metrics_are_scraped_over_http_and_kept_in_a_textfile(tmp_path: Path) -> None:
    port = free_port()
    textfile = tmp_path / "wsdoctor.prom"
    with lab_in_thread(fault={"max_age_s": 1.0}) as url:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "wsdoctor", "watch", url,
                "--interval", "0.2", "--duration", "5", "--backoff-base", "0.1",
                "--backoff-max", "0.5", "--metrics-port", str(port),
                "--metrics-textfile", str(textfile), "--json", "-",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        seen: dict[str, list] = {}
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError):
                seen = _scrape(port)
                dropped = _sample_sum(seen, "wsdoctor_watch_disconnects", "_total")
                if dropped >= 2 and _sample_sum(seen, "wsdoctor_watch_connection_up") == 1:
                    break
            time.sleep(0.2)
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 1, stderr
    assert _sample_sum(seen, "wsdoctor_watch_connection_up") == 1, seen
    assert {s.labels.get("target") for samples in seen.values() for s in samples} == {url}
    assert _sample_sum(seen, "wsdoctor_watch_rtt_seconds", "_count") > 0
    assert _sample_sum(seen, "wsdoctor_watch_last_rtt_seconds") > 0
    assert _sample_sum(seen, "wsdoctor_watch_reconnect_attempts", "_total") >= 2
    endings = {s.labels["ending"] for s in seen["wsdoctor_watch_disconnects"] if s.value}
    assert endings == {"eof"}
    causes = {s.labels["cause"] for s in seen["wsdoctor_watch_disconnects_by_cause"] if s.value}
    assert causes <= {"lifetime_cap", "network_instability"}
    written = {f.name: f.samples for f in text_string_to_metric_families(textfile.read_text())}
    dropped = _sample_sum(written, "wsdoctor_watch_disconnects", "_total")
    assert dropped >= 2
    assert _sample_sum(written, "wsdoctor_watch_connection_up") == 0  # the watch has ended
    # At the end every drop is labelled as the summary labels it: all of them a lifetime cap.
    final = {s.labels["cause"]: s.value for s in written["wsdoctor_watch_disconnects_by_cause"]}
    assert {cause: n for cause, n in final.items() if n} == {"lifetime_cap": dropped}
    report = json.loads(stdout)
    validate_report(report)
    assert report["verdict"]["culprit"] == "lifetime_cap"
    assert "metrics on http://127.0.0.1:" in stderr


def _final_labels(events: list[dict]) -> dict[int, str]:
    """Each drop's cause as the events log leaves it: its own event, then any relabel."""
    labels: dict[int, str] = {}
    for event in events:
        if "index" in event and "cause" in event:
            labels[event["index"]] = event["cause"]
    return labels


def test_drops_are_relabelled_everywhere_when_their_pattern_shows(tmp_path: Path) -> None:
    """A proxy cuts every connection after 1 s idle. The first drop alone looks like
    network_instability; the second shows the pattern, and the first is relabelled: the events
    log, the Prometheus text and the summary all end with every drop a proxy_idle_timeout.
    The URL carries a password and a token, which no series label may show."""
    events_file = tmp_path / "events.jsonl"
    textfile = tmp_path / "wsdoctor.prom"
    secret = "pr0m-S3cret-77"
    with lab_in_thread(fault={"idle_timeout_s": 1.0}) as url:
        host_port = url.removeprefix("ws://").rstrip("/")
        watched = f"ws://user:{secret}@{host_port}/feed?token={secret}&room=a.b"
        result = run_cli(
            "watch", watched, "--interval", "30", "--duration", "4.5",
            "--backoff-base", "0.1", "--backoff-max", "0.5", "--events", str(events_file),
            "--metrics-textfile", str(textfile), "--json", "-",
            timeout=30,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    validate_report(report)
    drops = report["watch"]["disconnects"]
    assert len(drops) >= 2
    assert {d["ending"]["kind"] for d in drops} == {"eof"}

    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    told = [e for e in events if e["event"] == "disconnect"]
    assert told[0]["cause"] == "network_instability"  # alone, nothing explains it yet
    relabels = [e for e in events if e["event"] == "relabel"]
    assert relabels and relabels[0]["index"] == 0
    assert (relabels[0]["was"], relabels[0]["cause"]) == (
        "network_instability",
        "proxy_idle_timeout",
    )
    final = _final_labels(events)
    assert final == {i: "proxy_idle_timeout" for i in range(len(drops))}

    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    by_cause = {
        s.labels["cause"]: s.value for s in families["wsdoctor_watch_disconnects_by_cause"].samples
    }
    assert {c: n for c, n in by_cause.items() if n} == {"proxy_idle_timeout": len(drops)}
    assert by_cause.get("network_instability", 0) == 0
    ended = {
        s.labels["ending"]: s.value
        for s in families["wsdoctor_watch_disconnects"].samples
        if s.name.endswith("_total")
    }
    assert ended == {"eof": len(drops)}

    assert report["verdict"]["culprit"] == "proxy_idle_timeout"
    summary = next(f for f in report["findings"] if f["code"] == "watch_summary")
    assert f"causes: {len(drops)} x proxy_idle_timeout" in summary["evidence"]
    assert (
        "drop 0 relabelled: network_instability -> proxy_idle_timeout"
        in result.stderr + result.stdout
    )

    # Every series names its target, the URL without its secrets.
    expected = f"ws://[redacted]@{host_port}/feed?token=[redacted]&room=a.b"
    samples = [s for f in families.values() for s in f.samples]
    assert samples and {s.labels.get("target") for s in samples} == {expected}
    assert secret not in textfile.read_text() and secret not in events_file.read_text()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_watch_with_its_summary(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    target = tmp_path / "watch.json"
    events = tmp_path / "events.jsonl"
    with lab_in_thread() as url:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "wsdoctor", "watch", url, "--interval", "0.3",
                "--json", str(target), "--events", str(events),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and '"rtt"' not in _read(events):
            time.sleep(0.1)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    report = json.loads(target.read_text())
    validate_report(report)
    assert report["watch"]["up_s"] > 0
    assert report["watch"]["disconnects"] == []
    assert report["verdict"]["status"] == "healthy"  # no --duration: a signal is the planned end
    summary = next(f for f in report["findings"] if f["code"] == "watch_summary")
    assert " % of the time" in summary["evidence"][0]
    kinds = [json.loads(line)["event"] for line in _read(events).splitlines()]
    assert kinds[0] == "connect" and "rtt" in kinds


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--interval", "0"], "--interval"),
        (["--duration", "-1"], "--duration"),
        (["--connections", "101"], "--connections"),
        (["--backoff-base", "2", "--backoff-max", "1"], "--backoff-max"),
        (["--metrics-port", "70000"], "--metrics-port"),
        (["--events", "/nonexistent-dir/events.jsonl"], "--events"),
    ],
)
def test_bad_watch_options_are_one_line_errors(args: list[str], words: str) -> None:
    result = run_cli("watch", "ws://127.0.0.1:9/", *args, timeout=20)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr


def test_the_help_states_the_backoff_rule() -> None:
    result = run_cli("watch", "--help", timeout=20)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "consecutive failures only" in text
    assert "5 s)" in text and "starts the backoff over" in text
