"""Watch rules: why each watched connection dropped, and how available the service was.

Pure functions over ``Observations.watch``. ``disconnect_causes`` names the cause of every
drop from its facts and from the drops around it; displays call it to label drops live.

When is a drop part of a restart? A server or proxy that restarts or reloads its configuration
ends the connections it holds in one pass, so their clients see the close frames (1001, 1012),
FINs or RSTs within a round trip of each other, whatever each connection's age or idle time:

- the *window* is ``RESTART_WINDOW_S`` (2 s): far longer than a process takes to close its
  sockets or a client to notice (one round trip), yet short against the minutes to hours
  between the independent drops of a service worth watching. Silent drops are left out: they
  only show at the next heartbeat, so their moment is not known that precisely;
- *many* is at least two connections and at least half of those watched
  (``RESTART_MIN_SHARE``): a restart of what every watched connection passes through ends all
  of them, and one of two backends behind a balancer ends about half; a share that large
  landing in one window by chance would take independent drops every few seconds on every
  connection;
- *regardless of age*: when every connection in such a window had the same age (within the
  usual max(0.5 s, 5 %)), age explains the drops as well as the moment does, so the cluster is
  left to the lifetime rule. Close codes 1001 (going away) and 1012 (service restart) say so
  outright, alone or not.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

from wsdoctor.diagnosis.catalogue import entry, finding, remedy_text
from wsdoctor.diagnosis.facts import IMMEDIATE_CLOSE_S, tolerance
from wsdoctor.diagnosis.model import Culprit, Hop
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.observations import Disconnect, Ending, HandshakeFailure, Observations, WatchLog
from wsdoctor.stats import percentile_or_none
from wsdoctor.units import seconds as _seconds

RESTART_CODES = frozenset({1001, 1012})
RESTART_WINDOW_S = 2.0
RESTART_MIN_SHARE = 0.5
BUSY_IDLE_SHARE = 0.5  # idle for less than half its age: heartbeats flowed before the drop
PROBE_LAG_SUSPECT_MS = 500.0  # half the shortest heartbeat timeout (1 s) of a watch
CODE_CAUSES: dict[int, Culprit] = {1013: "server_limits", 1009: "message_size_limit"}
POLICY_CODE = 1008
CAME_BACK_REFUSED = ("refused", "reset")
UNAVAILABLE_STATUSES = (502, 503)
BLOCKED_STATUSES = (200, 400, 426, 505)
EVIDENCE_LINES = 8
SERVER_CLOSED = "server_closed"  # a close frame with no code that names a cause
PROTOCOL_ERROR = "protocol_error"  # wsdoctor closed it: the server broke the protocol


@dataclass
class WatchFigures:
    """What a watch amounts to: availability, drops, causes and time to come back."""

    connections: int
    duration_s: float
    availability: float | None  # share of connection-time that was up, 0..1
    drops: int  # disconnects of an open connection (not failed first handshakes)
    mtbd_s: float | None  # mean connection-time up between two drops
    reconnect_p50_s: float | None
    reconnect_p95_s: float | None
    by_cause: dict[str, int] = field(default_factory=dict)


@dataclass
class _Analysis:
    causes: list[str]
    lifetime_cap_s: float | None = None
    idle_timeout_s: float | None = None


def _failure_cause(failure: HandshakeFailure | None) -> Culprit:
    if failure is None:
        return "unreachable"
    if failure.reason == "tls":
        return "tls_error"
    if failure.reason == "upgrade_not_performed":
        return "upgrade_blocked"
    if failure.reason == "http_status":
        if failure.status == 429:
            return "rate_limit"
        if failure.status == 503:
            return "server_limits"
        if failure.status in BLOCKED_STATUSES:
            return "upgrade_blocked"
        return "handshake_rejected"
    return "unreachable"


def _abrupt(ending: Ending) -> bool:
    return ending.kind in ("eof", "reset")


def _going_away(ending: Ending) -> bool:
    return ending.kind == "close_frame" and ending.code in RESTART_CODES


def _came_back_refused(drop: Disconnect) -> bool:
    """Right after the drop the endpoint refused new connections: it was going down."""
    failure = drop.failure
    return failure is not None and (
        failure.reason in CAME_BACK_REFUSED or failure.status in UNAVAILABLE_STATUSES
    )


def _ages_differ(ages: list[float]) -> bool:
    return max(ages) - min(ages) > tolerance(max(ages))


def _restart_clusters(log: WatchLog) -> set[int]:
    """Indices of drops that hit many connections of different ages at one moment."""
    if log.connections < 2:
        return set()
    needed = max(2, math.ceil(RESTART_MIN_SHARE * log.connections))
    moments = sorted(
        (d.at_s, i)
        for i, d in enumerate(log.disconnects)
        if _abrupt(d.ending) or _going_away(d.ending)
    )
    members: set[int] = set()
    for start, (first_at, _) in enumerate(moments):
        window = []
        for at, index in moments[start:]:
            if at - first_at > RESTART_WINDOW_S:
                break
            window.append(index)
        drops = [log.disconnects[i] for i in window]
        if len({d.connection for d in drops}) < needed:
            continue
        if all(_going_away(d.ending) for d in drops) or _ages_differ(
            [d.ending.age_s for d in drops]
        ):
            members.update(window)
    return members


def _largest_agreeing(values: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The largest run of (value, index) pairs whose values agree within the tolerance."""
    ordered = sorted(values)
    best: list[tuple[float, int]] = []
    low = 0
    for high in range(len(ordered)):
        while ordered[high][0] - ordered[low][0] > tolerance(ordered[high][0]):
            low += 1
        if high - low + 1 > len(best):
            best = ordered[low : high + 1]
    return best


def _fixed(log: WatchLog, group: list[tuple[float, int]], of: int) -> bool:
    """A pattern worth a name: most drops of its kind, seen again at a separate moment.

    A connection that drops twice did so at two moments; drops of different connections
    count as separate only when further apart than one restart window.
    """
    if len(group) < 2 or len(group) * 2 < of:
        return False
    drops = [log.disconnects[i] for _, i in group]
    if len({d.connection for d in drops}) < len(drops):
        return True
    moments = [d.at_s for d in drops]
    return max(moments) - min(moments) > RESTART_WINDOW_S


def _idle_cause(ending: Ending) -> Culprit:
    if ending.kind == "silent":
        return "nat_firewall_idle_drop"
    if ending.kind == "close_frame":
        return "server_idle_timeout"
    return "proxy_idle_timeout"


def _explicit(drop: Disconnect, index: int, clusters: set[int]) -> str | None:
    """The cause a drop names by itself (or with the drops at the same moment)."""
    ending = drop.ending
    if ending.kind == "handshake_failed":
        return _failure_cause(drop.failure)
    if ending.kind == "close_frame" and ending.initiator == "client":
        return PROTOCOL_ERROR
    if _going_away(ending) or index in clusters:
        return "restart"
    if _abrupt(ending) and _came_back_refused(drop):
        return "restart"
    if ending.kind == "close_frame" and ending.code in CODE_CAUSES:
        return CODE_CAUSES[ending.code]
    if ending.kind == "close_frame" and ending.code == POLICY_CODE:
        return "rate_limit"
    if ending.age_s < IMMEDIATE_CLOSE_S:  # refused right after the upgrade, not timed out
        return "server_limits" if _abrupt(ending) else "handshake_rejected"
    return None


def _analyse(log: WatchLog) -> _Analysis:
    clusters = _restart_clusters(log)
    causes = [_explicit(d, i, clusters) for i, d in enumerate(log.disconnects)]
    open_drops = [(i, d) for i, d in enumerate(log.disconnects) if causes[i] is None]
    busy = [(d.ending.age_s, i) for i, d in open_drops if _busy(d.ending)]
    quiet = [(d.ending.idle_s, i) for i, d in open_drops if not _busy(d.ending)]
    analysis = _Analysis(causes=[c or "" for c in causes])
    capped = _largest_agreeing(busy)
    if _fixed(log, capped, len(busy)):
        analysis.lifetime_cap_s = round(statistics.median(v for v, _ in capped), 3)
        for _, i in capped:
            analysis.causes[i] = "lifetime_cap"
    timed_out = _largest_agreeing(quiet)
    if _fixed(log, timed_out, len(quiet)):
        analysis.idle_timeout_s = round(statistics.median(v for v, _ in timed_out), 3)
        for _, i in timed_out:
            analysis.causes[i] = _idle_cause(log.disconnects[i].ending)
    for i, d in open_drops:
        if not analysis.causes[i]:
            analysis.causes[i] = (
                SERVER_CLOSED if d.ending.kind == "close_frame" else "network_instability"
            )
    return analysis


def _busy(ending: Ending) -> bool:
    return ending.idle_s < BUSY_IDLE_SHARE * ending.age_s


def disconnect_causes(log: WatchLog) -> list[str]:
    """The cause of each disconnect, in order: a culprit code, or ``server_closed`` or
    ``protocol_error`` for close frames that name none."""
    return _analyse(log).causes


def watch_figures(log: WatchLog, causes: list[str] | None = None) -> WatchFigures:
    """Availability, mean time between drops, drops by cause, reconnect time percentiles."""
    causes = disconnect_causes(log) if causes is None else causes
    drops = sum(1 for d in log.disconnects if d.ending.kind != "handshake_failed")
    capacity = log.duration_s * log.connections
    return WatchFigures(
        connections=log.connections,
        duration_s=log.duration_s,
        availability=min(1.0, log.up_s / capacity) if capacity > 0 else None,
        drops=drops,
        mtbd_s=round(log.up_s / drops, 3) if drops else None,
        reconnect_p50_s=percentile_or_none(log.reconnect_times_s, 0.5),
        reconnect_p95_s=percentile_or_none(log.reconnect_times_s, 0.95),
        by_cause=dict(Counter(causes).most_common()),
    )


def _describe(ending: Ending, failure: HandshakeFailure | None) -> str:
    if ending.kind == "handshake_failed":
        return f"could not connect ({failure.message if failure else ending.detail})"
    how = {
        "eof": "TCP FIN without a close frame",
        "reset": "TCP RST",
        "silent": "silence (heartbeat unanswered)",
    }.get(ending.kind, f"close frame {ending.code}")
    if ending.kind == "close_frame" and ending.reason:
        how += f' "{ending.reason}"'
    return f"ended by {how} at age {_seconds(ending.age_s)}, idle {_seconds(ending.idle_s)}"


def _drop_line(drop: Disconnect) -> str:
    line = f"{_seconds(drop.at_s)}: connection {drop.connection} " + _describe(
        drop.ending, drop.failure
    )
    if drop.reconnect_delay_s is not None:
        line += f"; first retry after {_seconds(drop.reconnect_delay_s)}"
    if drop.reconnect_attempts:
        line += f", {drop.reconnect_attempts} attempt(s)"
    if drop.failure is not None and drop.ending.kind != "handshake_failed":
        line += f" (a retry failed: {drop.failure.reason})"
    return line


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _summary_lines(log: WatchLog, figures: WatchFigures) -> list[str]:
    lines = [
        f"{log.connections} connection(s) watched for {_seconds(log.duration_s)}: "
        f"up {_percent(figures.availability)} of the time",
    ]
    if figures.drops:
        lines.append(
            f"{figures.drops} drop(s); mean time between drops {_seconds(figures.mtbd_s or 0.0)} "
            "of connection time"
        )
    else:
        lines.append("no drop")
    if figures.by_cause:
        counts = ", ".join(f"{n} x {cause}" for cause, n in figures.by_cause.items())
        lines.append(f"causes: {counts}")
    if figures.reconnect_p50_s is not None:
        lines.append(
            f"time to reconnect p50 {_seconds(figures.reconnect_p50_s)}, "
            f"p95 {_seconds(figures.reconnect_p95_s or 0.0)} "
            f"({len(log.reconnect_times_s)} reconnect(s))"
        )
    if log.rtt is not None:
        lines.append(
            f"heartbeat RTT p50 {log.rtt.p50_ms:.1f} ms, p95 {log.rtt.p95_ms:.1f} ms, "
            f"max {log.rtt.max_ms:.1f} ms ({log.rtt.samples} samples, {log.rtt.lost} lost)"
        )
    if log.loop_lag is not None:
        lines.append(f"wsdoctor's own event-loop lag: max {log.loop_lag.max_ms:.0f} ms")
    return lines


_HOPS: dict[str, Hop] = {
    "server_idle_timeout": "server",
    "nat_firewall_idle_drop": "network",
    "network_instability": "network",
    "server_limits": "server",
    "rate_limit": "server",
    "message_size_limit": "server",
    SERVER_CLOSED: "server",
    "handshake_rejected": "server",
}
"""The hop each cause puts a drop at, where the cause alone says; its texts are in the
catalogue as ``watch_<cause>``."""


def _confidence(cause: str, count: int) -> float:
    if cause in ("restart", "server_limits", "rate_limit", "message_size_limit"):
        return 0.85
    if cause in ("lifetime_cap", "proxy_idle_timeout", "server_idle_timeout"):
        return min(0.9, 0.6 + 0.05 * count)
    return min(0.8, 0.5 + 0.05 * count)


def _cause_judgement(
    cause: str,
    drops: list[Disconnect],
    analysis: _Analysis,
    figures: WatchFigures,
    never_up: bool,
) -> Judgement:
    evidence = [_drop_line(d) for d in drops[:EVIDENCE_LINES]]
    if len(drops) > EVIDENCE_LINES:
        evidence.append(f"... and {len(drops) - EVIDENCE_LINES} more")
    cap = analysis.lifetime_cap_s if cause == "lifetime_cap" else None
    idle = analysis.idle_timeout_s if cause.endswith(("idle_timeout", "idle_drop")) else None
    figure = f" at about {_seconds(cap or idle or 0.0)}" if cap or idle else ""
    if cause == "nat_firewall_idle_drop" and idle is not None:
        # silence shows only at the heartbeat that goes unanswered: an upper bound, not a time
        figure, idle = f" within {_seconds(idle)} idle", None
    if never_up:
        first = drops[0]
        summary = (
            f"No watched connection could be opened: {_describe(first.ending, first.failure)}."
        )
    else:
        summary = (
            f"{len(drops)} of {figures.drops} drop(s) point to {cause}{figure}; "
            f"up {_percent(figures.availability)} of the time"
            + (f", a drop every {_seconds(figures.mtbd_s)}" if figures.mtbd_s else "")
            + "."
        )
    key = f"watch_{cause}"  # server_closed and protocol_error propose no culprit
    return Judgement(
        finding(key, evidence),
        culprit=entry(key).culprit,
        hop=_HOPS.get(cause),
        confidence=0.9 if never_up else _confidence(cause, len(drops)),
        summary=summary,
        remedies=[remedy_text(key)],
        kind="watch_never_up" if never_up else "watch_drops",
        order=len(drops),
        lifetime_cap_s=cap,
        idle_timeout_s=idle,
        relies_on_pongs=any(d.ending.kind == "silent" for d in drops),
    )


def _healthy(log: WatchLog, figures: WatchFigures) -> Judgement:
    return Judgement(
        finding("watch_ok", []),
        culprit="none",
        confidence=0.8 if log.duration_s >= 60 else 0.6,
        kind="healthy",
        summary=f"No drop: {log.connections} connection(s) stayed up for "
        f"{_seconds(log.duration_s)} ({_percent(figures.availability)} available).",
        remedies=["Nothing to fix over this period; watch longer to catch rarer drops."],
    )


def _probe_lag(log: WatchLog) -> list[Judgement]:
    lag = log.loop_lag
    if lag is None or lag.max_ms < PROBE_LAG_SUSPECT_MS:
        return []
    return [
        Judgement(
            finding(
                "probe_stalled",
                [f"event-loop lag up to {lag.max_ms:.0f} ms during the watch"],
                again="watch",
            ),
            casts_doubt=True,
        )
    ]


def judge_watch(obs: Observations) -> list[Judgement]:
    """Name the cause of every drop a watch saw, and sum up its availability."""
    log = obs.watch
    if log is None:
        return []
    analysis = _analyse(log)
    figures = watch_figures(log, analysis.causes)
    out = [
        Judgement(finding("watch_summary", _summary_lines(log, figures))),
        *_probe_lag(log),
    ]
    if not log.disconnects:
        if log.up_s > 0:
            out.append(_healthy(log, figures))
        return out
    never_up = log.up_s == 0
    by_cause: dict[str, list[Disconnect]] = {}
    for drop, cause in zip(log.disconnects, analysis.causes):
        by_cause.setdefault(cause, []).append(drop)
    for cause, drops in by_cause.items():
        out.append(_cause_judgement(cause, drops, analysis, figures, never_up))
    return out
