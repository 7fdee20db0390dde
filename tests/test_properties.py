"""Property tests of the diagnosis: any observation set gets a valid verdict, and never raises.

Strategies generate arbitrary but valid observations: every type, range and enum the facts allow
(paths with any stage, connections with every role and ending, events, RTT figures, steps,
fingerprints, host facts, watch logs), with the consistency a real probe keeps (a connection is
never idle for longer than its age; a failed handshake ends the connection as
``handshake_failed``). A second family builds healthy paths: every rung answered up to the
path's max idle, keepers still open, steady round trips.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.observations import (
    ConnectionRecord,
    Disconnect,
    Ending,
    Event,
    Fingerprint,
    Handshake,
    HandshakeFailure,
    HostFacts,
    HostLimit,
    LoopLag,
    Observations,
    PathResult,
    RttStats,
    StageResult,
    Step,
    WatchLog,
)
from wsdoctor.plan import IdlePlan
from wsdoctor.report.json_report import build_report, validate_report

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STAGE_NAMES = ("handshake", "echo", "idle", "heartbeat", "size", "rate", "stability", "capacity")
ROLES = ("handshake", "echo", "sentinel", "rung", "heartbeat", "traffic")
ENDINGS = ("close_frame", "eof", "reset", "silent", "local", "open")
FAILURES = ("dns", "refused", "timeout", "tls", "http_status", "upgrade_not_performed", "reset")
EVENT_KINDS = (
    "ping_sent",
    "pong_received",
    "ping_timeout",
    "server_ping",
    "message_sent",
    "message_received",
)
HOST_LIMITS = (
    "nofile_soft",
    "nofile_hard",
    "server_nofile_soft",
    "server_nofile_hard",
    "server_open_fds",
    "fs.file-max",
    "fs.file-nr",
    "fs.nr_open",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)
FAILURE_KEYS = (
    "http_503",
    "http_429",
    "refused",
    "reset",
    "timeout",
    "eof",
    "close_1013",
    "client_fd_limit",
    "client_ports",
)
PHASES = (None, "ramp", "recovery", "storm", "storm_backoff", "burst")
HEADERS = ("Server", "Via", "CF-Ray", "X-Amz-Cf-Id", "X-Served-By", "Fly-Request-Id", "X-Cache")

seconds = st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False, allow_infinity=False)
short_seconds = st.floats(min_value=0.0, max_value=600.0, allow_nan=False, allow_infinity=False)
positive_seconds = st.floats(min_value=0.05, max_value=600.0, allow_nan=False)
millis = st.floats(min_value=0.0, max_value=60_000.0, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=100_000)
text = st.text(max_size=20)
close_codes = st.one_of(
    st.sampled_from([1000, 1001, 1002, 1006, 1008, 1009, 1011, 1012, 1013, 1014]),
    st.integers(min_value=1000, max_value=4999),
)
statuses = st.one_of(
    st.sampled_from([101, 200, 301, 400, 401, 403, 404, 426, 429, 500, 502, 503, 505]),
    st.integers(min_value=100, max_value=599),
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def endings(draw: st.DrawFn, kinds: tuple[str, ...] = ENDINGS) -> Ending:
    """How a connection ended; never idle for longer than its age."""
    kind = draw(st.sampled_from(kinds))
    age = draw(short_seconds)
    framed = kind == "close_frame"
    return Ending(
        kind=kind,  # type: ignore[arg-type]
        age_s=age,
        idle_s=draw(st.floats(min_value=0.0, max_value=age)),
        code=draw(close_codes) if framed else draw(maybe(close_codes)),
        reason=draw(maybe(text)),
        initiator=draw(st.sampled_from(["server", "client", None])),
        detail=draw(maybe(text)),
    )


@st.composite
def failures(draw: st.DrawFn) -> HandshakeFailure:
    reason = draw(st.sampled_from(FAILURES + ("other",)))
    status = draw(statuses) if reason == "http_status" else None
    return HandshakeFailure(reason=reason, message=draw(text), status=status)


@st.composite
def handshakes(draw: st.DrawFn, ok: bool) -> Handshake:
    failure = None if ok else draw(failures())
    return Handshake(
        ok=ok,
        dns_s=draw(maybe(short_seconds)),
        tcp_s=draw(maybe(short_seconds)),
        tls_s=draw(maybe(short_seconds)),
        upgrade_s=draw(maybe(short_seconds)) if ok else None,
        status=101 if ok else (failure.status if failure else None),
        headers=draw(st.dictionaries(st.sampled_from(HEADERS), text, max_size=3)),
        subprotocol=draw(maybe(text)),
        failure=failure,
    )


@st.composite
def events(draw: st.DrawFn, until: float) -> list[Event]:
    drawn = draw(
        st.lists(
            st.tuples(
                st.floats(min_value=0.0, max_value=until),
                st.sampled_from(EVENT_KINDS),
                maybe(counts),
                maybe(millis),
            ),
            max_size=6,
        )
    )
    return [
        Event(t=t, kind=k, size=s, rtt_ms=r) for t, k, s, r in sorted(drawn, key=lambda e: e[0])
    ]  # type: ignore[arg-type]


@st.composite
def connections(draw: st.DrawFn) -> ConnectionRecord:
    """One connection of any role, ended in any way (a failed handshake included)."""
    failed = draw(st.booleans()) and draw(st.booleans())
    role = draw(st.sampled_from(ROLES))
    ending = (
        Ending(kind="handshake_failed", age_s=0.0, idle_s=0.0, detail=draw(maybe(text)))
        if failed
        else draw(endings())
    )
    server_pings = draw(st.integers(min_value=0, max_value=50))
    return ConnectionRecord(
        id=f"{role}-{draw(st.integers(min_value=1, max_value=99))}",
        role=role,  # type: ignore[arg-type]
        opened_at=draw(seconds),
        handshake=draw(handshakes(ok=not failed)),
        ending=ending,
        planned_idle_s=draw(maybe(positive_seconds)) if role == "rung" else None,
        interval_s=draw(maybe(positive_seconds)) if role in ("heartbeat", "traffic") else None,
        events=draw(events(ending.age_s)),
        server_pings=server_pings,
        server_ping_interval_s=draw(maybe(positive_seconds)) if server_pings > 1 else None,
    )


@st.composite
def rtt_stats(draw: st.DrawFn) -> RttStats:
    values = sorted(draw(st.lists(millis, min_size=4, max_size=4)))
    return RttStats(
        kind=draw(st.sampled_from(["protocol", "application"])),
        samples=draw(counts),
        p50_ms=values[0],
        p95_ms=values[1],
        p99_ms=values[2],
        max_ms=values[3],
        jitter_ms=draw(millis),
        lost=draw(counts),
    )


@st.composite
def loop_lags(draw: st.DrawFn) -> LoopLag:
    low, high = sorted(draw(st.lists(millis, min_size=2, max_size=2)))
    return LoopLag(samples=draw(counts), p99_ms=low, max_ms=high)


@st.composite
def steps(draw: st.DrawFn) -> Step:
    sent = draw(st.integers(min_value=0, max_value=10_000))
    answered = draw(st.integers(min_value=0, max_value=sent))
    return Step(
        value=draw(st.floats(min_value=0.0, max_value=1e7, allow_nan=False)),
        ok=draw(st.booleans()),
        sent=sent,
        answered=answered,
        failed=draw(st.integers(min_value=0, max_value=sent - answered)),
        failures=draw(st.dictionaries(st.sampled_from(FAILURE_KEYS) | text, counts, max_size=3)),
        ending=draw(maybe(endings())),
        status=draw(maybe(statuses)),
        elapsed_s=draw(short_seconds),
        phase=draw(st.sampled_from(PHASES)),
    )


@st.composite
def stages(draw: st.DrawFn, name: str | None = None) -> StageResult:
    return StageResult(
        name=draw(st.sampled_from(STAGE_NAMES)) if name is None else name,  # type: ignore[arg-type]
        started_at=draw(seconds),
        duration_s=draw(short_seconds),
        connections=draw(st.lists(connections(), max_size=6)),
        rtt=draw(st.lists(rtt_stats(), max_size=2)),
        loop_lag=draw(maybe(loop_lags())),
        ping_timeout_s=draw(maybe(positive_seconds)),
        max_idle_s=draw(maybe(st.floats(min_value=2.0, max_value=86400.0))),
        app_echo=draw(maybe(st.booleans())),
        app_heartbeat_answered=draw(maybe(st.booleans())),
        interrupted=draw(st.booleans()),
        notes=draw(st.lists(text, max_size=2)),
        steps=draw(st.lists(steps(), max_size=5)),
        client_fd_limit=draw(maybe(st.integers(min_value=0, max_value=1_000_000))),
    )


fingerprints = st.builds(
    Fingerprint,
    name=st.sampled_from(["nginx", "Cloudflare", "CloudFront", "Fastly", "envoy", "x"]),
    kind=st.sampled_from(["proxy", "load_balancer", "cdn", "paas", "server"]),
    header=st.sampled_from(HEADERS),
    value=text,
    source=st.sampled_from(["upgrade", "http"]),
)


@st.composite
def paths(draw: st.DrawFn, name: str) -> PathResult:
    return PathResult(
        name=name,
        url=f"wss://{name}.example.test/ws",
        proxy=draw(st.sampled_from([None, "http://proxy.example.test:3128"])),
        stages=draw(st.lists(stages(), max_size=6)),
        fingerprints=draw(st.lists(fingerprints, max_size=2)),
    )


@st.composite
def host_facts(draw: st.DrawFn) -> HostFacts:
    limits = draw(
        st.lists(
            st.builds(
                HostLimit,
                name=st.sampled_from(HOST_LIMITS) | text,
                value=st.none()
                | st.integers(min_value=0, max_value=2**40)
                | st.sampled_from(["32768 60999", "1024 65535", "0 0", "65535 1024"])
                | text,
                source=text,
                error=maybe(st.sampled_from(["not present", "permission denied"])),
            ),
            max_size=10,
        )
    )
    return HostFacts(
        limits=limits,
        pid=draw(maybe(st.integers(min_value=1, max_value=4_194_304))),
        target_connections=draw(maybe(st.integers(min_value=1, max_value=100_000_000))),
    )


@st.composite
def disconnects(draw: st.DrawFn) -> Disconnect:
    return Disconnect(
        at_s=draw(seconds),
        connection=draw(st.integers(min_value=0, max_value=99)),
        ending=draw(endings(ENDINGS[:-1])),
        reconnect_delay_s=draw(maybe(short_seconds)),
        reconnect_attempts=draw(st.integers(min_value=0, max_value=1000)),
        failure=draw(maybe(failures())),
    )


@st.composite
def watch_logs(draw: st.DrawFn) -> WatchLog:
    duration = draw(seconds)
    connections_watched = draw(st.integers(min_value=0, max_value=100))
    return WatchLog(
        duration_s=duration,
        connections=connections_watched,
        up_s=draw(st.floats(min_value=0.0, max_value=duration * max(1, connections_watched))),
        disconnects=draw(st.lists(disconnects(), max_size=8)),
        rtt=draw(maybe(rtt_stats())),
        reconnect_times_s=draw(st.lists(short_seconds, max_size=5)),
        loop_lag=draw(maybe(loop_lags())),
    )


@st.composite
def observation_sets(draw: st.DrawFn) -> Observations:
    names = draw(st.lists(st.sampled_from(["direct", "via-proxy", "via-2"]), unique=True))
    return Observations(
        started_at="2026-11-02T09:00:00+00:00",
        duration_s=draw(seconds),
        paths=[draw(paths(name)) for name in names],
        interrupted=draw(st.booleans()),
        host=draw(maybe(host_facts())),
        watch=draw(maybe(watch_logs())),
    )


# --- healthy paths ---------------------------------------------------------------------------


def _ok_handshake() -> Handshake:
    return Handshake(ok=True, dns_s=0.001, tcp_s=0.001, upgrade_s=0.002, status=101)


centiseconds = st.integers(min_value=200, max_value=30_000).map(lambda c: c / 100)
"""Idle budgets with at most two decimals, as people type them (2.5, 30, 120)."""


def healthy_path(
    name: str,
    max_idle_s: float,
    base_ms: float = 1.0,
    jitter: tuple[float, ...] = (0.0,),
    sentinels: int = 2,
    tail_s: float = 1.0,
    found: tuple[Fingerprint, ...] = (),
) -> PathResult:
    """A path as the probe records it when nothing drops: every rung of the probe's own ladder
    answered, sentinels and keepers open at the end, round trips of ``base_ms`` plus up to
    50 % ``jitter`` (fractions, used in turn)."""
    samples = (base_ms * (1 + jitter[i % len(jitter)]) for i in range(10_000))
    rungs = IdlePlan(max_idle_s=max_idle_s).rungs()
    end = max(rungs) + tail_s
    lag = LoopLag(samples=100, p99_ms=1.0, max_ms=2.0)
    idle_conns = [
        ConnectionRecord(
            id=f"sentinel-{i}",
            role="sentinel",
            opened_at=1.0,
            handshake=_ok_handshake(),
            ending=Ending(kind="open", age_s=end, idle_s=end),
        )
        for i in range(sentinels)
    ]
    for rung in rungs:
        ms = round(next(samples), 3)
        idle_conns.append(
            ConnectionRecord(
                id=f"rung-{rung:g}s",
                role="rung",
                opened_at=1.0,
                handshake=_ok_handshake(),
                ending=Ending(
                    kind="local", age_s=rung + 2 * ms / 1000, idle_s=0.0, initiator="client"
                ),
                planned_idle_s=rung,
                events=[
                    Event(t=rung, kind="ping_sent"),
                    Event(t=rung + ms / 1000, kind="pong_received", rtt_ms=ms),
                ],
            )
        )
    keepers = [
        ConnectionRecord(
            id=f"heartbeat-{interval:g}s",
            role="heartbeat",
            opened_at=1.0,
            handshake=_ok_handshake(),
            ending=Ending(kind="open", age_s=end, idle_s=min(interval, end) / 2),
            interval_s=interval,
        )
        for interval in IdlePlan(max_idle_s=max_idle_s).heartbeat_intervals()
    ]
    echoes = sorted(round(next(samples), 3) for _ in range(5))
    echo_stats = RttStats("protocol", 5, echoes[2], echoes[4], echoes[4], echoes[4], 0.1)
    echo_conn = ConnectionRecord(
        id="echo-1",
        role="echo",
        opened_at=0.1,
        handshake=_ok_handshake(),
        ending=Ending(kind="local", age_s=0.9, idle_s=0.0, initiator="client"),
        events=[Event(t=0.1 * i, kind="pong_received", rtt_ms=ms) for i, ms in enumerate(echoes)],
    )
    hs_conn = ConnectionRecord(
        id="handshake-1",
        role="handshake",
        opened_at=0.0,
        handshake=_ok_handshake(),
        ending=Ending(kind="local", age_s=0.01, idle_s=0.0, initiator="client"),
    )
    common: dict[str, Any] = {"duration_s": end, "loop_lag": lag, "max_idle_s": max_idle_s}
    return PathResult(
        name=name,
        url=f"wss://{name}.example.test/ws",
        stages=[
            StageResult("handshake", 0.0, 0.05, [hs_conn], loop_lag=lag),
            StageResult("echo", 0.05, 1.0, [echo_conn], [echo_stats], loop_lag=lag, app_echo=True),
            StageResult("idle", 1.0, connections=idle_conns, ping_timeout_s=1.0, **common),
            StageResult("heartbeat", 1.0, connections=keepers, ping_timeout_s=1.0, **common),
        ],
        fingerprints=list(found),
    )


def healthy_paths(name: str) -> st.SearchStrategy[PathResult]:
    """Healthy paths with any idle budget (two decimals), RTT, jitter and fingerprints."""
    return st.builds(
        healthy_path,
        name=st.just(name),
        max_idle_s=centiseconds,
        base_ms=st.floats(min_value=0.1, max_value=150.0),
        jitter=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=5).map(tuple),
        sentinels=st.integers(min_value=0, max_value=2),
        tail_s=st.floats(min_value=0.0, max_value=5.0),
        found=st.lists(fingerprints, max_size=1).map(tuple),
    )


@st.composite
def healthy_runs(draw: st.DrawFn) -> tuple[Observations, PathResult]:
    """A run over healthy paths (maybe with host facts), and one more healthy path to add."""
    names = draw(st.lists(st.sampled_from(["direct", "via-proxy"]), min_size=1, unique=True))
    run = Observations(
        started_at="2026-11-02T09:00:00+00:00",
        duration_s=100.0,
        paths=[draw(healthy_paths(name)) for name in names],
        host=draw(maybe(host_facts())),
    )
    return run, draw(healthy_paths("via-2"))


# --- properties ------------------------------------------------------------------------------


def _report(observations: Observations) -> dict[str, Any]:
    report = build_report(observations, diagnose(observations))
    validate_report(report)
    return report


@SETTINGS
@given(observation_sets())
def test_any_observations_get_a_valid_report(observations: Observations) -> None:
    before = copy.deepcopy(observations)
    verdict = _report(observations)["verdict"]
    assert observations == before  # rules only read
    if verdict["status"] == "healthy":
        assert verdict["culprit"] == "none"
    if verdict["culprit"] == "none":
        assert verdict["status"] != "problem"
    if observations.interrupted:
        assert verdict["status"] != "healthy"


@SETTINGS
@given(healthy_runs())
def test_a_healthy_path_never_turns_a_healthy_verdict_into_a_problem(
    run: tuple[Observations, PathResult],
) -> None:
    observations, extra = run
    before = _report(observations)["verdict"]
    if before["status"] != "healthy":
        return  # host facts alone may decide a problem; the property is about healthy runs
    observations.paths.append(extra)
    after = _report(observations)["verdict"]
    assert after["status"] != "problem", after


@settings(SETTINGS, max_examples=30)
@given(healthy_runs())
def test_healthy_runs_are_healthy(run: tuple[Observations, PathResult]) -> None:
    # Guards the property above against vacuity: without host facts, these runs are healthy.
    observations, _ = run
    observations.host = None
    assert _report(observations)["verdict"]["status"] == "healthy"


def test_a_healthy_path_with_a_three_decimal_idle_budget_is_healthy() -> None:
    # Found by the property above when max idle was any float; minimal example.
    observations = Observations(
        started_at="2026-11-02T09:00:00+00:00",
        duration_s=5.0,
        paths=[healthy_path("direct", max_idle_s=2.004)],
    )
    assert _report(observations)["verdict"]["status"] == "healthy"
