"""Capacity rules: the concurrency level where handshakes fail, recovery, reconnect storms.

They read the steps of the ``capacity`` stage (``probes/capacity.py``): ramp steps hold a
concurrency level (``answered`` = connections open at its end), the recovery step tries a few
connections once the load is gone, and the storm steps reconnect every held connection at once.
Failure keys starting with ``client_`` are the client's own limits, never the server's.
"""

from __future__ import annotations

from wsdoctor.diagnosis.catalogue import finding, remedy_text
from wsdoctor.diagnosis.model import Culprit, Hop
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.observations import Observations, PathResult, StageResult, Step

CLIENT_PREFIX = "client_"
SHED_PREFIX = "shed_"

_LABELS = {
    "refused": "connection refused",
    "reset": "reset during the upgrade",
    "timeout": "no answer in time",
    "shed_close_frame": "open connection closed by the server (close frame)",
    "shed_eof": "open connection dropped (FIN, no close frame)",
    "shed_reset": "open connection reset (RST)",
    "shed_silent": "open connection stopped answering pings",
    "client_fd_limit": "the client ran out of descriptors",
    "client_ports": "the client ran out of local ports",
}

_KEYS = {
    "turned_away": "server_limits.turned_away",
    "rate": "connection_rate_limit",
    "stopped_accepting": "server_limits.stopped_accepting",
    "shed": "server_limits.shed",
}
"""The catalogue key of each way a ramp fails."""


def _label(key: str) -> str:
    if key.startswith("http_"):
        return f"HTTP {key[5:]}"
    return _LABELS.get(key, key)


def describe_failures(failures: dict[str, int]) -> str:
    """Failure counts for people: ``HTTP 503 x 20, no answer in time x 3``."""
    ordered = sorted(failures.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{_label(key)} x {count}" for key, count in ordered)


def _kind(key: str) -> str:
    if key == "http_429":
        return "rate"
    if key.startswith("http_"):
        return "turned_away"
    if key.startswith(SHED_PREFIX):
        return "shed"
    return "stopped_accepting"


def _steps(stage: StageResult, phase: str) -> list[Step]:
    return [s for s in stage.steps if s.phase == phase]


def _split(failures: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    server = {k: n for k, n in failures.items() if not k.startswith(CLIENT_PREFIX)}
    client = {k: n for k, n in failures.items() if k.startswith(CLIENT_PREFIX)}
    return server, client


def _recovery_sentence(stage: StageResult) -> str | None:
    found = _steps(stage, "recovery")
    if not found:
        return None
    step = found[-1]
    if step.ok:
        return (
            f"It recovered: {int(step.value)} new connections opened {step.elapsed_s:.1f} s "
            "after the load was gone."
        )
    return (
        f"It had not recovered {step.elapsed_s:.1f} s after the load was gone: "
        f"{step.answered} of {step.sent} new connections opened "
        f"({describe_failures(step.failures)})."
    )


def _levels(ramp: list[Step]) -> str:
    good = [str(int(s.value)) for s in ramp if s.ok]
    return f"levels fully held: {', '.join(good)}" if good else "no level was fully held"


def _is_direct(path: PathResult) -> bool:
    return path.name == "direct" and path.proxy is None


def _hop(obs: Observations, path: PathResult, held: int) -> tuple[Hop | None, str | None]:
    """Where the limit sits, and why when it cannot be placed.

    `wsdoctor capacity` ramps one direct URL: what fails there is the server's limit. A path
    through a proxy is placed by comparison: another path that held more connections puts the
    limit at the proxy, a direct path that failed as well puts it at the server.
    """
    if _is_direct(path):
        return "server", None
    for other in obs.paths:
        stage = other.stage("capacity")
        if other is path or stage is None:
            continue
        ramp = _steps(stage, "ramp")
        if any(s.answered > held for s in ramp):
            return "proxy", None
        if _is_direct(other) and any(not s.ok for s in ramp):
            return "server", None
    return None, (
        f"{path.name}: not placed: this path goes through an intermediary and no direct path "
        "was ramped to compare; ramp the server's own URL too to tell the proxy from the server"
    )


def _limit(
    obs: Observations, path: PathResult, stage: StageResult, ramp: list[Step], bad: Step
) -> Judgement:
    server, _ = _split(bad.failures)
    held = max(s.answered for s in ramp)
    dominant = max(server, key=lambda key: (server[key], key))
    kind = _kind(dominant)
    culprit: Culprit = "rate_limit" if kind == "rate" else "server_limits"
    how = {
        "turned_away": f"the server answers new handshakes with {_label(dominant)}",
        "rate": "the server answers new handshakes with HTTP 429",
        "stopped_accepting": "new connections fail: " + describe_failures(server),
        "shed": "the server drops open connections: " + describe_failures(server),
    }[kind]
    recovery = _recovery_sentence(stage)
    evidence = [
        f"{path.name}: {held} connections held at once; at the {int(bad.value)}-connection "
        f"level {sum(server.values())} failed: {describe_failures(server)}",
        f"{path.name}: {_levels(ramp)}",
    ]
    if recovery:
        evidence.append(f"{path.name}: {recovery}")
    hop, unplaced = _hop(obs, path, held)
    if unplaced:
        evidence.append(unplaced)
    return Judgement(
        finding(_KEYS[kind], evidence, held=held),
        culprit=culprit,
        hop=hop,
        confidence=0.9 if held else 0.6,
        kind="capacity_limit",
        summary=f"The {path.name} path holds about {held} concurrent connections: beyond that, "
        f"{how}." + (f" {recovery}" if recovery else ""),
        remedies=[remedy_text(_KEYS[kind], held=held)],
        connection_limit=held if culprit == "server_limits" else None,
        relies_on_pongs=set(server) == {"shed_silent"},
    )


def _client_limited(
    path: PathResult, stage: StageResult, ramp: list[Step], bad: Step, decisive: bool
) -> Judgement:
    """The client's own limit stopped the ramp; ``decisive`` when no server failure did."""
    _, client = _split(bad.failures)
    held = max(s.answered for s in ramp)
    ports = "client_ports" in client
    what = "local port range" if ports else f"descriptor limit ({stage.client_fd_limit})"
    key = "client_limit_reached.ports" if ports else "client_limit_reached"
    return Judgement(
        finding(
            key,
            [
                f"{path.name}: the server held all {held} connections this client could open; "
                f"{sum(client.values())} more for the {int(bad.value)}-connection level were "
                f"not attempted: {' and '.join(_label(key) for key in sorted(client))}",
                f"{path.name}: client RLIMIT_NOFILE soft limit {stage.client_fd_limit}",
            ],
        ),
        culprit="none" if decisive else None,
        status="inconclusive",
        confidence=0.5,
        kind="healthy",
        summary=f"No server limit up to {held} connections, but this client's own {what} "
        f"stopped the ramp before {int(bad.value)}.",
        remedies=[remedy_text(key)],
    )


def _held(path: PathResult, stage: StageResult, ramp: list[Step]) -> Judgement:
    held = ramp[-1].answered
    evidence = [f"{path.name}: {_levels(ramp)}"]
    recovery = _recovery_sentence(stage)
    if recovery:
        evidence.append(f"{path.name}: {recovery}")
    return Judgement(
        finding("capacity_held", evidence, held=held),
        culprit="none",
        confidence=0.8,
        kind="healthy",
        summary=f"No connection limit up to {held}: the {path.name} path held {held} concurrent "
        "connections without a failed handshake or a dropped connection.",
        remedies=[
            f"Nothing to fix up to {held} connections; ramp higher with --max-connections to "
            "find the limit."
        ],
    )


def _not_recovered(path: PathResult, stage: StageResult) -> Judgement | None:
    found = _steps(stage, "recovery")
    if not found or found[-1].ok:
        return None
    return Judgement(finding("server_not_recovered", [f"{path.name}: {_recovery_sentence(stage)}"]))


def _rate(step: Step) -> str:
    share = step.failed / step.sent if step.sent else 0.0
    return f"{step.failed} of {step.sent} attempts failed ({share:.0%})"


def _storm(path: PathResult, stage: StageResult) -> Judgement | None:
    plain, backoff = _steps(stage, "storm"), _steps(stage, "storm_backoff")
    if not plain or not backoff:
        return None
    lines = []
    for step, how in ((plain[-1], "without backoff"), (backoff[-1], "with backoff and jitter")):
        line = (
            f"{path.name}: {int(step.value)} connections dropped at once and reconnected {how}: "
            f"{_rate(step)}, {step.answered} back after {step.elapsed_s:.1f} s"
        )
        if step.failures:
            line += f" ({describe_failures(step.failures)})"
        lines.append(line)
    return Judgement(
        finding("reconnect_storm" if plain[-1].failed else "reconnect_storm.weathered", lines)
    )


def _judge_path(obs: Observations, path: PathResult, stage: StageResult) -> list[Judgement]:
    ramp = _steps(stage, "ramp")
    if not ramp:
        return []
    out = []
    bad = next((s for s in ramp if not s.ok), None)
    server, client = _split(bad.failures) if bad else ({}, {})
    if bad is not None and server:
        out.append(_limit(obs, path, stage, ramp, bad))
    if bad is not None and client:
        out.append(_client_limited(path, stage, ramp, bad, decisive=not server))
    if bad is None:
        out.append(_held(path, stage, ramp))
    out.extend(j for j in (_not_recovered(path, stage), _storm(path, stage)) if j is not None)
    return out


def judge_capacity(obs: Observations) -> list[Judgement]:
    """Where concurrent connections begin to fail, how, and whether the server recovers."""
    out = []
    for path in obs.paths:
        stage = path.stage("capacity")
        if stage is not None:
            out.extend(_judge_path(obs, path, stage))
    return out
