"""Run every rule over the observations and draw one verdict from the judgements."""

from __future__ import annotations

from wsdoctor.diagnosis.model import Diagnosis, Status, Verdict
from wsdoctor.diagnosis.precedence import strength
from wsdoctor.diagnosis.rules import RULES, Judgement, Rule
from wsdoctor.observations import Observations

DOUBT_PENALTY = 0.5
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _applicable(rule: Rule, obs: Observations) -> bool:
    ran = {stage.name for path in obs.paths for stage in path.stages}
    return all(name in ran for name in rule.needs)


def _verdict_from(best: Judgement | None, doubt: bool, interrupted: bool) -> Verdict:
    if best is None:
        why = "the run was interrupted before" if interrupted else "the probes did not gather"
        return Verdict(
            status="inconclusive",
            culprit="none",
            hop=None,
            summary=f"No verdict: {why} enough evidence.",
            confidence=0.0,
            remedies=["Run the probe again, for longer (--max-idle), without interrupting it."],
        )
    status: Status = best.status or ("healthy" if best.culprit == "none" else "problem")
    confidence = best.confidence
    summary = best.summary
    if best.culprit == "none" and interrupted:
        status, summary = "inconclusive", f"Interrupted before the end. {summary}"
    if doubt and best.relies_on_pongs:
        status = "inconclusive"
        confidence = round(confidence * DOUBT_PENALTY, 2)
        summary = f"Unsure, the probe itself stalled. {summary}"
    return Verdict(
        status=status,
        culprit=best.culprit or "none",
        hop=best.hop,
        summary=summary,
        confidence=round(confidence, 2),
        idle_timeout_s=best.idle_timeout_s,
        lifetime_cap_s=best.lifetime_cap_s,
        connection_limit=best.connection_limit,
        max_message_bytes=best.max_message_bytes,
        remedies=list(best.remedies),
        idle_timeout_range_s=best.idle_timeout_range_s,
        idle_clusters=list(best.idle_clusters),
    )


def diagnose(obs: Observations) -> Diagnosis:
    """Findings from every applicable rule, and the verdict of the strongest judgement."""
    judgements = [j for rule in RULES if _applicable(rule, obs) for j in rule(obs)]
    candidates = [j for j in judgements if j.culprit is not None]
    best = max(candidates, key=lambda j: (strength(j.kind), j.order, j.confidence), default=None)
    doubt = any(j.casts_doubt for j in judgements)
    findings = sorted((j.finding for j in judgements), key=lambda f: SEVERITY_ORDER[f.severity])
    return Diagnosis(findings=findings, verdict=_verdict_from(best, doubt, obs.interrupted))
