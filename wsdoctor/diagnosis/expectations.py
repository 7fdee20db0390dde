"""Expectations a ``wsdoctor check`` target must meet, judged against what one run observed.

Pure: one target's observations and diagnosis in, one result per expectation out. Each result
is ``pass``, ``fail`` (the evidence contradicts the expectation) or ``inconclusive`` (the run
ended before it could be proven either way). With several paths, every path must meet it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.model import CULPRITS, Diagnosis
from wsdoctor.observations import (
    ConnectionRecord,
    Ending,
    Handshake,
    Observations,
    PathResult,
)
from wsdoctor.stats import percentile
from wsdoctor.units import seconds_tenths as _seconds

Outcome = Literal["pass", "fail", "inconclusive"]
PROBLEM_CULPRITS: tuple[str, ...] = tuple(c for c in CULPRITS if c != "none")
ROUNDING_S = 0.01  # the idle ladder rounds its rungs to 0.01 s
_RECEIVED = ("pong_received", "message_received")
_RANK: dict[Outcome, int] = {"pass": 0, "inconclusive": 1, "fail": 2}


@dataclass(frozen=True)
class Expectations:
    """What one target must show. ``None`` leaves an expectation out."""

    require_idle_s: float | None = None
    require_lifetime_s: float | None = None
    max_rtt_ms: float | None = None
    max_handshake_ms: float | None = None
    fail_on: tuple[str, ...] | None = None
    allow: tuple[str, ...] = ()

    @property
    def measures(self) -> bool:
        """True when any measured figure (idle, lifetime, RTT, handshake) is required."""
        figures = (
            self.require_idle_s,
            self.require_lifetime_s,
            self.max_rtt_ms,
            self.max_handshake_ms,
        )
        return any(value is not None for value in figures)

    def failing_culprits(self) -> tuple[str, ...] | None:
        """Culprits whose verdict fails the target, or None when the verdict is not judged.

        ``fail_on`` names them; otherwise, with ``allow`` or with no other expectation, every
        problem culprit does; ``allow`` always takes its culprits out.
        """
        if self.fail_on is not None:
            base: tuple[str, ...] = self.fail_on
        elif self.allow or not self.measures:
            base = PROBLEM_CULPRITS
        else:
            return None
        return tuple(c for c in base if c not in self.allow)


@dataclass
class ExpectationResult:
    """One expectation's outcome: what was required, what was measured, and why.

    ``no_connection`` says, when some path could not even be connected to, which and why
    (``direct: refused (connection refused by ...)``): there the expectation was not measured,
    the target failed before it; JUnit reports that as an error, not as a failed figure.
    """

    name: str
    required: str
    measured: str
    outcome: Outcome
    detail: str
    no_connection: str | None = None


@dataclass
class TargetCheck:
    """One target of a check: its run, its diagnosis and its expectations' results."""

    name: str
    observations: Observations
    diagnosis: Diagnosis
    results: list[ExpectationResult]

    @property
    def outcome(self) -> Outcome:
        """The worst outcome of its expectations."""
        return worst(r.outcome for r in self.results)


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    """``fail`` over ``inconclusive`` over ``pass`` (``pass`` when there is none)."""
    return max(outcomes, key=lambda o: _RANK[o], default="pass")


@dataclass
class _PathJudgement:
    outcome: Outcome
    figure: float | None
    text: str
    no_connection: str | None = None


def _no_connection(path: PathResult) -> _PathJudgement | None:
    failure = facts.handshake_failure(path)
    if failure is None:
        return None
    text = f"{path.name}: no connection opened ({failure.reason}"
    text += f" {failure.status})" if failure.status is not None else ")"
    reason = failure.reason + (f" {failure.status}" if failure.status is not None else "")
    return _PathJudgement("fail", None, text, f"{path.name}: {reason} ({failure.message})")


def _idle_on(path: PathResult, required_s: float) -> _PathJudgement:
    survived = facts.idle_survived_s(path)
    if survived is not None and survived + ROUNDING_S >= required_s:
        return _PathJudgement(
            "pass",
            survived,
            f"{path.name}: an idle connection still answered a ping after {_seconds(survived)}",
        )
    drop = facts.idle_drop(path)
    if drop is not None and drop.idle_s < required_s:
        return _PathJudgement(
            "fail",
            drop.idle_s,
            f"{path.name}: idle connections dropped after {_seconds(drop.idle_s)} idle "
            f"({drop.how})",
        )
    stage = path.stage("idle")
    if stage is None:
        return _PathJudgement("inconclusive", None, f"{path.name}: the idle stage did not run")
    opened = [c for c in stage.connections if c.handshake.ok]
    if opened and all(_ended_by_peer(c.ending) for c in opened):
        longest = max(c.ending.idle_s for c in opened)
        return _PathJudgement(
            "fail",
            longest,
            f"{path.name}: the peer ended every idle connection, the last after "
            f"{_seconds(longest)} idle",
        )
    return _PathJudgement(
        "inconclusive",
        survived,
        f"{path.name}: idle connections were proven only up to {_seconds(survived or 0.0)} "
        "before the run ended",
    )


def _proven_age_s(path: PathResult) -> float | None:
    """The oldest age at which a connection on the path was still answered."""
    ages = [
        event.t
        for stage in path.stages
        for conn in stage.connections
        for event in conn.events
        if event.kind in _RECEIVED
    ]
    return max(ages) if ages else None


def _ended_by_peer(ending: Ending) -> bool:
    """A FIN, a RST, silence, or a close frame the server sent first."""
    return ending.kind in ("eof", "reset", "silent") or (
        ending.kind == "close_frame" and ending.initiator != "client"
    )


def _cut_keepers(path: PathResult, required_s: float) -> list[ConnectionRecord]:
    """Connections kept busy (heartbeat or traffic) that the peer ended younger than required.

    Those that beat no faster than an idle drop died of idleness, not of their age.
    """
    stage = path.stage("heartbeat")
    if stage is None:
        return []
    drop = facts.idle_drop(path)
    return sorted(
        (
            c
            for c in stage.connections
            if c.handshake.ok
            and _ended_by_peer(c.ending)
            and c.ending.age_s < required_s
            and (drop is None or (c.interval_s or 0.0) < drop.low_s)
        ),
        key=lambda c: c.ending.age_s,
    )


def _lifetime_on(path: PathResult, required_s: float) -> _PathJudgement:
    proven = _proven_age_s(path)
    if proven is not None and proven + ROUNDING_S >= required_s:
        return _PathJudgement(
            "pass",
            proven,
            f"{path.name}: a connection was still answered at age {_seconds(proven)}",
        )
    cut = _cut_keepers(path, required_s)
    if cut:
        first = cut[0]
        return _PathJudgement(
            "fail",
            first.ending.age_s,
            f"{path.name}: a connection kept busy ({first.id}) ended at age "
            f"{_seconds(first.ending.age_s)} ({first.ending.kind})",
        )
    return _PathJudgement(
        "inconclusive",
        proven,
        f"{path.name}: connections were proven alive only up to age "
        f"{_seconds(proven or 0.0)} before the run ended",
    )


def _rtt_on(path: PathResult, limit_ms: float) -> _PathJudgement:
    samples = facts.rtt_samples_ms(path)
    if not samples:
        return _PathJudgement("inconclusive", None, f"{path.name}: no round trip was measured")
    p95 = percentile(samples, 0.95)
    return _PathJudgement(
        "pass" if p95 <= limit_ms else "fail",
        p95,
        f"{path.name}: RTT p95 {p95:.1f} ms over {len(samples)} round trips "
        f"(max {max(samples):.1f} ms)",
    )


def _handshake_ms(shake: Handshake) -> float:
    phases = (shake.dns_s, shake.tcp_s, shake.tls_s, shake.upgrade_s)
    return sum(p for p in phases if p is not None) * 1000


def _handshake_on(path: PathResult, limit_ms: float) -> _PathJudgement:
    """The median of every handshake the run made on the path (one slow opener is noise)."""
    times = sorted(
        _handshake_ms(c.handshake)
        for stage in path.stages
        for c in stage.connections
        if c.handshake.ok
    )
    if not times:
        return _PathJudgement("inconclusive", None, f"{path.name}: no handshake was made")
    median = times[(len(times) - 1) // 2]
    return _PathJudgement(
        "pass" if median <= limit_ms else "fail",
        median,
        f"{path.name}: handshake median {median:.1f} ms over {len(times)} connections "
        f"(max {times[-1]:.1f} ms; DNS, TCP, TLS and HTTP upgrade)",
    )


def _over_paths(
    name: str,
    required: str,
    obs: Observations,
    judge: Callable[[PathResult], _PathJudgement],
    unit: Callable[[float], str],
    worst_figure: Callable[[list[float]], float],
) -> ExpectationResult:
    """Judge every path; the worst path decides, and its figure is the one measured."""
    if not obs.paths:
        return ExpectationResult(name, required, "-", "inconclusive", "no path was probed")
    judged = [_no_connection(p) or judge(p) for p in obs.paths]
    outcome = worst(j.outcome for j in judged)
    figures = [j.figure for j in judged if j.outcome == outcome and j.figure is not None]
    measured = unit(worst_figure(figures)) if figures else "-"
    unreached = [j.no_connection for j in judged if j.no_connection is not None]
    return ExpectationResult(
        name,
        required,
        measured,
        outcome,
        "; ".join(j.text for j in judged),
        "; ".join(unreached) or None,
    )


def _verdict(diagnosis: Diagnosis, failing: tuple[str, ...]) -> ExpectationResult:
    verdict = diagnosis.verdict
    if not failing:
        required = "any verdict"
    elif set(failing) == set(PROBLEM_CULPRITS):
        required = "no problem found"
    elif len(PROBLEM_CULPRITS) - len(failing) < len(failing):
        allowed = [c for c in PROBLEM_CULPRITS if c not in failing]
        required = "no problem found except " + ", ".join(allowed)
    else:
        required = "culprit not " + ", ".join(failing)
    measured = f"{verdict.status}: {verdict.culprit}"
    if verdict.status == "inconclusive":
        outcome: Outcome = "inconclusive"
    elif verdict.status == "problem" and verdict.culprit in failing:
        outcome = "fail"
    else:
        outcome = "pass"
    detail = verdict.summary
    if verdict.status == "problem" and outcome == "pass":
        detail = f"{verdict.culprit} is allowed. {detail}"
    return ExpectationResult("verdict", required, measured, outcome, detail)


def evaluate(
    expectations: Expectations, obs: Observations, diagnosis: Diagnosis
) -> list[ExpectationResult]:
    """Judge every expectation of one target against its run and diagnosis."""
    results: list[ExpectationResult] = []
    failing = expectations.failing_culprits()
    if failing is not None:
        verdict = _verdict(diagnosis, failing)
        if verdict.outcome == "fail":  # failed before anything could be tried: say so
            unreached = [j.no_connection for j in map(_no_connection, obs.paths) if j]
            verdict.no_connection = "; ".join(t for t in unreached if t) or None
        results.append(verdict)
    idle_s = expectations.require_idle_s
    if idle_s is not None:
        results.append(
            _over_paths(
                "require-idle",
                f">= {_seconds(idle_s)} idle",
                obs,
                lambda p: _idle_on(p, idle_s),
                _seconds,
                min,
            )
        )
    lifetime_s = expectations.require_lifetime_s
    if lifetime_s is not None:
        results.append(
            _over_paths(
                "require-lifetime",
                f">= {_seconds(lifetime_s)} old",
                obs,
                lambda p: _lifetime_on(p, lifetime_s),
                _seconds,
                min,
            )
        )
    rtt_ms = expectations.max_rtt_ms
    if rtt_ms is not None:
        results.append(
            _over_paths(
                "max-rtt-ms",
                f"RTT p95 <= {rtt_ms:g} ms",
                obs,
                lambda p: _rtt_on(p, rtt_ms),
                lambda v: f"{v:.1f} ms",
                max,
            )
        )
    handshake_ms = expectations.max_handshake_ms
    if handshake_ms is not None:
        results.append(
            _over_paths(
                "max-handshake-ms",
                f"handshake median <= {handshake_ms:g} ms",
                obs,
                lambda p: _handshake_on(p, handshake_ms),
                lambda v: f"{v:.1f} ms",
                max,
            )
        )
    return results
