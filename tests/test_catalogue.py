"""The findings catalogue: every finding a rule reports is in it, and every entry is reported.

Observation sets come from ``observation_builders.catalogue()`` and from the small hand-written
sets below (one per finding those leave out). Entries only a real network produces are listed
in ``catalogue.REAL_NETWORK_ONLY`` with the test that produces them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
import test_clusters as clusters_tests
import test_properties as properties_tests
from hypothesis import given
from observation_builders import (
    catalogue,
    conn,
    failed_handshake_path,
    fingerprint,
    handshake_stage,
    horizon_for,
    idle_path,
    observations,
    ramp_step,
)

from wsdoctor.diagnosis.catalogue import (
    CATALOGUE,
    PIPELINE,
    REAL_NETWORK_ONLY,
    Entry,
    code_of,
    finding,
)
from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import CULPRITS, Finding
from wsdoctor.diagnosis.rules import RULES
from wsdoctor.diagnosis.rules.handshake import NOT_HTTP, TLS_ON_PLAIN_PORT
from wsdoctor.observations import (
    Disconnect,
    Ending,
    Event,
    HostFacts,
    HostLimit,
    Observations,
    PathResult,
    StageResult,
    Step,
    WatchLog,
)

STARTED_AT = "2026-11-02T09:00:00+00:00"


def _stage_path(name: str, *steps: Step, **stage: object) -> PathResult:
    result = StageResult(name=name, started_at=0.0, duration_s=5.0, steps=list(steps), **stage)  # type: ignore[arg-type]
    return PathResult(name="direct", url="ws://127.0.0.1:1/", stages=[result])


def _closes(*endings: Ending, stage: str = "idle") -> Observations:
    records = [conn(f"{stage}-{i}", "sentinel", e) for i, e in enumerate(endings, 1)]
    result = StageResult(name=stage, started_at=0.0, duration_s=5.0, connections=records)
    path = PathResult(name="direct", url="ws://127.0.0.1:1/", stages=[handshake_stage(), result])
    return observations(path)


def _close(code: int, age: float = 0.1) -> Ending:
    return Ending(kind="close_frame", age_s=age, idle_s=age, code=code, initiator="server")


def _refused(status: int) -> Observations:
    failed = failed_handshake_path(reason="http_status", status=status).stages[0].connections[0]
    failed.id, failed.role = "idle-9", "sentinel"
    opened = conn("idle-1", "sentinel", Ending(kind="local", age_s=5.0, idle_s=5.0))
    result = StageResult(name="idle", started_at=0.0, duration_s=5.0, connections=[opened, failed])
    path = PathResult(name="direct", url="ws://127.0.0.1:1/", stages=[handshake_stage(), result])
    return observations(path)


def _host(target: int | None, **values: int | str) -> Observations:
    limits = [HostLimit(name, value, "test") for name, value in values.items()]
    host = HostFacts(limits=limits, target_connections=target)
    return Observations(started_at=STARTED_AT, duration_s=0.0, host=host)


def _watch(*drops: Disconnect, up_s: float = 3500.0, connections: int = 1) -> Observations:
    log = WatchLog(duration_s=3600.0, connections=connections, up_s=up_s, disconnects=list(drops))
    path = PathResult(name="direct", url="ws://ws.example.com/")
    return Observations(started_at=STARTED_AT, duration_s=3600.0, paths=[path], watch=log)


def _drop(
    at: float, conn_id: int, kind: str, age: float, idle: float, **ending: object
) -> Disconnect:
    return Disconnect(
        at_s=at, connection=conn_id, ending=Ending(kind=kind, age_s=age, idle_s=idle, **ending)
    )  # type: ignore[arg-type]


def _failed_watch(reason: str, status: int | None = None) -> Observations:
    failure = failed_handshake_path(reason=reason, status=status).stages[0].connections[0]  # type: ignore[arg-type]
    ending = Ending(kind="handshake_failed", age_s=0.0, idle_s=0.0, detail=reason)
    drop = Disconnect(at_s=0.0, connection=1, ending=ending, failure=failure.handshake.failure)
    return _watch(drop, up_s=0.0)


def _size(*steps: tuple[int, bool]) -> Observations:
    ending = Ending(kind="close_frame", age_s=1.0, idle_s=0.0, code=1009, initiator="server")
    made = [Step(value=v, ok=ok, ending=None if ok else ending) for v, ok in steps]
    return observations(_stage_path("size", *made))


def _rate(*steps: tuple[int, bool], code: int = 1008) -> Observations:
    ending = Ending(kind="close_frame", age_s=1.0, idle_s=0.0, code=code, initiator="server")
    made = [Step(value=v, ok=ok, ending=None if ok else ending) for v, ok in steps]
    return observations(_stage_path("rate", *made))


def _storm(failed: int) -> Observations:
    plain = Step(value=20, ok=not failed, sent=20, answered=20, failed=failed, phase="storm")
    backoff = Step(value=20, ok=True, sent=20, answered=20, phase="storm_backoff")
    return observations(
        _stage_path("capacity", ramp_step(10, 10), ramp_step(20, 20), plain, backoff)
    )


def _one_idle_drop() -> Observations:
    via = clusters_tests.fleet_path("via-proxy", [None], 12.0, 12.0)
    idle = via.stage("idle")
    assert idle is not None
    idle.connections[0].ending = Ending(kind="eof", age_s=7.3, idle_s=7.3, detail="TCP FIN")
    return observations(clusters_tests.healthy_direct(12.0, 12.0), via)


def _server_push() -> Observations:
    path = idle_path(max_idle_s=30.0)
    idle = path.stage("idle")
    assert idle is not None
    sentinel = next(c for c in idle.connections if c.role == "sentinel")
    sentinel.events += [Event(t=t, kind="message_received") for t in (5.0, 10.0, 15.0)]
    return observations(path)


HAND_WRITTEN: dict[str, Callable[[], Observations]] = {
    "redirect": lambda: observations(
        failed_handshake_path(
            reason="http_status", status=302, message="redirected to https://example.com/"
        )
    ),
    "tls-on-plain-port": lambda: observations(
        failed_handshake_path(reason="tls", message=f"{TLS_ON_PLAIN_PORT}: try wss://")
    ),
    "not-http": lambda: observations(
        failed_handshake_path(reason="upgrade_not_performed", message=f"{NOT_HTTP}: b'SSH-2.0'")
    ),
    "gateway-502": lambda: observations(failed_handshake_path(reason="http_status", status=502)),
    "closed-on-open-1013": lambda: _closes(_close(1013), _close(1013)),
    "closed-on-open-1001": lambda: _closes(_close(1001), _close(1001)),
    "closed-on-open-1008": lambda: _closes(_close(1008)),
    "closed-later-1001": lambda: _closes(_close(1001, 7.0), _close(1001, 9.0), stage="echo"),
    "closed-later-1000": lambda: _closes(_close(1000, 7.0), stage="echo"),
    "protocol-error": lambda: _closes(
        Ending(kind="close_frame", age_s=2.0, idle_s=1.0, code=1002, initiator="client")
    ),
    "refused-503": lambda: _refused(503),
    "refused-429": lambda: _refused(429),
    "unknown-cdn": lambda: observations(
        idle_path("direct", until=horizon_for(37.0)),
        idle_path("via-proxy", drop_at=37.0, fingerprints=[fingerprint("edgy", "cdn", "x-edge")]),
    ),
    "unknown-proxy": lambda: observations(
        idle_path("direct", until=horizon_for(37.0)), idle_path("via-proxy", drop_at=37.0)
    ),
    "one-idle-drop": _one_idle_drop,
    "server-push": _server_push,
    "size-limit": lambda: _size((1024, True), (1 << 20, False)),
    "size-first-message": lambda: _size((1024, False)),
    "size-ok": lambda: _size((1024, True), (1 << 20, True)),
    "rate-limit": lambda: _rate((10, True), (100, False)),
    "burst-closed": lambda: _rate((10, True), (100, False), code=1011),
    "rate-ok": lambda: _rate((10, True), (100, True)),
    "capacity-503": lambda: observations(
        _stage_path("capacity", ramp_step(10, 10), ramp_step(20, 15, {"http_503": 5}))
    ),
    "capacity-429": lambda: observations(
        _stage_path("capacity", ramp_step(10, 10), ramp_step(20, 15, {"http_429": 5}))
    ),
    "capacity-refused": lambda: observations(
        _stage_path("capacity", ramp_step(10, 10), ramp_step(20, 15, {"refused": 5}))
    ),
    "capacity-shed": lambda: observations(
        _stage_path("capacity", ramp_step(10, 10), ramp_step(20, 15, {"shed_reset": 5}))
    ),
    "capacity-client-fd": lambda: observations(
        _stage_path(
            "capacity",
            ramp_step(10, 10),
            ramp_step(20, 15, {"client_fd_limit": 5}),
            client_fd_limit=20,
        )
    ),
    "capacity-client-ports": lambda: observations(
        _stage_path("capacity", ramp_step(10, 10), ramp_step(20, 15, {"client_ports": 5}))
    ),
    "capacity-held": lambda: observations(
        _stage_path("capacity", ramp_step(10, 10), ramp_step(20, 20))
    ),
    "capacity-not-recovered": lambda: observations(
        _stage_path(
            "capacity",
            ramp_step(10, 10),
            ramp_step(20, 12, {"timeout": 8}),
            Step(value=5, ok=False, sent=5, failed=5, failures={"timeout": 5}, phase="recovery"),
        )
    ),
    "storm-failing": lambda: _storm(5),
    "storm-weathered": lambda: _storm(0),
    "stages-ok": lambda: _rate((10, True), (100, True)),
    "host-short": lambda: _host(
        100_000,
        nofile_soft=1024,
        nofile_hard=4096,
        **{
            "fs.file-max": 50_000,
            "fs.file-nr": 1000,
            "net.netfilter.nf_conntrack_max": 65536,
            "fs.nr_open": 65536,
            "net.core.somaxconn": 4096,
            "net.ipv4.ip_local_port_range": "32768 60999",
            "net.netfilter.nf_conntrack_tcp_timeout_established": 300,
            "net.ipv4.tcp_keepalive_time": 7200,
        },
    ),
    "host-unreadable": lambda: Observations(
        started_at=STARTED_AT,
        duration_s=0.0,
        host=HostFacts(limits=[HostLimit("fs.file-max", None, "test", error="permission denied")]),
    ),
    "host-enough": lambda: _host(100, nofile_soft=65536),
    "host-no-target": lambda: _host(None, nofile_soft=65536),
    "watch-ok": lambda: _watch(up_s=3600.0),
    "watch-1009": lambda: _watch(_drop(100.0, 1, "close_frame", 100.0, 1.0, code=1009)),
    "watch-idle-fin": lambda: _watch(
        _drop(100.0, 1, "eof", 100.0, 60.0), _drop(400.0, 1, "eof", 110.0, 60.0)
    ),
    "watch-idle-close": lambda: _watch(
        _drop(100.0, 1, "close_frame", 100.0, 60.0, code=1000, initiator="server"),
        _drop(400.0, 1, "close_frame", 110.0, 60.0, code=1000, initiator="server"),
    ),
    "watch-idle-silent": lambda: _watch(
        _drop(100.0, 1, "silent", 100.0, 60.0), _drop(400.0, 1, "silent", 110.0, 60.0)
    ),
    "watch-lifetime": lambda: _watch(
        _drop(300.0, 1, "eof", 300.0, 1.0), _drop(600.0, 1, "eof", 300.0, 1.0)
    ),
    "watch-restart": lambda: _watch(
        _drop(100.0, 1, "close_frame", 100.0, 1.0, code=1012, initiator="server"),
        _drop(100.5, 2, "close_frame", 50.0, 1.0, code=1012, initiator="server"),
        connections=2,
    ),
    "watch-1013": lambda: _watch(
        _drop(100.0, 1, "close_frame", 100.0, 1.0, code=1013, initiator="server")
    ),
    "watch-1008": lambda: _watch(
        _drop(100.0, 1, "close_frame", 100.0, 1.0, code=1008, initiator="server")
    ),
    "watch-closed-at-once": lambda: _watch(
        _drop(100.0, 1, "close_frame", 0.1, 0.1, code=4000, initiator="server")
    ),
    "watch-one-fin": lambda: _watch(_drop(100.0, 1, "eof", 100.0, 1.0)),
    "watch-one-close": lambda: _watch(
        _drop(100.0, 1, "close_frame", 100.0, 1.0, code=1000, initiator="server")
    ),
    "watch-protocol-error": lambda: _watch(
        _drop(100.0, 1, "close_frame", 100.0, 1.0, code=1002, initiator="client")
    ),
    "watch-tls": lambda: _failed_watch("tls"),
    "watch-upgrade": lambda: _failed_watch("upgrade_not_performed"),
    "watch-unreachable": lambda: _failed_watch("refused"),
}


def _corpus() -> Iterator[tuple[str, Observations]]:
    for name, build in {**catalogue(), **HAND_WRITTEN}.items():
        yield name, build()


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^{}]*\}", template)
    return re.compile(".*".join(re.escape(p) for p in parts), re.DOTALL)


def _entries_matching(found: Finding) -> list[str]:
    """The catalogue keys whose code, severity, title and remedy fit ``found``."""
    return [
        key
        for key, entry in CATALOGUE.items()
        if code_of(key) == found.code
        and entry.severity == found.severity
        and _pattern(entry.title).fullmatch(found.title)
        and (
            found.remedy is None
            if entry.remedy is None
            else found.remedy is not None and bool(_pattern(entry.remedy).fullmatch(found.remedy))
        )
    ]


def _seen() -> dict[str, set[str]]:
    """Which catalogue keys each observation set's findings fit."""
    seen: dict[str, set[str]] = {}
    for name, obs in _corpus():
        for found in diagnose(obs).findings:
            keys = _entries_matching(found)
            assert keys, f"{name}: {found.code} {found.title!r} fits no catalogue entry"
            for key in keys:
                seen.setdefault(key, set()).add(name)
    return seen


def test_every_finding_fits_a_catalogue_entry_and_every_entry_is_reported() -> None:
    seen = _seen()
    never = sorted(set(CATALOGUE) - set(seen) - set(REAL_NETWORK_ONLY) - set(PIPELINE))
    assert not never, f"catalogue entries no observation set reports: {never}"


def test_a_judgement_proposes_the_culprit_its_findings_entry_supports() -> None:
    for name, obs in _corpus():
        for rule in RULES:
            for judgement in rule(obs):
                if judgement.culprit is None:
                    continue
                keys = _entries_matching(judgement.finding)
                supported = {CATALOGUE[key].culprit for key in keys}
                assert supported == {judgement.culprit}, (name, keys, judgement.culprit)


@properties_tests.SETTINGS
@given(properties_tests.observation_sets())
def test_findings_over_arbitrary_observations_fit_catalogue_entries(obs: Observations) -> None:
    for found in diagnose(obs).findings:
        assert _entries_matching(found), (found.code, found.title, found.remedy)


def test_entries_for_real_networks_only_are_in_the_catalogue_and_say_where() -> None:
    for key, where in {**REAL_NETWORK_ONLY, **PIPELINE}.items():
        assert key in CATALOGUE and where.strip(), key


def test_the_pipelines_internal_error_reads_as_its_catalogue_entry() -> None:
    from wsdoctor.execute import internal_error_finding

    try:
        raise ValueError("boom")
    except ValueError as exc:
        made = internal_error_finding(exc)
    assert _entries_matching(made) == ["internal_error"]


def test_every_rule_declares_catalogue_entries_and_together_they_cover_it() -> None:
    declared = [key for rule in RULES for key in rule.findings]
    assert set(declared) <= set(CATALOGUE), set(declared) - set(CATALOGUE)
    assert set(CATALOGUE) - set(PIPELINE) <= set(declared), set(CATALOGUE) - set(declared)
    assert len({rule.code for rule in RULES}) == len(RULES)
    assert all(rule.title for rule in RULES)


@pytest.mark.parametrize(("key", "entry"), CATALOGUE.items())
def test_entries_name_known_culprits_and_fill_their_templates(key: str, entry: Entry) -> None:
    assert entry.culprit is None or entry.culprit in CULPRITS
    names = set(re.findall(r"\{(\w+)", f"{entry.title} {entry.remedy or ''}"))
    made = finding(key, ["evidence"], **dict.fromkeys(names, 1.5))
    assert made.code == code_of(key) and "{" not in made.title


def test_a_rule_reporting_a_finding_it_does_not_declare_fails_loudly() -> None:
    rule = next(r for r in RULES if r.code == "stages_ok")
    wrong = type(rule)(rule.code, rule.title, rule.needs, rule.judge, ("size_ok",))
    with pytest.raises(ValueError, match="stages_ok"):
        wrong(HAND_WRITTEN["stages-ok"]())
