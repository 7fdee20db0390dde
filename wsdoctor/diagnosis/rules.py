"""The rules: each declares its code, title and the stages it needs, and judges observations.

A rule is a pure function from observations to judgements (a finding, and for problems a
candidate verdict). Adding a culprit is adding a rule here and its facts to ``knowledge``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.facts import IdleDrop, KeeperFate
from wsdoctor.diagnosis.knowledge import (
    BY_KEY,
    GENERIC_PROXY_SETTINGS,
    heartbeat_interval_for,
    known_defaults_near,
)
from wsdoctor.diagnosis.model import Culprit, Finding, Hop
from wsdoctor.observations import Fingerprint, HandshakeFailure, Observations, PathResult

LOOP_LAG_SUSPECT_FRACTION = 0.5
INSTABILITY_LOSS_FRACTION = 0.05
INSTABILITY_STALL_EXTRA_MS = 250.0
INSTABILITY_STALL_FACTOR = 5.0
INSTABILITY_MIN_STALLS = 2


@dataclass
class Judgement:
    """A finding, plus what it would make the verdict if it were the strongest one."""

    finding: Finding
    culprit: Culprit | None = None
    hop: Hop | None = None
    confidence: float = 0.0
    summary: str = ""
    remedies: list[str] = field(default_factory=list)
    idle_timeout_s: float | None = None
    lifetime_cap_s: float | None = None
    rank: int = 0
    casts_doubt: bool = False


@dataclass(frozen=True)
class Rule:
    """One audit: an id, a title, the stages it reads, and its pure judging function."""

    code: str
    title: str
    needs: tuple[str, ...]
    judge: Callable[[Observations], list[Judgement]]


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


# --- handshake -------------------------------------------------------------------------

_UPGRADE_BLOCKED_STATUSES = {200, 400, 426, 505}
_UNREACHABLE_REASONS = {"dns", "refused", "timeout", "reset", "other"}


def _handshake_judgement(path: PathResult, failure: HandshakeFailure) -> Judgement:
    where = f"on the {path.name} path ({path.url})"
    status = failure.status
    if failure.reason == "tls":
        return Judgement(
            Finding(
                "tls_error",
                "error",
                "TLS handshake failed",
                [f"{failure.message} {where}"],
                "Fix the certificate chain or host name; use --cacert for a private CA.",
            ),
            culprit="tls_error",
            confidence=0.95,
            rank=100,
            summary=f"The TLS handshake failed {where}: {failure.message}.",
            remedies=[
                "Serve a certificate valid for this host name and not expired, with its "
                "full chain; for a private CA pass --cacert (or --insecure to look past it)."
            ],
        )
    if failure.reason == "http_status" and status == 429:
        return Judgement(
            Finding(
                "rate_limit",
                "error",
                "Handshake answered 429 Too Many Requests",
                [f"HTTP 429 {where}"],
                "Back off before reconnecting.",
            ),
            culprit="rate_limit",
            confidence=0.85,
            rank=100,
            summary=f"The server rate-limited the WebSocket handshake with HTTP 429 {where}.",
            remedies=[
                "Reconnect with exponential backoff and jitter; raise the server's or "
                "gateway's connection rate limit if this load is expected."
            ],
        )
    if failure.reason == "http_status" and status == 503:
        return Judgement(
            Finding(
                "server_limits",
                "error",
                "Handshake answered 503 Service Unavailable",
                [f"HTTP 503 {where}"],
            ),
            culprit="server_limits",
            confidence=0.6,
            rank=100,
            summary=f"The server or a proxy answered the handshake with HTTP 503 {where}.",
            remedies=[
                "Check the server's connection limits (ulimit -n, worker connections) "
                "and that the backend behind the proxy is up."
            ],
        )
    if failure.reason == "upgrade_not_performed" or (
        failure.reason == "http_status" and status in _UPGRADE_BLOCKED_STATUSES
    ):
        hint = {
            505: "nginx answers 505 when proxy_http_version 1.1 is missing",
            426: "426 means the Upgrade request did not reach the backend as an upgrade",
        }.get(status or 0, "the reply did not switch protocols")
        return Judgement(
            Finding(
                "upgrade_blocked",
                "error",
                "The WebSocket upgrade was not performed",
                [f"{failure.message} {where}", hint],
            ),
            culprit="upgrade_blocked",
            hop="proxy" if path.name != "direct" else None,
            confidence=0.85,
            rank=100,
            summary=f"An HTTP hop answered the WebSocket upgrade without switching protocols "
            f"{where} ({hint}).",
            remedies=[
                "Pass the upgrade through every proxy. nginx: proxy_http_version 1.1; "
                'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";',
                "HAProxy and most load balancers pass upgrades by default: check that the "
                "route points at the WebSocket backend and that no WAF or CDN rule strips "
                "Upgrade/Connection.",
            ],
        )
    if failure.reason == "http_status":
        return Judgement(
            Finding(
                "handshake_rejected",
                "error",
                f"Handshake rejected with HTTP {status}",
                [f"{failure.message} {where}"],
            ),
            culprit="handshake_rejected",
            confidence=0.9,
            rank=100,
            summary=f"The server rejected the WebSocket handshake with HTTP {status} {where}.",
            remedies=[
                "Check the URL path, credentials (-H 'Authorization: ...'), Origin "
                "(--origin) and subprotocol (--subprotocol) the server expects."
            ],
        )
    return Judgement(
        Finding("unreachable", "error", "Endpoint unreachable", [f"{failure.message} {where}"]),
        culprit="unreachable",
        confidence=0.95,
        rank=100,
        summary=f"The endpoint could not be reached {where}: {failure.message}.",
        remedies=[
            "Check the host name, port and firewall rules, and that the server is listening."
        ],
    )


def judge_handshake(obs: Observations) -> list[Judgement]:
    """Failed first handshakes: unreachable, TLS, rejected, upgrade blocked, 429, 503."""
    out = []
    for path in obs.paths:
        failure = facts.handshake_failure(path)
        if failure is not None:
            out.append(_handshake_judgement(path, failure))
    if out and len(out) < len(obs.paths):
        for j in out:
            j.rank -= 10  # another path works: its findings may say more
    return out


# --- idle drops ------------------------------------------------------------------------


def _fingerprint_of(path: PathResult) -> Fingerprint | None:
    ranked = sorted(path.fingerprints, key=lambda f: f.kind != "cdn")
    return next((f for f in ranked if f.kind != "server"), None)


def _drops_alike(a: IdleDrop, b: IdleDrop) -> bool:
    slack = facts.tolerance(max(a.high_s, b.high_s)) + a.uncertainty_s + b.uncertainty_s
    return abs(a.idle_s - b.idle_s) <= slack


def _heartbeat_remedy(drop: IdleDrop, fates: list[KeeperFate]) -> str:
    interval = heartbeat_interval_for(drop.low_s if drop.how == "silent" else drop.idle_s)
    proven = [f for f in fates if f.outlived and f.role == "heartbeat"]
    app_only = not proven and any(f.outlived and f.role == "traffic" for f in fates)
    kind = "application heartbeat message" if app_only else "WebSocket ping"
    if proven:
        best = max(proven, key=lambda f: f.interval_s)
        confirmed = f" (pings every {best.interval_s:g} s were seen to keep this path alive)"
    elif app_only:
        confirmed = " (protocol pings did not keep it alive; application messages did)"
    else:
        confirmed = ""
    return f"Or, with no change to the path, send a {kind} every {interval:g} s{confirmed}."


def _evidence(drop: IdleDrop, fates: list[KeeperFate], path: PathResult) -> list[str]:
    how = {
        "eof": "TCP FIN without a WebSocket close frame",
        "reset": "TCP RST without a WebSocket close frame",
        "close_frame": f"close frame from the server (code {', '.join(map(str, drop.codes))})",
        "silent": "pings unanswered, no close, FIN or RST: a black hole",
    }[drop.how]
    lines = [
        f"{path.name}: {drop.samples} idle connection(s) ended after "
        f"{_seconds(drop.idle_s)} idle by {how}"
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
    elif drop.high_s - drop.low_s >= 0.05:
        lines.append(
            f"{path.name}: closes spread from {_seconds(drop.low_s)} to {_seconds(drop.high_s)}"
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


def _lifetime(path: PathResult, drop: IdleDrop, fates: list[KeeperFate]) -> Judgement:
    cap = drop.idle_s
    return Judgement(
        Finding(
            "lifetime_cap",
            "error",
            "Connections are closed at a fixed age",
            _evidence(drop, fates, path),
            "Raise the cap, or reconnect before it with backoff and resume state.",
        ),
        culprit="lifetime_cap",
        hop="server" if drop.how == "close_frame" else None,
        confidence=0.85 if len(fates) >= 2 else 0.65,
        rank=80,
        lifetime_cap_s=cap,
        summary=f"Connections on the {path.name} path are closed at about {_seconds(cap)} of "
        f"age even while pings and messages flow: a lifetime cap, not an idle timeout.",
        remedies=[
            "Heartbeats will not help. Raise the maximum connection duration where it is set "
            "(server max age, GCP backend service timeoutSec, Cloud Run --timeout, Caddy "
            "stream_timeout, API Gateway's fixed 2 h).",
            f"Have clients reconnect before {_seconds(cap)} with exponential backoff and jitter, "
            "and resume their state.",
        ],
    )


def _idle_verdict(
    culprit: Culprit,
    hop: Hop | None,
    path: PathResult,
    drop: IdleDrop,
    fates: list[KeeperFate],
    confidence: float,
    context: list[str],
) -> Judgement:
    measured = drop.idle_s
    fingerprint = _fingerprint_of(path)
    known = known_defaults_near(measured, facts.tolerance(measured) + drop.uncertainty_s)
    if fingerprint is not None:
        known = [k for k in known if fingerprint.name in (k.key, k.name)] or known
    match = ""
    if known:
        names = ", ".join(f"{k.name} {k.setting} default {k.idle_timeout_s:g} s" for k in known)
        match = f"; matches {names}"
    evidence = [*_evidence(drop, fates, path), *context]
    if fingerprint is not None:
        evidence.append(
            f"{path.name}: {fingerprint.name} recognised from {fingerprint.header}: "
            f"{fingerprint.value}"
        )
    if match:
        evidence.append(f"{_seconds(measured)}{match}")
    if culprit == "nat_firewall_idle_drop":
        fix = (
            "Raise the idle timeout of the NAT, firewall or L4 load balancer on the path "
            "(conntrack established timeout, AWS NLB tcp.idle_timeout.seconds, Azure LB "
            "IdleTimeoutInMinutes), or enable TCP keepalive below it."
        )
        where = "a NAT, firewall or L4 load balancer on the path forgets idle connections"
    elif culprit == "server_idle_timeout":
        fix = "Raise the server's idle timeout for WebSocket connections."
        where = "the server closes idle connections"
    else:
        intermediary = BY_KEY.get(fingerprint.name) if fingerprint else None
        if intermediary is None and known:
            intermediary = known[0]
        if intermediary is not None:
            fix = (
                f"Raise {intermediary.name}'s idle timeout ({intermediary.setting}): "
                f"{intermediary.snippet}"
            )
        else:
            fix = f"Raise the proxy's idle timeout ({GENERIC_PROXY_SETTINGS})."
        where = {
            "proxy": "the proxy hop closes idle connections",
            "cdn_idle_release": "the CDN edge releases idle connections",
        }.get(hop or "", "something on the path closes idle connections")
        if culprit == "cdn_idle_release":
            where = "the CDN edge releases idle connections"
    title = {
        "nat_firewall_idle_drop": "Idle connections are silently dropped",
        "server_idle_timeout": "The server closes idle connections",
        "cdn_idle_release": "The CDN releases idle connections",
    }.get(culprit, "Idle connections are closed on the path")
    hop_text = f" at the {hop} hop" if hop else ""
    return Judgement(
        Finding(culprit, "error", title, evidence, fix),
        culprit=culprit,
        hop=hop,
        confidence=confidence,
        rank=70,
        idle_timeout_s=measured,
        summary=f"Idle timeout {_seconds(measured)}{hop_text}: {where}{match}.",
        remedies=[fix, _heartbeat_remedy(drop, fates)],
    )


def _keeper_findings(path: PathResult, fates: list[KeeperFate]) -> list[Judgement]:
    pings = [f for f in fates if f.role == "heartbeat"]
    traffic = [f for f in fates if f.role == "traffic"]
    out = []
    if pings and all(f.died_with_drop for f in pings) and any(f.outlived for f in traffic):
        out.append(
            Judgement(
                Finding(
                    "pings_ignored",
                    "warning",
                    "Protocol pings do not reset the idle timer",
                    [
                        f"{path.name}: {', '.join(f.id for f in pings)} died with the idle "
                        f"connections while {', '.join(f.id for f in traffic)} survived"
                    ],
                    "Use an application-level heartbeat message, not only WebSocket pings.",
                )
            )
        )
    if traffic and all(f.died_with_drop for f in traffic) and any(f.outlived for f in pings):
        out.append(
            Judgement(
                Finding(
                    "one_way_traffic",
                    "warning",
                    "Client messages alone do not reset the idle timer",
                    [
                        f"{path.name}: {', '.join(f.id for f in traffic)} died with the idle "
                        f"connections while pings kept "
                        f"{', '.join(f.id for f in pings if f.outlived)} alive"
                    ],
                    "The timer counts only server-to-client bytes (Caddy read_timeout does this): "
                    "have the server answer heartbeats or ping clients.",
                )
            )
        )
    return out


def _place_idle_drop(obs: Observations) -> list[Judgement]:
    analysed = [(p, facts.idle_drop(p)) for p in obs.paths]
    dropping = [(i, p, d) for i, (p, d) in enumerate(analysed) if d is not None]
    if not dropping:
        return []
    index, path, drop = dropping[0]
    fates = facts.keeper_fates(path, drop)
    out = _keeper_findings(path, fates)
    if fates and all(f.died_with_drop for f in fates):
        return [*out, _lifetime(path, drop, fates)]
    confidence = 0.9 if drop.samples >= 2 and any(f.outlived for f in fates) else 0.7
    context: list[str] = []
    earlier = [p for p, d in analysed[:index] if facts.handshake_failure(p) is None]
    later_alike = all(d is not None and _drops_alike(drop, d) for _, d in analysed[index:])
    if drop.how == "silent":
        culprit: Culprit = "nat_firewall_idle_drop"
        hop: Hop | None = "network"
    elif index > 0 and earlier:
        culprit, hop = "proxy_idle_timeout", "proxy"
        fingerprint = _fingerprint_of(path)
        if fingerprint is not None and fingerprint.kind == "cdn":
            culprit = "cdn_idle_release"
        for p in earlier:
            survived = facts.idle_survived_s(p)
            context.append(
                f"{p.name}: no idle drop"
                + (f"; idle {_seconds(survived)} survived" if survived else "")
            )
    elif len(obs.paths) > 1 and index == 0 and later_alike:
        culprit, hop = "server_idle_timeout", "server"
        context.append(
            "every path drops at the same idle time: the server (or something in "
            "front of every path) closes them"
        )
    elif drop.how == "close_frame":
        culprit, hop = "server_idle_timeout", "server"
    else:
        culprit, hop = "proxy_idle_timeout", None
        fingerprint = _fingerprint_of(path)
        if fingerprint is not None and fingerprint.kind in ("proxy", "load_balancer", "cdn"):
            hop = "proxy"
            if fingerprint.kind == "cdn":
                culprit = "cdn_idle_release"
        else:
            confidence = min(confidence, 0.6)
            context.append(
                "no close frame was sent, the usual sign of a proxy or load "
                "balancer; run `wsdoctor compare` with the backend URL to place the hop"
            )
            if index > 0 and not earlier:
                context.append(
                    "the direct path could not be reached, so the hop could not be separated"
                )
    return [*out, _idle_verdict(culprit, hop, path, drop, fates, confidence, context)]


def judge_idle(obs: Observations) -> list[Judgement]:
    """Idle drops: which hop closes idle connections, after how long, and how."""
    return _place_idle_drop(obs)


# --- healthy, server pings, instability, the probe itself ------------------------------


def judge_healthy(obs: Observations) -> list[Judgement]:
    """Every path survived every planned idle period: name what was proven."""
    out = []
    for path in obs.paths:
        idle = path.stage("idle")
        if idle is None or facts.idle_drop(path) is not None:
            continue
        survived = facts.idle_survived_s(path)
        if survived is None:
            continue
        complete = idle.max_idle_s is not None and survived >= idle.max_idle_s
        evidence = [f"{path.name}: idle connections survived up to {_seconds(survived)}"]
        out.append(
            Judgement(
                Finding("idle_ok", "info", "Idle connections survive", evidence),
                culprit="none" if complete else None,
                confidence=0.8,
                rank=10,
                summary=f"No drop: idle connections survived {_seconds(survived)} on "
                f"{', '.join(p.name for p in obs.paths)}.",
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


def judge_server_pings(obs: Observations) -> list[Judgement]:
    """A server heartbeat hides idle timeouts longer than its interval: report it."""
    out = []
    for path in obs.paths:
        interval = facts.server_ping_interval(path)
        if interval is None:
            continue
        out.append(
            Judgement(
                Finding(
                    "server_heartbeat",
                    "info",
                    "The server pings on its own",
                    [
                        f"{path.name}: the server sent protocol pings every {_seconds(interval)}",
                        f"idle timeouts longer than {_seconds(interval)} cannot show on this path",
                    ],
                    "Browsers answer server pings automatically: keep this heartbeat below every "
                    "idle timeout on the path.",
                )
            )
        )
    return out


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def judge_instability(obs: Observations) -> list[Judgement]:
    """Lost pongs, stalls and drops that neither idle time nor age explain."""
    out = []
    for path in obs.paths:
        evidence = []
        samples = sorted(facts.rtt_samples_ms(path))
        if samples:
            p50 = _percentile(samples, 0.5)
            threshold = max(p50 + INSTABILITY_STALL_EXTRA_MS, INSTABILITY_STALL_FACTOR * p50)
            stalls = [v for v in samples if v >= threshold]
            if len(stalls) >= INSTABILITY_MIN_STALLS:
                evidence.append(
                    f"{path.name}: {len(stalls)} of {len(samples)} round trips stalled "
                    f"(RTT p50 {p50:.1f} ms, p99 {_percentile(samples, 0.99):.1f} ms, "
                    f"max {samples[-1]:.1f} ms)"
                )
        lost, sent = facts.lost_pongs(path)
        if sent and lost / sent >= INSTABILITY_LOSS_FRACTION:
            evidence.append(f"{path.name}: {lost} of {sent} pings got no pong")
        drop = facts.idle_drop(path)
        for record in facts.unexpected_drops(path, drop):
            evidence.append(
                f"{path.name}: {record.id} ended by {record.ending.kind} at age "
                f"{_seconds(record.ending.age_s)}, idle "
                f"{_seconds(record.ending.idle_s)}: not tied to idle time or age"
            )
        if evidence:
            out.append(
                Judgement(
                    Finding(
                        "network_instability",
                        "warning",
                        "The path is unstable",
                        evidence,
                        "Find the lossy hop (mtr, packet captures); reconnect with backoff.",
                    ),
                    culprit="network_instability",
                    hop="network",
                    confidence=0.6,
                    rank=40,
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
                    Finding(
                        "probe_stalled",
                        "warning",
                        "wsdoctor's own event loop stalled",
                        [
                            f"{path.name}: event-loop lag up to {lag_ms:.0f} ms against a "
                            f"ping timeout of {budget_s:g} s"
                        ],
                        "Run wsdoctor on a less loaded machine and probe again.",
                    ),
                    casts_doubt=True,
                )
            )
    return out


RULES: tuple[Rule, ...] = (
    Rule("handshake", "Opening handshake", ("handshake",), judge_handshake),
    Rule("idle", "Idle drops and where they happen", ("idle", "heartbeat"), judge_idle),
    Rule("healthy", "Idle connections survive", ("idle",), judge_healthy),
    Rule("server_heartbeat", "Server heartbeat", ("echo", "idle"), judge_server_pings),
    Rule("instability", "Path stability", ("echo",), judge_instability),
    Rule("probe_lag", "The probe is not the fault", (), judge_probe_lag),
)
