"""Idle drops as a distribution: the clustering, and verdicts on fleets with uneven timers.

The pure clustering (``wsdoctor/diagnosis/clusters.py``) is tested on generated mixtures of
timeouts with jitter; the verdict on hand-laid observations of a fleet, laid out the way the
idle stage records them: every connection lands on one node of the fleet (round robin), a
sentinel stays idle, a rung pings once at its idle time and, answered, goes quiet again, so a
node with timeout T ends it T after its pong.
"""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from observation_builders import (
    RTT_S,
    conn,
    handshake_stage,
    heartbeat_intervals,
    ladder,
    observations,
)

from wsdoctor.diagnosis.clusters import DropSample, cluster_drops, link_gap
from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.observations import ConnectionRecord, Ending, Event, PathResult, StageResult
from wsdoctor.report.json_report import build_report, validate_report

SETTINGS = settings(max_examples=60, deadline=None, database=None)


# --- the pure clustering -----------------------------------------------------------------


@st.composite
def mixtures(draw: st.DrawFn) -> list[tuple[float, list[float]]]:
    """One to three timeouts, far enough apart to be told apart, each seen 2 to 8 times with
    up to 0.3 s of lateness (a probe notices a close late, never early)."""
    count = draw(st.integers(1, 3))
    timeouts = [draw(st.floats(1.0, 20.0))]
    for _ in range(count - 1):
        last = timeouts[-1]
        timeouts.append(last + 0.4 + link_gap(last + 0.4) + draw(st.floats(0.1, 30.0)))
    return [
        (t, [t + draw(st.floats(0.0, 0.3)) for _ in range(draw(st.integers(2, 8)))])
        for t in timeouts
    ]


def _samples(mixture: list[tuple[float, list[float]]]) -> list[DropSample]:
    counter = itertools.count()
    return [
        DropSample(id=f"c{next(counter)}", how="eof", idle_s=v, age_s=v, at_s=v)
        for _, values in mixture
        for v in values
    ]


@SETTINGS
@given(mixtures())
def test_a_mixture_of_timeouts_gives_back_its_clusters(mixture) -> None:
    clusters, left = cluster_drops(_samples(mixture))
    assert not left
    assert [c.samples for c in clusters] == [len(values) for _, values in mixture]
    for cluster, (_, values) in zip(clusters, mixture):
        assert cluster.low_s == min(values)
        assert cluster.high_s == max(values)


@SETTINGS
@given(mixtures(), st.data())
def test_the_order_of_samples_does_not_matter(mixture, data) -> None:
    samples = _samples(mixture)
    shuffled = data.draw(st.permutations(samples))
    assert [c.low_s for c in cluster_drops(samples)[0]] == [
        c.low_s for c in cluster_drops(shuffled)[0]
    ]


def test_one_drop_alone_is_no_cluster() -> None:
    clusters, left = cluster_drops([DropSample("a", "eof", 4.0, 4.0)])
    assert clusters == [] and [s.id for s in left] == ["a"]


def test_heartbeats_join_clusters_but_never_found_one() -> None:
    keepers = [DropSample(f"k{i}", "reset", 0.3 + 0.1 * i, 7.0 + i, keeper=True) for i in range(3)]
    clusters, left = cluster_drops(keepers)
    assert clusters == [] and len(left) == 3
    idle = [DropSample(f"s{i}", "eof", 6.0, 6.0) for i in range(2)]
    joined = [DropSample("hb", "eof", 6.02, 8.0, keeper=True)]
    (cluster,), _ = cluster_drops(idle + joined)
    assert cluster.samples == 3 and cluster.founders == 2


def test_drops_that_line_up_on_age_are_judged_on_age() -> None:
    """A lifetime cap: every connection ends at age 4 whatever its idle time."""
    cap = [DropSample(f"r{i}", "eof", 4.0 - 0.5 * i, 4.0 + 0.001 * i) for i in range(7)]
    (cluster,), left = cluster_drops(cap)
    assert cluster.clock == "age" and cluster.samples == 7 and not left
    assert abs(cluster.low_s - 4.0) < 0.01


# --- verdicts on fleets --------------------------------------------------------------------

STAGE_START = 1.6


def _idle_record(
    cid: str, role: str, timeout: float | None, end: float, rung: float | None
) -> ConnectionRecord:
    """One idle connection on a node with ``timeout``, as the probe records it."""
    events: list[Event] = []
    quiet_from = 0.0
    if rung is not None and (timeout is None or rung < timeout) and rung < end:
        events = [
            Event(t=rung, kind="ping_sent"),
            Event(t=round(rung + RTT_S, 4), kind="pong_received", rtt_ms=RTT_S * 1000),
        ]
        quiet_from = rung + RTT_S
    drop = None if timeout is None else quiet_from + timeout
    if drop is not None and drop <= end:
        ending = Ending(kind="eof", age_s=round(drop, 4), idle_s=timeout, detail="TCP FIN")
    else:
        ending = Ending(kind="open", age_s=round(end, 4), idle_s=round(end - quiet_from, 4))
    return conn(cid, role, ending, planned_idle_s=rung, events=events)  # type: ignore[arg-type]


def fleet_path(
    name: str, timeouts: list[float | None], max_idle_s: float, end: float, extra_open: int = 0
) -> PathResult:
    """A path whose connections land round robin on nodes with ``timeouts``."""
    nodes = itertools.cycle(timeouts)
    idle: list[ConnectionRecord] = [
        _idle_record(f"sentinel-{i + 1}", "sentinel", next(nodes), end, None) for i in range(2)
    ]
    idle += [_idle_record(f"rung-{r:g}s", "rung", next(nodes), end, r) for r in ladder(max_idle_s)]
    idle += [
        conn(
            f"sentinel-{3 + i}",
            "sentinel",
            Ending(kind="open", age_s=end, idle_s=end),
        )
        for i in range(extra_open)
    ]
    keepers = [
        conn(
            f"heartbeat-{h:g}s",
            "heartbeat",
            Ending(kind="open", age_s=end, idle_s=0.2),
            interval_s=h,
            events=[e for k in range(1, int(end // h) + 1) for e in _pinged(k * h)],
        )
        for h in heartbeat_intervals(max_idle_s)
        if h < min((t for t in timeouts if t is not None), default=max_idle_s)
    ]
    common = {"started_at": STAGE_START, "duration_s": end, "max_idle_s": max_idle_s}
    return PathResult(
        name=name,
        url=f"ws://{name}.example/",
        stages=[
            handshake_stage(),
            StageResult(name="idle", connections=idle, ping_timeout_s=1.0, **common),
            StageResult(name="heartbeat", connections=keepers, ping_timeout_s=1.0, **common),
        ],
    )


def _pinged(t: float) -> list[Event]:
    return [
        Event(t=t, kind="ping_sent"),
        Event(t=round(t + RTT_S, 4), kind="pong_received", rtt_ms=RTT_S * 1000),
    ]


def healthy_direct(max_idle_s: float, end: float) -> PathResult:
    return fleet_path("direct", [None], max_idle_s, end)


def fleet_verdict(timeouts: list[float | None], max_idle_s: float = 20.0, extra_open: int = 0):
    finite = [t for t in timeouts if t is not None]
    end = min(max_idle_s, max(finite) * 1.1 + 1) if None not in timeouts else max_idle_s
    via = fleet_path("via-proxy", timeouts, max_idle_s, end, extra_open)
    diagnosis = diagnose(observations(healthy_direct(max_idle_s, end), via))
    validate_report(build_report(observations(via), diagnosis))
    return diagnosis


def test_two_node_fleet_names_the_shorter_timeout_and_both_clusters() -> None:
    diagnosis = fleet_verdict([6.0, 12.0], max_idle_s=30.0)
    verdict = diagnosis.verdict
    assert (verdict.culprit, verdict.hop) == ("proxy_idle_timeout", "proxy")
    assert verdict.idle_timeout_s == 6.0
    assert [c.idle_s for c in verdict.idle_clusters] == [6.0, 12.0]
    shares = [c.share for c in verdict.idle_clusters]
    assert 0.4 <= shares[0] <= 0.6 and sum(shares) <= 1.0, shares  # round robin: half each
    mixed = next(f for f in diagnosis.findings if f.code == "mixed_idle_timeouts")
    assert any("6.0 s" in line for line in mixed.evidence)
    assert any("12.0 s" in line for line in mixed.evidence)
    every = re.search(r"every ([\d.]+) s", verdict.remedies[-1])
    assert every and float(every.group(1)) < 6.0


def test_a_node_without_timeout_does_not_make_the_path_healthy() -> None:
    diagnosis = fleet_verdict([4.0, None], max_idle_s=12.0)
    verdict = diagnosis.verdict
    assert verdict.status == "problem" and verdict.culprit == "proxy_idle_timeout"
    assert verdict.idle_timeout_s == 4.0
    mixed = next(f for f in diagnosis.findings if f.code == "mixed_idle_timeouts")
    assert any("survived every drop" in line for line in mixed.evidence)


@SETTINGS
@given(
    st.lists(st.sampled_from([2.0, 3.0, 5.0, 8.0, 13.0]), min_size=1, max_size=3, unique=True),
    st.integers(0, 6),
)
def test_survivors_never_change_the_figure(timeouts: list[float], extra_open: int) -> None:
    """Survivors idle longer than every cluster (a node with no timeout) keep the figure."""
    max_idle = max(timeouts) * 2 + 2
    base = fleet_verdict(sorted(timeouts), max_idle_s=max_idle).verdict
    more = fleet_verdict(sorted(timeouts), max_idle_s=max_idle, extra_open=extra_open).verdict
    assert base.idle_timeout_s == more.idle_timeout_s == min(timeouts)
    assert more.status == "problem" and more.culprit == "proxy_idle_timeout"


def test_one_idle_drop_alone_is_inconclusive_not_healthy() -> None:
    via = fleet_path("via-proxy", [None], 12.0, 12.0)
    idle = via.stage("idle")
    assert idle is not None
    idle.connections[0].ending = Ending(kind="eof", age_s=7.3, idle_s=7.3, detail="TCP FIN")
    diagnosis = diagnose(observations(healthy_direct(12.0, 12.0), via))
    assert diagnosis.verdict.status == "inconclusive"
    assert "idle_drops_unplaced" in {f.code for f in diagnosis.findings}
