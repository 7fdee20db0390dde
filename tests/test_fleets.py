"""Uneven timers end to end: fleets of real nginx nodes, nginx workers, Dante child processes.

One address often hides several timers (``DESIGN.md``, "Many connections, many timers";
``intermediaries.md`` section 8): a load balancer over nodes whose idle timeouts differ, an
nginx whose workers keep their own timers, a SOCKS server whose child processes check theirs on
a whole-second clock. Each scenario probes the direct path and the path through the real
proxies at the same time (``probe_real``, whose ``judge`` also validates every report against
the schema), several times in a row, and checks that the verdict names the shortest repeatable
timeout every time. One summary line per run is printed for the notes (``pytest -s``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from labkit import tolerance
from realproxies import RealProxy, RealRun, dante, fleet, nginx_workers, probe_real, summary_line

pytestmark = pytest.mark.lab

MAX_IDLE_FACTOR = 2.5
"""``--max-idle`` of each scenario: about 2.5 x its longest finite timeout."""
REPEATS = int(os.environ.get("WSDOCTOR_FLEET_REPEATS", "3"))
"""Runs of the two-node fleet, and of Dante (whose child processes make it the most uneven).
``benchmarks/fleets.py`` runs this file with 5 (and more) runs of every scenario."""
SHORT_REPEATS = int(os.environ.get("WSDOCTOR_FLEET_REPEATS", "2"))
"""Runs of the other scenarios (each run costs about 1.2 x its longest timeout + 5 s)."""
DANTE_TICK_S = 1.1
"""Dante compares whole seconds and sweeps per child process: a figure within a tick of T."""
DANTE_AGREEMENT_S = 2 * DANTE_TICK_S
"""Two runs' earliest cuts may sit at either end of that range."""
DANTE_PROCESSES = 8
"""``danted -N``. Dante 1.4.2's I/O child looks for timed-out sessions only after a select()
with nothing to do for a whole second (``mayhavetimedout`` in ``sockd_io.c``): a child that
also carries the probe's heartbeat or traffic connections (pings at least every second) may
keep its idle sessions far past ``timeout.io`` (seen: never cut within 10 s with a 4 s
timeout). With ``-N 2`` some runs cut nothing before 6 s; with 8 server processes most idle
sessions sit in a child without keepers, and every run seen here had its first cut between
T-1 and T s, the rest up to about T+1 s."""
CLUSTER_KEYS = {"idle_s", "low_s", "high_s", "connections", "share", "ended_by"}
DROPS = {"eof", "reset", "close_frame", "silent"}
"""Endings that are a drop (not the probe closing, nor still open at the end)."""

StartFixture = Callable[[Path, int], AbstractAsyncContextManager[RealProxy]]
"""Given a directory for its files and the backend port, a running proxy (or fleet)."""


def near(measured: float | None, expected: float) -> bool:
    """Within the accuracy the brief asks of a measured timeout: max(0.5 s, 5 %)."""
    return measured is not None and abs(measured - expected) <= tolerance(expected)


def drop_ages(run: RealRun, path: str = "via-proxy") -> list[float]:
    """Idle ages (s) at which connections of the idle and heartbeat stages were cut, sorted."""
    found = next(p for p in run.lab.observations.paths if p.name == path)
    return sorted(
        round(c.ending.idle_s, 2)
        for stage in ("idle", "heartbeat")
        for c in (found.stage(stage).connections if found.stage(stage) else [])
        if c.ending.kind in DROPS
    )


def failed_heartbeats(run: RealRun, path: str = "via-proxy") -> list[float]:
    """Intervals (s) of heartbeat connections that were cut all the same."""
    found = next(p for p in run.lab.observations.paths if p.name == path)
    stage = found.stage("heartbeat")
    return sorted(
        c.interval_s
        for c in (stage.connections if stage else [])
        if c.role == "heartbeat" and c.interval_s is not None and c.ending.kind in DROPS
    )


def clusters(run: RealRun) -> list[dict]:
    """The verdict's idle clusters from the JSON report, shortest first, keys checked."""
    found = run.lab.report["verdict"].get("idle_clusters")
    assert isinstance(found, list), f"no idle_clusters in the report's verdict: {found!r}"
    for cluster in found:
        assert set(cluster) >= CLUSTER_KEYS, (sorted(CLUSTER_KEYS - set(cluster)), cluster)
    return sorted(found, key=lambda c: c["idle_s"])


def finding_evidence(run: RealRun, code: str) -> str:
    """All evidence lines of the finding ``code`` as one text; fails when there is none."""
    found = [f for f in run.lab.diagnosis.findings if f.code == code]
    assert found, f"no {code} finding; codes: {sorted(run.lab.finding_codes())}{context(run)}"
    return "\n".join(line for f in found for line in f.evidence)


def evidence_figures(text: str) -> list[float]:
    """Every figure written like ``2.0 s`` in an evidence text."""
    return [float(x) for x in re.findall(r"(\d+\.\d) s", text)]


def heartbeat_figures(run: RealRun) -> list[float]:
    """Every ``every X s`` interval the verdict's remedies recommend.

    Text in parentheses is left out: it reports what was seen ("a connection pinging every
    2 s outlived the drop; one beating every 4 s was cut"), not what to do.
    """
    text = re.sub(r"\([^)]*\)", "", " ".join(run.lab.verdict.remedies))
    return [float(x) for x in re.findall(r"every (\d+(?:\.\d+)?) s", text)]


def context(run: RealRun) -> str:
    """What to quote when a check fails: verdict, clusters, findings, drop ages, proxy logs."""
    findings = "\n".join(f"  {f.code}: {f.evidence}" for f in run.lab.diagnosis.findings)
    return (
        f"\nsummary: {run.lab.verdict.summary}"
        f"\nremedies: {run.lab.verdict.remedies}"
        f"\nidle_clusters: {run.lab.report['verdict'].get('idle_clusters')}"
        f"\nvia-proxy drops at idle s: {drop_ages(run)}; direct: {drop_ages(run, 'direct')}"
        f"\nfindings:\n{findings}\nproxy logs (tail):\n{run.proxy_log[-3000:]}"
    )


def assert_proxy_idle_timeout(run: RealRun, figure_s: float) -> None:
    """The verdict blames the proxy hop's idle timeout, at ``figure_s``; direct survived."""
    verdict = run.lab.verdict
    why = context(run)
    assert verdict.status == "problem", why
    assert verdict.culprit == "proxy_idle_timeout", why
    assert verdict.hop == "proxy", why
    assert near(verdict.idle_timeout_s, figure_s), why
    assert drop_ages(run, "direct") == [], why


def assert_clusters_at(run: RealRun, expected_s: Sequence[float]) -> None:
    found = clusters(run)
    figures = [c["idle_s"] for c in found]
    assert len(found) == len(expected_s), (figures, expected_s, context(run))
    for figure, expected in zip(found, expected_s):
        assert near(figure["idle_s"], expected), (figures, expected_s, context(run))


def assert_agree(runs: Sequence[RealRun], slack_s: float | None = None) -> None:
    """Every run names the same culprit and hop, and figures within the tolerance."""
    verdicts = [r.lab.verdict for r in runs]
    assert len({(v.culprit, v.hop) for v in verdicts}) == 1, [(v.culprit, v.hop) for v in verdicts]
    figures = [v.idle_timeout_s for v in verdicts]
    assert None not in figures, figures
    allowed = slack_s if slack_s is not None else tolerance(min(figures))
    assert max(figures) - min(figures) <= allowed, (figures, allowed)


def run_repeatedly(
    tmp_path: Path,
    case: str,
    start: StartFixture,
    longest_s: float,
    configured_s: float,
    repeats: int,
    check: Callable[[RealRun], None],
) -> list[RealRun]:
    """Probe ``repeats`` times, each with fresh proxies in their own directory; check each."""
    runs = []
    for attempt in range(1, repeats + 1):
        root = tmp_path / f"run-{attempt}"
        root.mkdir()
        run = probe_real(
            lambda port, root=root: start(root, port), max_idle_s=MAX_IDLE_FACTOR * longest_s
        )
        print(
            f"\n{summary_line(f'{case} run {attempt}/{repeats}', run, configured_s)} "
            f"via-proxy drops at idle s={drop_ages(run)}"
        )
        check(run)
        runs.append(run)
    return runs


@pytest.mark.parametrize(
    ("timeouts", "repeats"),
    [
        pytest.param([2.0, 4.0], REPEATS, id="two-nodes-2s-4s"),
        pytest.param([1.5, 3.0, 4.5], SHORT_REPEATS, id="three-nodes-1.5s-3s-4.5s"),
    ],
)
def test_fleet_of_uneven_timeouts(tmp_path: Path, timeouts: list[float], repeats: int) -> None:
    """Nodes with different timeouts: the figure is the shortest, every node a cluster."""

    def check(run: RealRun) -> None:
        assert_proxy_idle_timeout(run, timeouts[0])
        figures = evidence_figures(finding_evidence(run, "mixed_idle_timeouts"))
        for expected in timeouts:
            assert any(near(f, expected) for f in figures), (expected, figures, context(run))
        assert_clusters_at(run, timeouts)

    runs = run_repeatedly(
        tmp_path,
        f"fleet nginx proxy_read_timeout {'+'.join(f'{t:g}s' for t in timeouts)} behind haproxy",
        lambda root, port: fleet(root, port, read_timeouts=timeouts),
        longest_s=timeouts[-1],
        configured_s=timeouts[0],
        repeats=repeats,
        check=check,
    )
    assert_agree(runs)


def test_fleet_with_one_node_without_timeout(tmp_path: Path) -> None:
    """One node cuts at 2 s, the other never: still an idle timeout, never healthy."""

    def check(run: RealRun) -> None:
        assert_proxy_idle_timeout(run, 2.0)
        evidence = finding_evidence(run, "mixed_idle_timeouts")
        assert "survived" in evidence, (evidence, context(run))
        assert_clusters_at(run, [2.0])

    runs = run_repeatedly(
        tmp_path,
        "fleet nginx proxy_read_timeout 2s+none behind haproxy",
        lambda root, port: fleet(root, port, read_timeouts=[2.0, None]),
        longest_s=2.0,
        configured_s=2.0,
        repeats=SHORT_REPEATS,
        check=check,
    )
    assert_agree(runs)


def test_nginx_workers_keep_their_own_timers(tmp_path: Path) -> None:
    """nginx with 2 workers (``reuseport``), 3 s: one timeout, one cluster."""

    def check(run: RealRun) -> None:
        assert_proxy_idle_timeout(run, 3.0)
        assert_clusters_at(run, [3.0])

    runs = run_repeatedly(
        tmp_path,
        "nginx 2 workers reuseport proxy_read_timeout 3s",
        lambda root, port: nginx_workers(root, port, read_timeout_s=3.0, workers=2),
        longest_s=3.0,
        configured_s=3.0,
        repeats=SHORT_REPEATS,
        check=check,
    )
    assert_agree(runs)


def test_dante_children_on_a_whole_second_clock(tmp_path: Path) -> None:
    """Dante SOCKS5, ``timeout.io: 4``, several server processes.

    Dante compares whole seconds (a session expires 3 to 4 s after its last byte) and looks for
    expired sessions only when a worker has been quiet for a second, so its cuts spread from
    T - 1 to about T + 1.5 s, and in some runs nothing is cut before T + 1. The figure is the
    earliest cut of the run: within a tick of T, and every heartbeat advised stays below T - 1,
    the earliest Dante can ever cut.
    """

    def check(run: RealRun) -> None:
        verdict = run.lab.verdict
        why = context(run)
        assert verdict.status != "healthy", why
        assert verdict.culprit != "network_instability", why
        assert verdict.culprit == "proxy_idle_timeout", why
        assert verdict.hop == "proxy", why
        figure = verdict.idle_timeout_s
        assert figure is not None and 4.0 - DANTE_TICK_S <= figure <= 4.0 + DANTE_TICK_S, why
        assert drop_ages(run, "direct") == [], why
        beats = heartbeat_figures(run)
        assert beats, why
        for beat in beats:
            assert beat < figure and beat < 4.0 - 1.0, (beat, why)
            assert all(beat < failed for failed in failed_heartbeats(run)), (beat, why)

    runs = run_repeatedly(
        tmp_path,
        f"dante (SOCKS5) timeout.io 4, -N {DANTE_PROCESSES}",
        lambda root, port: dante(root, port, io_timeout_s=4.0, processes=DANTE_PROCESSES),
        longest_s=4.0,
        configured_s=4.0,
        repeats=REPEATS,
        check=check,
    )
    assert_agree(runs, slack_s=DANTE_AGREEMENT_S)
