"""Idle rules: which hop ends idle connections, after how long, how; lifetime caps."""

from __future__ import annotations

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.catalogue import HEARTBEAT_REMEDY, finding
from wsdoctor.diagnosis.facts import IdleDrop, KeeperFate
from wsdoctor.diagnosis.knowledge import (
    BY_KEY,
    Intermediary,
    heartbeat_interval_for,
    known_defaults_near,
)
from wsdoctor.diagnosis.model import Culprit, Finding, Hop, IdleCluster
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.observations import Fingerprint, Observations, PathResult
from wsdoctor.units import seconds as _seconds

TICK_NOTE_S = 0.3
"""Drops of one cluster spread wider than this: say the timer is checked on a tick."""


def _fingerprint_of(path: PathResult) -> Fingerprint | None:
    ranked = sorted(path.fingerprints, key=lambda f: f.kind != "cdn")
    return next((f for f in ranked if f.kind != "server"), None)


def _drops_alike(a: IdleDrop, b: IdleDrop) -> bool:
    slack = facts.tolerance(max(a.high_s, b.high_s)) + a.uncertainty_s + b.uncertainty_s
    return abs(a.idle_s - b.idle_s) <= slack


def _failed_intervals(path: PathResult, role: str) -> list[float]:
    """Heartbeat (or traffic) intervals whose connection the path cut all the same."""
    stage = path.stage("heartbeat")
    return sorted(
        c.interval_s
        for c in (stage.connections if stage else [])
        if c.role == role
        and c.interval_s is not None
        and (facts.closed_by_peer(c) or c.ending.kind == "silent")
    )


def _heartbeat_remedy(drop: IdleDrop, fates: list[KeeperFate], path: PathResult) -> str:
    """A heartbeat under the shortest drop, and under every interval seen to fail."""
    proven = [f for f in fates if f.outlived and f.role == "heartbeat"]
    app_only = not proven and any(f.outlived and f.role == "traffic" for f in fates)
    failed = _failed_intervals(path, "traffic" if app_only else "heartbeat")
    bound = min([drop.low_s if drop.how == "silent" else drop.idle_s, *failed])
    interval = heartbeat_interval_for(bound)
    kind = "an application heartbeat message" if app_only else "a WebSocket ping"
    notes = []
    if proven:
        best = max(proven, key=lambda f: f.interval_s)
        notes.append(f"a connection pinging every {best.interval_s:g} s already outlived the drop")
    elif app_only:
        notes.append("protocol pings did not keep it alive; application messages did")
    if failed:
        notes.append(f"one beating every {failed[0]:g} s was cut")
    seen = f" (seen here: {'; '.join(notes)})" if notes else ""
    return HEARTBEAT_REMEDY.format(kind=kind, interval=interval, bound=bound, seen=seen)


_HOW = {
    "eof": "TCP FIN without a WebSocket close frame",
    "reset": "TCP RST without a WebSocket close frame",
    "close_frame": "close frame from the server",
    "silent": "pings unanswered, no close, FIN or RST: a black hole",
}
_SHORT_HOW = {"eof": "FIN", "reset": "RST", "close_frame": "close frame", "silent": "silence"}


def _evidence(drop: IdleDrop, fates: list[KeeperFate], path: PathResult) -> list[str]:
    how = _HOW[drop.how]
    if drop.how == "close_frame":
        how += f" (code {', '.join(map(str, drop.codes))})"
    clock = {"idle": "idle", "age": "of age", "moment": "idle or more"}[drop.clock]
    lines = [
        f"{path.name}: {drop.samples} connection(s) ended after {_seconds(drop.idle_s)} "
        f"{clock} by {how}"
    ]
    if drop.how == "silent":
        lines.append(
            f"{path.name}: idle {_seconds(drop.low_s)} answered, idle "
            f"{_seconds(drop.high_s)} did not"
        )
        if drop.reset_on_send:
            lines.append(
                f"{path.name}: the first data sent after the silent period was "
                "answered by a TCP RST (the signature of an AWS NLB or NAT gateway)"
            )
    elif drop.clock == "moment":
        lines.append(
            f"{path.name}: they were cut together at one moment, idle from "
            f"{_seconds(drop.low_s)} to {_seconds(drop.high_s)}: a worker that checks its idle "
            "connections only now and then; the shortest idle it cut is what a heartbeat must "
            "beat"
        )
    elif drop.spread_s >= TICK_NOTE_S:
        lines.append(
            f"{path.name}: closes spread from {_seconds(drop.low_s)} to "
            f"{_seconds(drop.high_s)}: a timer checked on a tick or per worker process; the "
            "earliest is what a heartbeat must beat"
        )
    if drop.survived_rungs:
        lines.append(
            f"{path.name}: idle periods up to {_seconds(drop.survived_rungs[-1])} survived"
        )
    for fate in fates:
        fate_text = (
            "outlived it" if fate.outlived else f"ended at age {_seconds(fate.age_s)} ({fate.how})"
        )
        beat = "pings" if fate.role == "heartbeat" else "messages"
        lines.append(f"{path.name}: {fate.id} ({beat} every {fate.interval_s:g} s) {fate_text}")
    return lines


def _clusters_of(path: PathResult, analysis: facts.IdleAnalysis) -> list[IdleCluster]:
    return [
        IdleCluster(
            path=path.name,
            idle_s=d.idle_s,
            low_s=d.low_s,
            high_s=d.high_s,
            connections=d.samples,
            share=analysis.share(d),
            ended_by=dict(d.ended_by) if d.ended_by else {d.how: d.samples},
            clock=d.clock,
        )
        for d in analysis.drops
    ]


def _lifetime(
    path: PathResult, drop: IdleDrop, fates: list[KeeperFate], hop: Hop | None
) -> Judgement:
    cap = drop.idle_s
    hop_text = f" at the {hop} hop" if hop else ""
    return Judgement(
        finding(
            "lifetime_cap",
            [
                *_evidence(drop, fates, path),
                f"{path.name}: the closes line up on connection age, whatever the connections "
                "carried",
            ],
        ),
        culprit="lifetime_cap",
        hop=hop,
        confidence=0.85 if len(fates) >= 2 else 0.65,
        kind="lifetime_cap",
        lifetime_cap_s=cap,
        summary=f"Connections on the {path.name} path are closed at about {_seconds(cap)} of "
        f"age{hop_text} even while pings and messages flow: a lifetime cap, not an idle "
        "timeout.",
        remedies=[
            "Heartbeats will not help. Raise the maximum connection duration where it is set "
            "(server max age, GCP backend service timeoutSec, Cloud Run --timeout, Caddy "
            "stream_timeout, API Gateway's fixed 2 h).",
            f"Have clients reconnect before {_seconds(cap)} with exponential backoff and jitter, "
            "and resume their state.",
        ],
    )


def _known_match(path: PathResult, drop: IdleDrop) -> tuple[str, Intermediary | None]:
    """How the measured timeout compares with what is known of the recognised intermediary."""
    measured = drop.idle_s
    slack = facts.tolerance(measured) + drop.uncertainty_s
    fingerprint = _fingerprint_of(path)
    recognised = BY_KEY.get(fingerprint.name) if fingerprint else None
    if recognised is not None and recognised.idle_timeout_s is not None:
        default = recognised.idle_timeout_s
        if abs(default - measured) <= slack:
            return (
                f"matches {recognised.name} {recognised.setting} default {default:g} s",
                recognised,
            )
        return (
            f"{recognised.name} is on the path but its default is {default:g} s: "
            f"{recognised.setting} was set to about {_seconds(measured)}",
            recognised,
        )
    if recognised is not None:
        return f"{recognised.name} is on the path", recognised
    known = known_defaults_near(measured, slack)
    if not known:
        return "", None
    names = ", ".join(f"{k.name} {k.setting} default {k.idle_timeout_s:g} s" for k in known)
    return f"matches {names}", known[0]


def _where_and_finding(
    culprit: Culprit, hop: Hop | None, intermediary: Intermediary | None, evidence: list[str]
) -> tuple[str, Finding]:
    """Where the drop happens (for the summary), and the finding with the fix that fits."""
    if culprit == "nat_firewall_idle_drop":
        where = "a NAT, firewall or L4 load balancer on the path forgets idle connections"
        return where, finding(culprit, evidence)
    if culprit == "server_idle_timeout":
        return "the server closes idle connections", finding(culprit, evidence)
    where = {
        "cdn_idle_release": "the CDN edge releases idle connections",
    }.get(culprit, "an intermediary closes idle connections")
    if hop is None and intermediary is None:
        where = (
            "something on the path closes idle connections without a close frame, most likely "
            "a proxy or load balancer, possibly the server itself"
        )
        return where, finding(f"{culprit}.unplaced", evidence)
    if intermediary is None:
        return where, finding(culprit, evidence)
    known = finding(
        f"{culprit}.known",
        evidence,
        name=intermediary.name,
        setting=intermediary.setting,
        snippet=intermediary.snippet,
    )
    return where, known


def _idle_verdict(
    culprit: Culprit,
    hop: Hop | None,
    path: PathResult,
    drop: IdleDrop,
    fates: list[KeeperFate],
    confidence: float,
    context: list[str],
) -> Judgement:
    match, intermediary = _known_match(path, drop)
    if culprit in ("server_idle_timeout", "nat_firewall_idle_drop"):
        match, intermediary = "", None
    evidence = [*_evidence(drop, fates, path), *context]
    if drop.clock == "age":
        evidence.append(
            f"{path.name}: the closes line up on connection age, not on idle time: the timer "
            "ignores some traffic (protocol pings, or one direction)"
        )
    fingerprint = _fingerprint_of(path)
    if fingerprint is not None:
        evidence.append(
            f"{path.name}: {fingerprint.name} recognised from {fingerprint.header}: "
            f"{fingerprint.value} ({fingerprint.source} response)"
        )
    if match:
        evidence.append(f"{_seconds(drop.idle_s)}: {match}")
    where, found = _where_and_finding(culprit, hop, intermediary, evidence)
    hop_text = f" at the {hop} hop" if hop else ""
    if hop == "proxy" and path.name != "direct":
        hop_text += f" (first seen on {path.name})"
    return Judgement(
        found,
        culprit=culprit,
        hop=hop,
        confidence=confidence,
        kind="idle_timeout",
        relies_on_pongs=drop.how == "silent",
        idle_timeout_s=drop.idle_s,
        summary=f"Idle timeout {_seconds(drop.idle_s)}{hop_text}: {where}"
        + (f" ({match})." if match else "."),
        remedies=[found.remedy or "", _heartbeat_remedy(drop, fates, path)],
    )


def _keeper_findings(path: PathResult, fates: list[KeeperFate]) -> list[Judgement]:
    pings = [f for f in fates if f.role == "heartbeat"]
    traffic = [f for f in fates if f.role == "traffic"]
    out = []
    if pings and all(f.died_with_drop for f in pings) and any(f.outlived for f in traffic):
        out.append(
            Judgement(
                finding(
                    "pings_ignored",
                    [
                        f"{path.name}: {', '.join(f.id for f in pings)} died with the idle "
                        f"connections while {', '.join(f.id for f in traffic)} survived"
                    ],
                )
            )
        )
    if traffic and all(f.died_with_drop for f in traffic) and any(f.outlived for f in pings):
        out.append(
            Judgement(
                finding(
                    "one_way_traffic",
                    [
                        f"{path.name}: {', '.join(f.id for f in traffic)} died with the idle "
                        f"connections while pings kept "
                        f"{', '.join(f.id for f in pings if f.outlived)} alive"
                    ],
                )
            )
        )
    return out


def _hop_for(
    obs: Observations,
    index: int,
    drop: IdleDrop,
    analysed: list[tuple[PathResult, IdleDrop | None]],
) -> tuple[Culprit, Hop | None, float, list[str]]:
    """Place a drop first seen on path ``index``: the paths inside it say where it happens."""
    path = analysed[index][0]
    fingerprint = _fingerprint_of(path)
    inner = [(p, d) for p, d in analysed[:index] if facts.handshake_failure(p) is None]
    alike_inside = [p for p, d in inner if d is not None and _drops_alike(drop, d)]
    context: list[str] = []
    if drop.how == "silent":
        return "nat_firewall_idle_drop", "network", 0.85, context
    if inner and not alike_inside:
        for p, d in inner:
            survived = facts.idle_survived_s(p)
            later = f"; its own drop comes later, at {_seconds(d.idle_s)}" if d else ""
            context.append(
                f"{p.name}: no idle drop at {_seconds(drop.idle_s)}"
                + (f"; idle {_seconds(survived)} survived" if survived else "")
                + later
            )
        cdn = fingerprint is not None and fingerprint.kind == "cdn"
        return ("cdn_idle_release" if cdn else "proxy_idle_timeout"), "proxy", 0.9, context
    outer_alike = all(d is not None and _drops_alike(drop, d) for _, d in analysed[index:])
    if alike_inside or (index == 0 and len(analysed) > 1 and outer_alike):
        context.append(
            "every path drops at the same idle time: the server (or something in front of "
            "every path) closes them"
        )
        return "server_idle_timeout", "server", 0.9, context
    if index == 0 and len(analysed) > 1:
        context.append(f"{path.name} reaches the backend itself, with no proxy in between")
        return "server_idle_timeout", "server", 0.85, context
    if drop.how == "close_frame":
        return "server_idle_timeout", "server", 0.8, context
    if fingerprint is not None and fingerprint.kind in ("proxy", "load_balancer", "cdn"):
        cdn = fingerprint.kind == "cdn"
        return ("cdn_idle_release" if cdn else "proxy_idle_timeout"), "proxy", 0.75, context
    context.append(
        "no close frame was sent, the usual sign of a proxy or load balancer; run "
        "`wsdoctor compare` with the backend URL to place the hop"
    )
    if index > 0 and not inner:
        context.append("the direct path could not be reached, so the hop could not be separated")
    return "proxy_idle_timeout", None, 0.6, context


def _mixed(path: PathResult, analysis: facts.IdleAnalysis) -> Judgement | None:
    """Several timeouts on one path (a fleet, worker processes), or some connections spared."""
    binding = analysis.binding
    outlived = analysis.outlived_all()
    beyond = [d for d in analysis.unplaced if binding and d.idle_s > binding.high_s]
    if binding is None or (len(analysis.drops) < 2 and not outlived and not beyond):
        return None
    lines = [
        f"{path.name}: {_seconds(d.idle_s)}"
        + (f" (from {_seconds(d.low_s)} to {_seconds(d.high_s)})" if d.spread_s >= 0.05 else "")
        + f" on {d.samples} connection(s), {analysis.share(d):.0%} of those whose fate is "
        f"known, ended by {_SHORT_HOW[d.how]}"
        for d in analysis.drops
    ]
    lines += [
        f"{path.name}: one connection ended alone after {_seconds(d.idle_s)} idle "
        f"({_SHORT_HOW[d.how]})"
        for d in beyond
    ]
    if outlived:
        lines.append(
            f"{path.name}: {len(outlived)} idle connection(s) survived every drop, up to "
            f"{_seconds(outlived[0])} idle"
        )
    return Judgement(finding("mixed_idle_timeouts", lines, shortest=_seconds(binding.low_s)))


def _unplaced(path: PathResult, analysis: facts.IdleAnalysis) -> Judgement:
    """Idle connections were cut, but too few alike to name a timer: never healthy."""
    cut = [
        f"{d.id} ended by {_SHORT_HOW[d.how]} after {_seconds(d.idle_s)} idle"
        for d in analysis.unplaced
    ] + [
        f"{c.id} did not answer a ping after {_seconds(c.planned_idle_s or 0.0)} idle"
        for c in analysis.lone_silent
    ]
    return Judgement(
        finding("idle_drops_unplaced", [f"{path.name}: {line}" for line in cut]),
        culprit="none",
        confidence=0.3,
        kind="idle_drops_unplaced",
        status="inconclusive",
        summary=f"Idle connections on the {path.name} path were cut ({cut[0]}), but not often "
        "enough to tell a timeout from a glitch.",
        remedies=["Probe again with a longer --max-idle, and compare with the direct path."],
    )


def _place_idle_drop(obs: Observations) -> list[Judgement]:
    analyses = [facts.idle_analysis(p) for p in obs.paths]
    analysed = [(p, a.binding) for p, a in zip(obs.paths, analyses)]
    dropping = sorted(
        ((i, p, d) for i, (p, d) in enumerate(analysed) if d is not None),
        key=lambda item: (item[2].idle_s, item[0]),
    )
    out: list[Judgement] = []
    for path, analysis in zip(obs.paths, analyses):
        mixed = _mixed(path, analysis)
        if mixed is not None:
            out.append(mixed)
        if analysis.binding is None and analysis.cut_idle():
            out.append(_unplaced(path, analysis))
    for placed, (index, path, drop) in enumerate(dropping):
        if any(_drops_alike(drop, earlier) for _, _, earlier in dropping[:placed]):
            continue  # the same drop, already placed from an inner path
        fates = facts.keeper_fates(path, drop)
        out.extend(_keeper_findings(path, fates))
        culprit, hop, confidence, context = _hop_for(obs, index, drop, analysed)
        if fates and all(f.died_with_drop for f in fates):
            judgement = _lifetime(path, drop, fates, hop)
        else:
            if not (drop.samples >= 2 and any(f.outlived for f in fates)):
                confidence = min(confidence, 0.7)
            judgement = _idle_verdict(culprit, hop, path, drop, fates, confidence, context)
        judgement.idle_clusters = _clusters_of(path, analyses[index])
        if drop.how != "silent":
            judgement.idle_timeout_range_s = [drop.low_s, drop.high_s]
        judgement.order = -drop.idle_s  # the shortest drop is the one users meet first
        out.append(judgement)
    return out


def judge_idle(obs: Observations) -> list[Judgement]:
    """Idle drops: which hop closes idle connections, after how long, and how."""
    return _place_idle_drop(obs)
