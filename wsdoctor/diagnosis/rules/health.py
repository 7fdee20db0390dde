"""Health rules: healthy paths, server heartbeats, instability, and the probe's own lag."""

from __future__ import annotations

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.catalogue import finding
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.diagnosis.rules.limits import rtt_samples_outside_stability, stability_figures
from wsdoctor.observations import Observations, PathResult
from wsdoctor.stats import percentile
from wsdoctor.units import seconds as _seconds

LOOP_LAG_SUSPECT_FRACTION = 0.5
INSTABILITY_LOSS_FRACTION = 0.05
INSTABILITY_STALL_EXTRA_MS = 250.0
INSTABILITY_STALL_FACTOR = 5.0
INSTABILITY_MIN_STALLS = 2


def judge_healthy(obs: Observations) -> list[Judgement]:
    """Every path survived every planned idle period: name what was proven."""
    out = []
    for path in obs.paths:
        idle = path.stage("idle")
        if idle is None or facts.idle_analysis(path).cut_idle():
            continue
        survived = facts.idle_survived_s(path)
        if survived is None:
            continue
        complete = idle.max_idle_s is not None and survived >= idle.max_idle_s
        evidence = [f"{path.name}: idle connections survived up to {_seconds(survived)}"]
        for interval, what in (
            (facts.server_ping_interval(path), "pinged"),
            (facts.server_push_interval(path), "sent a message"),
        ):
            if interval is not None and interval < survived:
                evidence.append(
                    f"{path.name}: the server {what} every {_seconds(interval)}, so no "
                    "connection was idle longer than that; longer idle timeouts stay hidden"
                )
        out.append(
            Judgement(
                finding("idle_ok", evidence),
                culprit="none" if complete else None,
                confidence=0.8,
                kind="healthy",
                summary=f"No drop: idle connections survived {_seconds(survived)} on "
                f"{', '.join(p.name for p in obs.paths)}"
                + (" (the server's own traffic kept them busy)." if len(evidence) > 1 else "."),
                remedies=[
                    "Nothing to fix up to this idle time; probe longer with --max-idle if "
                    "your connections stay quiet for longer."
                ],
            )
        )
    if len(out) < len(obs.paths):
        for j in out:
            j.culprit = None
    return out


def _server_ping_judgement(path: PathResult, interval: float) -> Judgement:
    return Judgement(
        finding(
            "server_heartbeat",
            [
                f"{path.name}: the server sent protocol pings every {_seconds(interval)}",
                f"idle timeouts longer than {_seconds(interval)} cannot show on this path",
            ],
        )
    )


def judge_server_pings(obs: Observations) -> list[Judgement]:
    """A server heartbeat (pings or pushed messages) hides longer idle timeouts: report it."""
    out = []
    for path in obs.paths:
        interval = facts.server_ping_interval(path)
        if interval is not None:
            out.append(_server_ping_judgement(path, interval))
        push = facts.server_push_interval(path)
        if push is not None:
            out.append(
                Judgement(
                    finding(
                        "server_push",
                        [
                            f"{path.name}: idle sentinels received a message every "
                            f"{_seconds(push)} without sending anything",
                            f"idle timeouts longer than {_seconds(push)} cannot show on this "
                            "path while the server keeps sending",
                        ],
                    )
                )
            )
    return out


def _stability_evidence(path: PathResult) -> tuple[str | None, bool]:
    """The stability stage's figures as one line, and whether they show instability.

    A stall is a stretch without received bytes that overruns the ping cadence by more than
    ``INSTABILITY_STALL_EXTRA_MS``, ``INSTABILITY_STALL_FACTOR`` times the path's base RTT
    (its 10th percentile: stalls cannot inflate it) and the probe's own worst event-loop lag
    in the stage (its stalls are not the network's).
    """
    figures = stability_figures(path)
    if figures is None:
        return None, False
    base_ms = figures.percentile(0.1)
    threshold_ms = max(INSTABILITY_STALL_EXTRA_MS, INSTABILITY_STALL_FACTOR * base_ms)
    lossy = figures.pings > 0 and figures.lost / figures.pings >= INSTABILITY_LOSS_FRACTION
    unstable = (
        len(figures.stalls(threshold_ms)) >= INSTABILITY_MIN_STALLS or lossy or figures.drops > 0
    )
    return f"{path.name}: {figures.describe(threshold_ms)}", unstable


def judge_instability(obs: Observations) -> list[Judgement]:
    """Lost pongs, stalls and drops that neither idle time nor age explain.

    Round trips of the echo and idle stages count stalled samples; the stability stage, whose
    pings overlap, counts stalls as pauses in received bytes and brings the figures.
    """
    out = []
    for path in obs.paths:
        evidence = []
        figures_line, unstable = _stability_evidence(path)
        if figures_line is not None and unstable:
            evidence.append(figures_line)
        samples = sorted(rtt_samples_outside_stability(path))
        if samples:
            p50 = percentile(samples, 0.5)
            threshold = max(p50 + INSTABILITY_STALL_EXTRA_MS, INSTABILITY_STALL_FACTOR * p50)
            stalls = [v for v in samples if v >= threshold]
            if len(stalls) >= INSTABILITY_MIN_STALLS:
                evidence.append(
                    f"{path.name}: {len(stalls)} of {len(samples)} round trips stalled "
                    f"(RTT p50 {p50:.1f} ms, p99 {percentile(samples, 0.99):.1f} ms, "
                    f"max {samples[-1]:.1f} ms)"
                )
        lost, sent = facts.lost_pongs(path)
        if sent and lost / sent >= INSTABILITY_LOSS_FRACTION:
            evidence.append(f"{path.name}: {lost} of {sent} pings got no pong")
        for record in facts.unexpected_drops(path):
            evidence.append(
                f"{path.name}: {record.id} ended by {record.ending.kind} at age "
                f"{_seconds(record.ending.age_s)}, idle "
                f"{_seconds(record.ending.idle_s)}: not tied to idle time or age"
            )
        if evidence and figures_line is not None and not unstable:
            evidence.append(figures_line)
        if evidence:
            out.append(
                Judgement(
                    finding("network_instability", evidence),
                    culprit="network_instability",
                    relies_on_pongs=True,
                    hop="network",
                    confidence=0.6,
                    kind="network_instability",
                    summary=f"The {path.name} path is unstable, not tied to idle time or age: "
                    f"{evidence[0].split(': ', 1)[1]}.",
                    remedies=[
                        "Trace the path for loss (mtr, tcpdump) and fix the lossy link.",
                        "Reconnect with exponential backoff and jitter, and use heartbeats "
                        "to detect dead connections quickly.",
                    ],
                )
            )
    return out


def judge_probe_lag(obs: Observations) -> list[Judgement]:
    """The probe's own event loop stalled long enough to miss pongs: distrust silence."""
    out = []
    for path in obs.paths:
        lag_ms = facts.max_loop_lag_ms(path)
        idle = path.stage("idle")
        budget_s = idle.ping_timeout_s if idle and idle.ping_timeout_s else 1.0
        if lag_ms / 1000 >= LOOP_LAG_SUSPECT_FRACTION * budget_s:
            out.append(
                Judgement(
                    finding(
                        "probe_stalled",
                        [
                            f"{path.name}: event-loop lag up to {lag_ms:.0f} ms against a "
                            f"ping timeout of {budget_s:g} s"
                        ],
                        again="probe",
                    ),
                    casts_doubt=True,
                )
            )
    return out
