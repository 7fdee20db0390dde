"""Every diagnosis rule, judged on hand-written observations: no network, no clock.

Each case asserts the verdict's status, culprit and hop, the measured figure within
max(0.5 s, 5 %) of the truth built into the observations, and that the remedies are concrete:
they name a setting, or a heartbeat interval about half the timeout.
"""

from __future__ import annotations

import re

import pytest
from observation_builders import (
    CLOUDFLARE,
    NGINX,
    echo_stage,
    failed_handshake_path,
    fingerprint,
    horizon_for,
    idle_path,
    ladder,
    observations,
)

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import Diagnosis, Finding
from wsdoctor.observations import Ending, Observations

# --- helpers -------------------------------------------------------------------------------

HEARTBEAT_ADVICE = re.compile(r"send an? [^.]*?every (\d+(?:\.\d+)?) s\b")


def tolerance(seconds: float) -> float:
    return max(0.5, 0.05 * seconds)


def assert_measured(measured: float | None, truth: float) -> None:
    assert measured is not None, "no figure measured"
    assert abs(measured - truth) <= tolerance(truth), f"measured {measured}, truth {truth}"


def finding(diagnosis: Diagnosis, code: str) -> Finding:
    found = [f for f in diagnosis.findings if f.code == code]
    assert found, f"no {code!r} finding in {[f.code for f in diagnosis.findings]}"
    return found[0]


def codes(diagnosis: Diagnosis) -> set[str]:
    return {f.code for f in diagnosis.findings}


def evidence(diagnosis: Diagnosis, code: str) -> str:
    return "\n".join(finding(diagnosis, code).evidence)


def assert_heartbeat_about_half(remedies: list[str], timeout_s: float) -> None:
    """Some remedy advises a heartbeat, and every advised interval is about half the timeout."""
    intervals = [float(m.group(1)) for r in remedies for m in HEARTBEAT_ADVICE.finditer(r)]
    assert intervals, f"no heartbeat interval advised in {remedies}"
    for interval in intervals:
        assert 0.4 * timeout_s <= interval <= 0.6 * timeout_s, (interval, timeout_s)


def assert_names_setting(remedies: list[str], *settings: str) -> None:
    text = "\n".join(remedies)
    assert any(s in text for s in settings), f"none of {settings} in {remedies}"


def run(*paths, interrupted: bool = False) -> Diagnosis:
    return diagnose(observations(*paths, interrupted=interrupted))


# --- healthy -------------------------------------------------------------------------------


def test_healthy_single_path() -> None:
    diagnosis = run(idle_path())
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == ("healthy", "none", None)
    assert verdict.idle_timeout_s is None and verdict.lifetime_cap_s is None
    assert "120 s" in evidence(diagnosis, "idle_ok")
    assert not [f for f in diagnosis.findings if f.severity != "info"]
    assert_names_setting(verdict.remedies, "--max-idle")


def test_healthy_on_every_path_of_a_comparison() -> None:
    verdict = run(idle_path("direct"), idle_path("via-proxy")).verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == ("healthy", "none", None)


# --- handshake -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "status", "culprit", "advice"),
    [
        ("dns", None, "unreachable", "host name"),
        ("refused", None, "unreachable", "listening"),
        ("timeout", None, "unreachable", "firewall"),
        ("tls", None, "tls_error", "--cacert"),
        ("http_status", 401, "handshake_rejected", "Authorization"),
        ("http_status", 403, "handshake_rejected", "--origin"),
        ("http_status", 404, "handshake_rejected", "URL path"),
        ("http_status", 200, "upgrade_blocked", "proxy_http_version 1.1"),
        ("http_status", 400, "upgrade_blocked", "proxy_http_version 1.1"),
        ("http_status", 426, "upgrade_blocked", "proxy_set_header Upgrade"),
        ("http_status", 505, "upgrade_blocked", "proxy_http_version 1.1"),
        ("upgrade_not_performed", None, "upgrade_blocked", "Upgrade/Connection"),
        ("http_status", 429, "rate_limit", "backoff"),
        ("http_status", 503, "server_limits", "ulimit -n"),
    ],
)
def test_handshake_failures(reason: str, status: int | None, culprit: str, advice: str) -> None:
    diagnosis = run(failed_handshake_path("direct", reason, status))  # type: ignore[arg-type]
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == ("problem", culprit, None)
    assert verdict.confidence >= 0.6
    assert finding(diagnosis, culprit).severity == "error"
    if status is not None:
        assert f"HTTP {status}" in evidence(diagnosis, culprit)
    assert verdict.idle_timeout_s is None
    assert_names_setting(verdict.remedies, advice)


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_place_the_fault_behind_the_proxy(status: int) -> None:
    diagnosis = run(failed_handshake_path("via-proxy", "http_status", status))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == ("problem", "unreachable", "proxy")
    assert f"HTTP {status}" in verdict.summary
    assert_names_setting(verdict.remedies, "backend")


def test_505_names_the_missing_nginx_setting() -> None:
    diagnosis = run(failed_handshake_path("direct", "http_status", 505))
    assert "proxy_http_version 1.1" in evidence(diagnosis, "upgrade_blocked")


def test_upgrade_blocked_on_the_proxied_path_is_placed_at_the_proxy() -> None:
    verdict = run(failed_handshake_path("via-proxy", "http_status", 426)).verdict
    assert (verdict.culprit, verdict.hop) == ("upgrade_blocked", "proxy")


# --- idle drops on one path ----------------------------------------------------------------


def test_fin_at_60_s_without_fingerprint() -> None:
    diagnosis = run(idle_path(drop_at=60.0, how="eof"))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == ("problem", "proxy_idle_timeout", None)
    assert_measured(verdict.idle_timeout_s, 60.0)
    text = evidence(diagnosis, "proxy_idle_timeout")
    assert "FIN" in text
    assert re.search(r"matches .*nginx .*default 60 s", text)
    assert "wsdoctor compare" in text  # the hop is not placed on one path alone
    assert verdict.confidence <= 0.6
    assert_names_setting(verdict.remedies, "proxy_read_timeout", "idle_timeout.timeout_seconds")
    assert_heartbeat_about_half(verdict.remedies, 60.0)


def test_fin_at_60_s_behind_a_recognised_nginx() -> None:
    unplaced = run(idle_path(drop_at=60.0)).verdict
    diagnosis = run(idle_path(drop_at=60.0, fingerprints=[NGINX]))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "proxy_idle_timeout",
        "proxy",
    )
    assert_measured(verdict.idle_timeout_s, 60.0)
    assert "proxy_read_timeout" in verdict.remedies[0]
    assert "nginx recognised from server" in evidence(diagnosis, "proxy_idle_timeout")
    assert verdict.confidence > unplaced.confidence
    assert_heartbeat_about_half(verdict.remedies, 60.0)


def test_rst_drop_is_an_idle_timeout_too() -> None:
    diagnosis = run(idle_path(drop_at=60.0, how="reset"))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == ("problem", "proxy_idle_timeout", None)
    assert_measured(verdict.idle_timeout_s, 60.0)
    assert "TCP RST" in evidence(diagnosis, "proxy_idle_timeout")
    assert_names_setting(verdict.remedies, "proxy_read_timeout", "timeout tunnel")
    assert_heartbeat_about_half(verdict.remedies, 60.0)


def test_close_frame_from_the_server_is_a_server_idle_timeout() -> None:
    diagnosis = run(idle_path(drop_at=45.0, how="close_frame", close_code=1000))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "server_idle_timeout",
        "server",
    )
    assert_measured(verdict.idle_timeout_s, 45.0)
    assert "code 1000" in evidence(diagnosis, "server_idle_timeout")
    assert_names_setting(verdict.remedies, "server's idle timeout")
    assert_heartbeat_about_half(verdict.remedies, 45.0)


def test_drop_timed_off_ladder_still_measured_from_sentinels() -> None:
    # 37.3 s falls between two rungs: sentinels and the rungs above it time it exactly.
    verdict = run(idle_path(drop_at=37.3)).verdict
    assert_measured(verdict.idle_timeout_s, 37.3)


# --- silent drops (NAT, firewall, L4 load balancer) ----------------------------------------


def test_black_hole_between_rungs_11_and_12_1() -> None:
    assert {11.0, 12.1} <= set(ladder(120.0))
    diagnosis = run(idle_path(drop_at=11.5, how="silent"))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "nat_firewall_idle_drop",
        "network",
    )
    assert verdict.idle_timeout_s is not None
    assert 11.0 <= verdict.idle_timeout_s <= 12.1
    assert_measured(verdict.idle_timeout_s, 11.5)
    text = evidence(diagnosis, "nat_firewall_idle_drop")
    assert "black hole" in text
    assert "11.0 s" in text and "12.1 s" in text  # the bracket: last answered, first unanswered
    assert "RST" not in text.replace("FIN or RST", "")
    assert_names_setting(verdict.remedies, "tcp.idle_timeout.seconds", "conntrack")
    assert_heartbeat_about_half(verdict.remedies, 11.5)


def test_black_hole_answering_data_with_rst() -> None:
    diagnosis = run(idle_path(drop_at=11.5, how="silent", reset_on_send=True))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "nat_firewall_idle_drop",
        "network",
    )
    assert verdict.idle_timeout_s is not None
    assert 11.0 <= verdict.idle_timeout_s <= 12.1
    assert "answered by a TCP RST" in evidence(diagnosis, "nat_firewall_idle_drop")
    assert_heartbeat_about_half(verdict.remedies, 11.5)


def test_black_hole_at_350_s_is_measured_within_tolerance() -> None:
    # An AWS NLB or NAT gateway: silent at 350 s, rungs 10 % apart up there.
    diagnosis = run(idle_path(drop_at=350.0, how="silent", max_idle_s=400.0))
    verdict = diagnosis.verdict
    assert (verdict.culprit, verdict.hop) == ("nat_firewall_idle_drop", "network")
    assert_measured(verdict.idle_timeout_s, 350.0)
    assert_names_setting(verdict.remedies, "tcp.idle_timeout.seconds")
    assert_heartbeat_about_half(verdict.remedies, 350.0)


# --- keepers: lifetime caps, ignored pings, one-way traffic --------------------------------


def test_lifetime_cap_when_heartbeats_and_traffic_die_at_the_same_age() -> None:
    diagnosis = run(idle_path(drop_at=5.0, keepers_die=True))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == ("problem", "lifetime_cap", None)
    assert_measured(verdict.lifetime_cap_s, 5.0)
    assert verdict.idle_timeout_s is None
    assert "traffic-1 (messages every 1 s) ended at age 5.0 s" in evidence(
        diagnosis, "lifetime_cap"
    )
    assert_names_setting(verdict.remedies, "timeoutSec", "stream_timeout", "--timeout")
    assert "Heartbeats will not help" in verdict.remedies[0]


def test_lifetime_cap_by_close_frame_is_placed_at_the_server() -> None:
    verdict = run(idle_path(drop_at=30.0, how="close_frame", keepers_die=True)).verdict
    assert (verdict.culprit, verdict.hop) == ("lifetime_cap", "server")
    assert_measured(verdict.lifetime_cap_s, 30.0)


def test_protocol_pings_ignored_by_the_idle_timer() -> None:
    diagnosis = run(idle_path(drop_at=60.0, heartbeats_die=True, fingerprints=[NGINX]))
    verdict = diagnosis.verdict
    ignored = finding(diagnosis, "pings_ignored")
    assert ignored.severity == "warning"
    assert "traffic-1 survived" in ignored.evidence[0]
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "proxy_idle_timeout",
        "proxy",
    )
    assert_measured(verdict.idle_timeout_s, 60.0)
    heartbeat_remedy = verdict.remedies[-1]
    assert "application heartbeat" in heartbeat_remedy
    assert "WebSocket ping" not in heartbeat_remedy
    assert_heartbeat_about_half(verdict.remedies, 60.0)


def test_client_messages_alone_do_not_reset_the_timer() -> None:
    diagnosis = run(idle_path(drop_at=60.0, traffic_dies=True))
    assert finding(diagnosis, "one_way_traffic").severity == "warning"
    assert "pings_ignored" not in codes(diagnosis)
    assert diagnosis.verdict.culprit == "proxy_idle_timeout"


def test_keepers_that_outlive_the_drop_raise_confidence() -> None:
    with_keepers = run(idle_path(drop_at=60.0, fingerprints=[NGINX])).verdict
    without = run(
        idle_path(drop_at=60.0, fingerprints=[NGINX], heartbeats=[], traffic_interval_s=None)
    ).verdict
    assert without.culprit == with_keepers.culprit == "proxy_idle_timeout"
    assert with_keepers.confidence > without.confidence
    remedy = with_keepers.remedies[-1]
    assert "every 30 s: half of the 60 s" in remedy
    assert "pinging every 32 s already outlived the drop" in remedy


# --- two paths: direct and via-proxy -------------------------------------------------------


def test_drop_only_on_the_proxied_path_is_the_proxy() -> None:
    diagnosis = run(
        idle_path("direct", until=horizon_for(60.0)), idle_path("via-proxy", drop_at=60.0)
    )
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "proxy_idle_timeout",
        "proxy",
    )
    assert_measured(verdict.idle_timeout_s, 60.0)
    assert "direct: no idle drop" in evidence(diagnosis, "proxy_idle_timeout")
    assert_names_setting(verdict.remedies, "proxy_read_timeout")
    assert_heartbeat_about_half(verdict.remedies, 60.0)


def test_same_drop_on_both_paths_is_the_server() -> None:
    diagnosis = run(idle_path("direct", drop_at=60.0), idle_path("via-proxy", drop_at=60.2))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "server_idle_timeout",
        "server",
    )
    assert_measured(verdict.idle_timeout_s, 60.0)
    assert "every path drops at the same idle time" in evidence(diagnosis, "server_idle_timeout")
    assert_heartbeat_about_half(verdict.remedies, 60.0)


def test_drop_only_behind_a_cdn_is_a_cdn_release() -> None:
    diagnosis = run(
        idle_path("direct", until=horizon_for(100.0)),
        idle_path("via-proxy", drop_at=100.0, fingerprints=[CLOUDFLARE]),
    )
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "cdn_idle_release",
        "proxy",
    )
    assert_measured(verdict.idle_timeout_s, 100.0)
    assert "Cloudflare" in evidence(diagnosis, "cdn_idle_release")
    assert_names_setting(verdict.remedies, "Proxy Read Timeout")
    assert_heartbeat_about_half(verdict.remedies, 100.0)


def test_cdn_fingerprint_on_a_single_path() -> None:
    verdict = run(idle_path("direct", drop_at=100.0, fingerprints=[CLOUDFLARE])).verdict
    assert (verdict.culprit, verdict.hop) == ("cdn_idle_release", "proxy")


def test_server_fingerprint_does_not_place_a_proxy() -> None:
    uvicorn = fingerprint("uvicorn", "server", "server", "uvicorn")
    verdict = run(idle_path(drop_at=60.0, fingerprints=[uvicorn])).verdict
    assert (verdict.culprit, verdict.hop) == ("proxy_idle_timeout", None)


def _unreachable_direct() -> Observations:
    return observations(
        failed_handshake_path("direct", "refused"), idle_path("via-proxy", drop_at=60.0)
    )


def test_unreachable_direct_path_cannot_separate_the_proxy_hop() -> None:
    diagnosis = diagnose(_unreachable_direct())
    assert diagnosis.verdict.hop != "proxy"
    assert diagnosis.verdict.status == "problem"
    text = evidence(diagnosis, "proxy_idle_timeout")
    assert "could not be reached" in text and "could not be separated" in text
    assert "unreachable" in codes(diagnosis)


def test_unreachable_direct_path_does_not_hide_the_measured_drop() -> None:
    verdict = diagnose(_unreachable_direct()).verdict
    assert (verdict.culprit, verdict.hop) == ("proxy_idle_timeout", None)
    assert_measured(verdict.idle_timeout_s, 60.0)


def test_proxy_cutting_before_the_server_is_reported() -> None:
    diagnosis = run(idle_path("direct", drop_at=90.0), idle_path("via-proxy", drop_at=60.0))
    verdict = diagnosis.verdict
    assert (verdict.culprit, verdict.hop) == ("proxy_idle_timeout", "proxy")
    assert_measured(verdict.idle_timeout_s, 60.0)
    assert "run `wsdoctor compare`" not in "\n".join(
        line for f in diagnosis.findings for line in f.evidence
    )


# --- server heartbeat ----------------------------------------------------------------------


def test_server_heartbeat_is_reported() -> None:
    diagnosis = run(idle_path(max_idle_s=30.0, server_ping_interval_s=5.0))
    heartbeat = finding(diagnosis, "server_heartbeat")
    assert heartbeat.severity == "info"
    assert "every 5.0 s" in heartbeat.evidence[0]
    assert "longer than 5.0 s cannot show" in heartbeat.evidence[1]
    assert heartbeat.remedy is not None
    assert diagnosis.verdict.culprit == "none"


def test_no_server_heartbeat_finding_without_server_pings() -> None:
    assert "server_heartbeat" not in codes(run(idle_path(max_idle_s=30.0)))


# --- instability ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(lambda: echo_stage(pings=20, lost=3), id="3-of-20-lost"),
        pytest.param(lambda: echo_stage(p50_ms=1.0, max_ms=1900.0, stalls=2), id="stalls-1900ms"),
    ],
)
def test_network_instability_when_nothing_else_is_wrong(echo) -> None:
    diagnosis = run(idle_path(max_idle_s=30.0, echo=echo()))
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit, verdict.hop) == (
        "problem",
        "network_instability",
        "network",
    )
    assert finding(diagnosis, "network_instability").severity == "warning"
    assert_names_setting(verdict.remedies, "mtr")


@pytest.mark.parametrize(
    ("rtt_ms", "echo"),
    [
        pytest.param(1.0, lambda: echo_stage(pings=40, lost=1), id="1-of-40-lost"),
        pytest.param(1.0, lambda: echo_stage(max_ms=200.0), id="stalls-200ms"),
        pytest.param(1.0, lambda: echo_stage(max_ms=1900.0, stalls=1), id="one-spike"),
        pytest.param(200.0, lambda: echo_stage(p50_ms=200.0, max_ms=600.0), id="slow-but-steady"),
    ],
)
def test_no_instability_below_the_thresholds(rtt_ms: float, echo) -> None:
    # The idle stage's pongs take the path's usual round trip too.
    path = idle_path(max_idle_s=30.0, echo=echo(), rtt_s=rtt_ms / 1000, ping_timeout_s=2.9)
    diagnosis = run(path)
    assert "network_instability" not in codes(diagnosis)
    assert diagnosis.verdict.status == "healthy"


def test_drop_not_tied_to_idle_or_age_is_instability() -> None:
    path = idle_path(max_idle_s=30.0)
    heartbeat = path.stage("heartbeat")
    assert heartbeat is not None
    heartbeat.connections[0].ending = Ending(kind="reset", age_s=7.3, idle_s=0.4, detail="TCP RST")
    diagnosis = run(path)
    assert diagnosis.verdict.culprit == "network_instability"
    assert "not tied to idle time or age" in evidence(diagnosis, "network_instability")


def test_idle_timeout_outranks_instability() -> None:
    diagnosis = run(idle_path(drop_at=60.0, echo=echo_stage(lost=3)))
    assert "network_instability" in codes(diagnosis)
    assert diagnosis.verdict.culprit == "proxy_idle_timeout"


# --- the probe must not be the fault -------------------------------------------------------


def test_probe_lag_casts_doubt_on_a_silent_drop() -> None:
    calm = run(idle_path(drop_at=11.5, how="silent")).verdict
    diagnosis = run(idle_path(drop_at=11.5, how="silent", lag_ms=900.0))
    verdict = diagnosis.verdict
    assert verdict.status == "inconclusive"
    assert verdict.confidence < calm.confidence
    stalled = finding(diagnosis, "probe_stalled")
    assert "900 ms" in stalled.evidence[0] and "1 s" in stalled.evidence[0]
    assert "stalled" in verdict.summary


def test_small_probe_lag_is_no_doubt() -> None:
    verdict = run(idle_path(drop_at=11.5, how="silent", lag_ms=100.0)).verdict
    assert verdict.status == "problem"
    assert verdict.culprit == "nat_firewall_idle_drop"


def test_probe_lag_does_not_discard_a_fin_timed_drop() -> None:
    verdict = run(idle_path(drop_at=60.0, lag_ms=900.0, fingerprints=[NGINX])).verdict
    assert verdict.status == "problem"
    assert verdict.culprit == "proxy_idle_timeout"


# --- interrupted runs ----------------------------------------------------------------------


def test_interrupted_before_any_drop_is_inconclusive() -> None:
    diagnosis = run(idle_path(until=30.0, interrupted=True), interrupted=True)
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit) == ("inconclusive", "none")
    assert "interrupted" in verdict.summary
    assert verdict.confidence == 0.0
    assert_names_setting(verdict.remedies, "--max-idle")


def test_interrupted_after_the_drop_was_timed_is_still_a_problem() -> None:
    diagnosis = run(idle_path(drop_at=20.0, until=22.5, interrupted=True), interrupted=True)
    verdict = diagnosis.verdict
    assert (verdict.status, verdict.culprit) == ("problem", "proxy_idle_timeout")
    assert_measured(verdict.idle_timeout_s, 20.0)
    assert_heartbeat_about_half(verdict.remedies, 20.0)


# --- precedence ----------------------------------------------------------------------------


def test_every_judgement_that_names_a_culprit_has_a_level_in_the_precedence_table() -> None:
    from observation_builders import catalogue

    from wsdoctor.diagnosis.precedence import PRECEDENCE
    from wsdoctor.diagnosis.rules import RULES

    levels = {kind for level in PRECEDENCE for kind in level}
    seen = set()
    for build in catalogue().values():
        obs = build()
        for rule in RULES:
            for judgement in rule.judge(obs):
                if judgement.culprit is not None:
                    assert judgement.kind in levels, (rule.code, judgement.finding.code)
                    seen.add(judgement.kind)
    assert {"handshake_failed", "idle_timeout", "lifetime_cap", "healthy"} <= seen
