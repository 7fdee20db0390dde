"""Every diagnosis, turned into the JSON report, keeps to the report schema.

Runs ``diagnose()`` on each hand-built observation set (one per rule outcome), on degenerate
inputs (no paths, no stages, no connections) and on a seeded random mix of path behaviours,
then builds the ``wsdoctor.report/1`` document and validates it against the shipped schema.

``validate_report`` checks the schema itself on every call (about 35 ms) and resolves every
``$ref`` per event, so the bulk of the reports here go through one validator built once from
the same ``load_schema()`` with its local references expanded in place (the same constraints,
twice as fast); separate tests run ``validate_report`` itself.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import jsonschema
import pytest
from observation_builders import (
    CLOUDFLARE,
    NGINX,
    catalogue,
    echo_stage,
    failed_handshake_path,
    fingerprint,
    idle_path,
    observations,
)

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import CULPRITS, Diagnosis
from wsdoctor.observations import (
    ConnectionRecord,
    Ending,
    Handshake,
    Observations,
    PathResult,
    StageResult,
    observations_from_dict,
)
from wsdoctor.report.json_report import SCHEMA_ID, build_report, load_schema, validate_report

CATALOGUE = catalogue()


def expand_refs(node: Any, defs: dict[str, Any], stack: tuple[str, ...] = ()) -> Any:
    """``node`` with each plain ``{"$ref": "#/$defs/x"}`` replaced by a copy of ``x``.

    Recursive references, and references next to other keywords, are left as they are
    (``$defs`` stays in the schema, so they still resolve).
    """
    if isinstance(node, list):
        return [expand_refs(item, defs, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in defs and name not in stack:
            return expand_refs(defs[name], defs, (*stack, name))
        return node
    return {key: expand_refs(value, defs, stack) for key, value in node.items()}


SCHEMA = load_schema()
jsonschema.Draft202012Validator.check_schema(SCHEMA)
VALIDATOR = jsonschema.Draft202012Validator(expand_refs(SCHEMA, SCHEMA.get("$defs", {})))


def check_verdict(diagnosis: Diagnosis) -> None:
    """What must hold for any verdict, whatever the observations."""
    verdict = diagnosis.verdict
    assert verdict.culprit in CULPRITS
    assert 0.0 <= verdict.confidence <= 1.0
    assert verdict.summary.strip()
    if verdict.status == "healthy":
        assert verdict.culprit == "none"
        assert not [f for f in diagnosis.findings if f.severity == "error"]
    if verdict.status == "problem":
        assert verdict.culprit != "none"
        assert verdict.remedies, "a problem comes with remedies"
    for figure in (verdict.idle_timeout_s, verdict.lifetime_cap_s):
        assert figure is None or (math.isfinite(figure) and figure >= 0)
    for finding in diagnosis.findings:
        assert finding.code and finding.title
        assert all(isinstance(line, str) for line in finding.evidence)


def report_of(obs: Observations) -> tuple[Diagnosis, dict[str, Any]]:
    diagnosis = diagnose(obs)
    check_verdict(diagnosis)
    report = build_report(obs, diagnosis)
    VALIDATOR.validate(report)
    return diagnosis, report


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_report_validates(name: str) -> None:
    obs = CATALOGUE[name]()
    diagnosis, report = report_of(obs)
    assert report["schema"] == SCHEMA_ID
    assert report["verdict"]["culprit"] == diagnosis.verdict.culprit
    assert [f["code"] for f in report["findings"]] == [f.code for f in diagnosis.findings]
    json.dumps(report, allow_nan=False)  # plain JSON: no NaN, no objects


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_saved_report_rediagnoses_to_the_same_verdict(name: str) -> None:
    """The report's paths are enough to judge the run again (``observations_from_dict``)."""
    obs = CATALOGUE[name]()
    diagnosis = diagnose(obs)
    report = build_report(obs, diagnosis)
    again = diagnose(
        observations_from_dict(
            {
                "started_at": report["started_at"],
                "duration_s": report["duration_s"],
                "interrupted": report["interrupted"],
                "paths": json.loads(json.dumps(report["paths"])),
            }
        )
    )
    assert again == diagnosis


@pytest.mark.parametrize("name", ["lifetime-5", "handshake-http-426", "no-paths"])
def test_validate_report_accepts_diagnosed_runs(name: str) -> None:
    obs = CATALOGUE[name]()
    validate_report(build_report(obs, diagnose(obs)))


def test_validate_report_rejects_a_broken_verdict() -> None:
    obs = CATALOGUE["handshake-tls"]()
    report = build_report(obs, diagnose(obs))
    report["verdict"]["culprit"] = "gremlins"
    with pytest.raises(jsonschema.ValidationError):
        validate_report(report)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(report)


def test_expanded_schema_still_rejects_a_broken_event() -> None:
    obs = CATALOGUE["black-hole"]()
    report = build_report(obs, diagnose(obs))
    report["paths"][0]["stages"][-1]["connections"][0]["events"][0]["kind"] = "gremlin"
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(report)


def test_catalogue_reaches_every_reachable_culprit() -> None:
    seen = {diagnose(make()).verdict.culprit for make in CATALOGUE.values()}
    not_judged_yet = {"message_size_limit", "restart"}  # no rule produces these yet
    assert seen >= set(CULPRITS) - not_judged_yet


# --- degenerate inputs ---------------------------------------------------------------------

_STAGE_NAMES = ("handshake", "echo", "idle", "heartbeat")


def _bare_path(stages: list[StageResult]) -> PathResult:
    return PathResult(name="direct", url="wss://ws.example.com/ws", stages=stages)


def _empty_stage(name: str) -> StageResult:
    return StageResult(name=name, started_at=0.0, duration_s=0.0)  # type: ignore[arg-type]


DEGENERATE: dict[str, Observations] = {
    "no-paths": Observations(started_at="", duration_s=0.0),
    "path-without-stages": Observations(started_at="", duration_s=0.0, paths=[_bare_path([])]),
    "stages-without-connections": Observations(
        started_at="",
        duration_s=0.0,
        paths=[_bare_path([_empty_stage(n) for n in _STAGE_NAMES])],
    ),
    "idle-stage-only": Observations(
        started_at="", duration_s=0.0, paths=[_bare_path([_empty_stage("idle")])]
    ),
    "heartbeat-stage-only": Observations(
        started_at="", duration_s=0.0, paths=[_bare_path([_empty_stage("heartbeat")])]
    ),
    "two-empty-paths": Observations(
        started_at="",
        duration_s=0.0,
        paths=[_bare_path([]), PathResult(name="via-proxy", url="wss://p.example.com/ws")],
        interrupted=True,
    ),
    "handshake-with-no-failure-detail": Observations(
        started_at="",
        duration_s=0.0,
        paths=[
            _bare_path(
                [
                    StageResult(
                        name="handshake",
                        started_at=0.0,
                        duration_s=0.0,
                        connections=[
                            ConnectionRecord(
                                id="handshake-1",
                                role="handshake",
                                opened_at=0.0,
                                handshake=Handshake(ok=False),
                                ending=Ending(kind="handshake_failed", age_s=0.0, idle_s=0.0),
                            )
                        ],
                    )
                ]
            )
        ],
    ),
    "idle-rungs-without-plan": observations(
        idle_path(max_idle_s=10.0, rungs=[], heartbeats=[], traffic_interval_s=None, sentinels=0)
    ),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_observations_never_raise(name: str) -> None:
    diagnosis, _ = report_of(DEGENERATE[name])
    assert diagnosis.verdict.status in ("inconclusive", "problem")


def test_no_paths_is_inconclusive() -> None:
    verdict = diagnose(Observations(started_at="", duration_s=0.0)).verdict
    assert (verdict.status, verdict.culprit, verdict.confidence) == ("inconclusive", "none", 0.0)


# --- seeded random mixes -------------------------------------------------------------------

_FINGERPRINTS = [
    NGINX,
    CLOUDFLARE,
    fingerprint("uvicorn", "server"),
    fingerprint("alb", "load_balancer"),
]


def _random_path(rng: random.Random, name: str) -> PathResult:
    if rng.random() < 0.15:
        reason = rng.choice(["dns", "refused", "timeout", "tls", "http_status", "reset"])
        status = rng.choice([200, 401, 426, 429, 503]) if reason == "http_status" else None
        return failed_handshake_path(name, reason, status)  # type: ignore[arg-type]
    max_idle = rng.choice([6.0, 12.0, 20.0])
    drop_at = rng.choice([None, round(rng.uniform(0.5, max_idle * 1.2), 2)])
    how = rng.choice(["eof", "reset", "close_frame", "silent"])
    die = rng.choice(["none", "all", "heartbeats", "traffic"])
    until = rng.choice([None, None, round(rng.uniform(0.2, max_idle), 2)])
    return idle_path(
        name,
        max_idle_s=max_idle,
        drop_at=drop_at,
        how=how,
        reset_on_send=rng.random() < 0.3,
        keepers_die=die == "all",
        heartbeats_die=die == "heartbeats" or None,
        traffic_dies=die == "traffic" or None,
        close_code=rng.choice([1000, 1001, 1008, 1011]),
        lag_ms=rng.choice([1.0, 1.0, 700.0]),
        server_ping_interval_s=rng.choice([None, None, 5.0]),
        until=until,
        interrupted=until is not None and rng.random() < 0.5,
        fingerprints=rng.sample(_FINGERPRINTS, k=rng.choice([0, 0, 1])),
        echo=echo_stage(lost=rng.choice([0, 0, 2]), max_ms=rng.choice([None, 900.0])),
    )


@pytest.mark.parametrize("seed", range(8))
def test_random_runs_never_raise_and_validate(seed: int) -> None:
    rng = random.Random(seed)
    names = ["direct", "via-proxy", "via-2"][: rng.choice([1, 2, 2, 3])]
    paths = [_random_path(rng, n) for n in names]
    diagnosis, _ = report_of(observations(*paths, interrupted=rng.random() < 0.2))
    assert diagnose(observations(*paths)).verdict.culprit in CULPRITS
