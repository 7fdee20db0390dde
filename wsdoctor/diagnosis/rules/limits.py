"""Limit rules: message size and message rate limits, and the stability stage's figures.

Both limits are real problems, but they stand below an idle timeout, a refusal and a lifetime
cap in ``precedence.PRECEDENCE``. Those end every quiet or long-lived connection whatever it
carries, and they are why most users run wsdoctor; a size or rate limit ends only the
connections that send a message above it or a burst faster than it, which users can weigh
against their own traffic from the figures in the findings (both stay listed). The limits
outrank restarts and instability: they are deterministic, reproduced on demand by the probe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.catalogue import finding, remedy_text
from wsdoctor.diagnosis.knowledge import known_message_limits_within
from wsdoctor.diagnosis.model import Hop
from wsdoctor.diagnosis.rules.base import Judgement
from wsdoctor.observations import Observations, PathResult, StageResult, Step
from wsdoctor.plan import ALL_STAGES
from wsdoctor.stats import percentile
from wsdoctor.units import seconds as _seconds
from wsdoctor.units import size as size_text

RATE_CLOSE_CODES = {1008, 1013}
RATE_WORDS = re.compile(r"rate|too many|throttl|flood|slow down", re.IGNORECASE)
TOO_BIG_CODE = 1009
_SIZE_CONFIDENCE = {"close_frame": 0.7, "eof": 0.75, "reset": 0.75, "silent": 0.6}
_HOW = {"eof": "FIN, no close frame", "reset": "RST", "silent": "silence, the ping unanswered"}
SIZE_SETTINGS = (
    "websockets max_size, ws maxPayload, Socket.IO maxHttpBufferSize, gorilla SetReadLimit, "
    "Java setMaxTextMessageBufferSize"
)


def describe_step_ending(step: Step) -> str:
    """How a failed step ended, in a few words (``close 1009 (message too big)``, ``HTTP 429``)."""
    ending = step.ending
    if step.status is not None and (ending is None or ending.kind == "handshake_failed"):
        return f"HTTP {step.status}"
    if ending is None:
        return "failure"
    if ending.kind == "close_frame":
        reason = f" ({ending.reason})" if ending.reason else ""
        return f"close {ending.code}{reason}"
    if ending.kind == "handshake_failed":
        return f"a failed handshake ({ending.detail or 'unknown reason'})"
    return _HOW.get(ending.kind, ending.kind)


def _split(stage: StageResult) -> tuple[list[Step], Step | None]:
    """The steps that passed before the first failure, and that failure."""
    failed = next((s for s in stage.steps if not s.ok), None)
    return [s for s in stage.steps if s.ok], failed


def _is_direct(path: PathResult) -> bool:
    return path.name == "direct" and path.proxy is None


def _hop(
    obs: Observations, path: PathResult, stage_name: str, failed: Step
) -> tuple[Hop | None, str | None]:
    """Where a limit sits, and why when it cannot be placed.

    Seen through a proxy only (another path carried ``failed.value`` fine): the proxy. A
    silent ending: the network. On the direct path too, or a close frame or HTTP 429 from the
    far end, or a FIN or RST on the direct path (nothing between the probe and the server):
    the server. A FIN or RST seen through a proxy with no direct path to compare stays
    unplaced, and the second value says why.
    """
    ending, value = failed.ending, failed.value
    staged = [(p, p.stage(stage_name)) for p in obs.paths if p is not path]
    others = [(p, stage) for p, stage in staged if stage is not None]
    if not _is_direct(path) and any(
        s.ok and s.value >= value for _, stage in others for s in stage.steps
    ):
        return "proxy", None
    if ending is not None and ending.kind == "silent":
        return "network", None
    if any(
        _is_direct(p) and any(not s.ok and s.value <= value for s in stage.steps)
        for p, stage in others
    ):
        return "server", None
    if failed.status == 429 or ending is None or ending.kind == "close_frame":
        return "server", None
    if _is_direct(path):
        return "server", None
    return None, (
        f"{path.name}: not placed: the connection was cut ({describe_step_ending(failed)}) "
        "through an intermediary and no direct path carried this load to compare; probe the "
        "server's own URL as well (wsdoctor compare) to tell the proxy from the server"
    )


def size_bracket(stage: StageResult) -> tuple[list[Step], Step | None]:
    """The steps that passed below the smallest size that ended a connection, and that step.

    A fresh connection that did not open (while bisecting) says nothing about size: such a
    step is the failure only when no message ended a connection.
    """
    failures = [s for s in stage.steps if not s.ok]
    by_size = [s for s in failures if s.ending is None or s.ending.kind != "handshake_failed"]
    failed = min(by_size or failures[:1], key=lambda s: s.value, default=None)
    if failed is None:
        return [s for s in stage.steps if s.ok], None
    return [s for s in stage.steps if s.ok and s.value < failed.value], failed


def _size_judgement(
    obs: Observations, path: PathResult, stage: StageResult, passed: list[Step], failed: Step
) -> Judgement:
    largest = int(max(s.value for s in passed))
    how = describe_step_ending(failed)
    code = failed.ending.code if failed.ending else None
    kind = failed.ending.kind if failed.ending else "close_frame"
    confidence = 0.9 if code == TOO_BIG_CODE else _SIZE_CONFIDENCE.get(kind, 0.6)
    evidence = [
        f"{path.name}: messages up to {size_text(largest)} went through; one of "
        f"{size_text(failed.value)} ended the connection with {how}"
    ]
    bisected = [s for s in stage.steps if s.phase == "bisect"]
    if bisected:
        evidence.append(
            f"{path.name}: the limit lies between passed {largest:,} B and failed "
            f"{int(failed.value):,} B ({len(bisected)} bisection messages)"
        )
    beyond = [s for s in stage.steps if s.ok and s.value >= failed.value]
    if beyond:
        evidence.append(
            f"{path.name}: yet a larger message of {size_text(max(s.value for s in beyond))} "
            "went through on another connection: the limit is not steady"
        )
    hop, unplaced = _hop(obs, path, "size", failed)
    if unplaced:
        evidence.append(unplaced)
    remedies = [
        remedy_text("message_size_limit", largest=size_text(largest), settings=SIZE_SETTINGS)
    ]
    for known in known_message_limits_within(largest, int(failed.value), code):
        evidence.append(f"matches {known.name}: {known.note} ({known.source})")
        remedies.append(f"If this endpoint is behind {known.name}: {known.note}; chunk messages.")
    return Judgement(
        finding("message_size_limit", evidence, largest=size_text(largest), settings=SIZE_SETTINGS),
        culprit="message_size_limit",
        hop=hop,
        confidence=confidence,
        kind="message_limit",
        summary=f"Messages larger than {size_text(largest)} end connections on the {path.name} "
        f"path: a {size_text(failed.value)} message was answered with {how}.",
        remedies=remedies,
        max_message_bytes=largest,
    )


def judge_message_size(obs: Observations) -> list[Judgement]:
    """The first message size that ended the connection, after smaller ones went through."""
    out = []
    for path in obs.paths:
        stage = path.stage("size")
        if stage is None or not stage.steps:
            continue
        passed, failed = size_bracket(stage)
        if failed is not None and passed:
            out.append(_size_judgement(obs, path, stage, passed, failed))
        elif failed is not None:
            out.append(
                Judgement(
                    finding(
                        "size_first_message_closed",
                        [
                            f"{path.name}: a {size_text(failed.value)} message was answered "
                            f"with {describe_step_ending(failed)}; a small JSON-shaped text "
                            "message says more about what the server accepts than about size"
                        ],
                    )
                )
            )
        else:
            largest = size_text(max(s.value for s in passed))
            cut = " before the run was interrupted" if stage.interrupted else ""
            out.append(
                Judgement(
                    finding("size_ok", [f"{path.name}: messages up to {largest} went through{cut}"])
                )
            )
    return out


def _rate_text(step: Step) -> str:
    return f"{step.value:g} messages/s"


def _tied_to_rate(step: Step, passed: list[Step]) -> bool:
    """A 429, or a rate-like close after slower bursts went through."""
    if step.status == 429:
        return True
    ending = step.ending
    if not passed or ending is None or ending.kind != "close_frame":
        return False
    return ending.code in RATE_CLOSE_CODES or bool(RATE_WORDS.search(ending.reason or ""))


def _rate_judgement(
    obs: Observations, path: PathResult, passed: list[Step], failed: Step
) -> Judgement:
    how = describe_step_ending(failed)
    fastest = max((s.value for s in passed), default=None)
    sent = f" after {failed.sent} messages in {_seconds(failed.elapsed_s)}" if failed.sent else ""
    evidence = [f"{path.name}: a burst at {_rate_text(failed)} ended with {how}{sent}"]
    if fastest is not None:
        evidence.append(f"{path.name}: bursts up to {fastest:g} messages/s went through")
    if failed.status == 429 and failed.ending and failed.ending.kind != "handshake_failed":
        evidence.append(f"{path.name}: the reconnect right after was refused with HTTP 429")
    below = f"stay below {fastest:g} messages/s per connection" if fastest else "slow down"
    summary_tail = f"; {fastest:g}/s went through." if fastest else "."
    hop, unplaced = _hop(obs, path, "rate", failed)
    if unplaced:
        evidence.append(unplaced)
    return Judgement(
        finding("rate_limit", evidence, below=below),
        culprit="rate_limit",
        hop=hop,
        confidence=0.9 if failed.status == 429 else 0.85,
        kind="message_limit",
        summary=f"The {path.name} path limits the message rate: a burst at "
        f"{_rate_text(failed)} ended with {how}{summary_tail}",
        remedies=[
            f"Batch or coalesce messages and {below}, or raise the server's per-connection "
            "message rate limit if this load is expected.",
            "On close 1008 or 1013, or HTTP 429, reconnect with exponential backoff and jitter.",
        ],
    )


def judge_message_rate(obs: Observations) -> list[Judgement]:
    """The first burst rate the server punished (1008/1013 close or HTTP 429)."""
    out = []
    for path in obs.paths:
        stage = path.stage("rate")
        if stage is None or not stage.steps:
            continue
        passed, failed = _split(stage)
        if failed is not None and _tied_to_rate(failed, passed):
            out.append(_rate_judgement(obs, path, passed, failed))
        elif failed is not None:
            out.append(
                Judgement(
                    finding(
                        "burst_closed",
                        [
                            f"{path.name}: a burst at {_rate_text(failed)} ended with "
                            f"{describe_step_ending(failed)}, not a rate-limit signal "
                            "(close 1008/1013 after slower bursts, or HTTP 429)"
                        ],
                    )
                )
            )
        else:
            fastest = max(s.value for s in passed)
            out.append(
                Judgement(
                    finding(
                        "rate_ok",
                        [f"{path.name}: bursts up to {fastest:g} messages/s went through"],
                    )
                )
            )
    return out


@dataclass
class StabilityFigures:
    """What the stability stage measured on one path (times in milliseconds)."""

    pings: int
    lost: int
    rtt_ms: list[float]  # sorted
    gaps_ms: list[float]  # stretches without received bytes, between pongs or to a drop
    interval_ms: float
    drops: int
    minutes: float
    loop_lag_ms: float

    def percentile(self, fraction: float) -> float:
        """An RTT percentile (``wsdoctor.stats``: nearest rank; 0 without samples)."""
        return percentile(self.rtt_ms, fraction) if self.rtt_ms else 0.0

    @property
    def longest_gap_ms(self) -> float:
        """The longest stretch without received bytes: the worst stall."""
        return max(self.gaps_ms, default=0.0)

    @property
    def drops_per_min(self) -> float:
        """Drops per minute of sampling."""
        return self.drops / self.minutes if self.minutes > 0 else 0.0

    def stalls(self, threshold_ms: float) -> list[float]:
        """Gaps overrunning the ping cadence by ``threshold_ms`` or by the probe's own lag."""
        floor = self.interval_ms + max(threshold_ms, self.loop_lag_ms)
        return [g for g in self.gaps_ms if g >= floor]

    def describe(self, threshold_ms: float) -> str:
        """The figures in one line, for evidence."""
        return (
            f"{len(self.stalls(threshold_ms))} stall(s), the longest {self.longest_gap_ms:.0f} ms "
            f"without received bytes while pinging every {self.interval_ms:.0f} ms "
            f"(RTT p50 {self.percentile(0.5):.1f} ms, p99 {self.percentile(0.99):.1f} ms, "
            f"max {self.percentile(1.0):.1f} ms; {self.lost} of {self.pings} pongs lost; "
            f"{self.drops} drop(s), {self.drops_per_min:.1f} per minute)"
        )


_RECEIVED = ("pong_received", "message_received")


def _gaps_ms(stage: StageResult) -> list[float]:
    gaps = []
    for record in stage.connections:
        if not record.handshake.ok:
            continue
        times = [0.0, *sorted(e.t for e in record.events if e.kind in _RECEIVED)]
        if record.ending.kind not in ("local", "open"):
            times.append(record.ending.age_s)  # the silence before a drop counts too
        gaps += [(b - a) * 1000 for a, b in zip(times, times[1:])]
    return gaps


def stability_figures(path: PathResult) -> StabilityFigures | None:
    """RTT, losses, pauses and unexplained drops of the stability stage, if it ran."""
    stage = path.stage("stability")
    if stage is None:
        return None
    records = [c for c in stage.connections if c.handshake.ok]
    if not records:
        return None
    events = [e for c in records for e in c.events]
    ids = {c.id for c in records}
    drops = [c for c in facts.unexpected_drops(path) if c.id in ids]
    return StabilityFigures(
        pings=sum(1 for e in events if e.kind == "ping_sent"),
        lost=sum(1 for e in events if e.kind == "ping_timeout"),
        rtt_ms=sorted(
            e.rtt_ms for e in events if e.kind == "pong_received" and e.rtt_ms is not None
        ),
        gaps_ms=_gaps_ms(stage),
        interval_ms=(records[0].interval_s or 0.0) * 1000,
        drops=len(drops),
        minutes=sum(c.ending.age_s for c in records) / 60,
        loop_lag_ms=stage.loop_lag.max_ms if stage.loop_lag else 0.0,
    )


def rtt_samples_outside_stability(path: PathResult) -> list[float]:
    """Round trips of every stage but stability, whose stalls are judged as pauses instead."""
    return [
        e.rtt_ms
        for stage in path.stages
        if stage.name != "stability"
        for c in stage.connections
        for e in c.events
        if e.rtt_ms is not None
    ]


def _passed(stage: StageResult) -> bool:
    if stage.interrupted:
        return False
    if stage.name == "handshake":
        return bool(stage.connections) and stage.connections[0].handshake.ok
    if stage.name in ("echo", "stability"):
        return bool(stage.rtt)
    return bool(stage.steps) and all(s.ok for s in stage.steps)


def _stage_figures(stage: StageResult) -> str:
    """What a passed stage measured, in a few words."""
    if stage.name == "handshake":
        shake = stage.connections[0].handshake
        phases = (shake.dns_s, shake.tcp_s, shake.tls_s, shake.upgrade_s)
        total_ms = sum(p for p in phases if p is not None) * 1000
        return f"handshake {total_ms:.1f} ms (HTTP {shake.status})"
    protocol = [r for r in stage.rtt if r.kind == "protocol"]
    if stage.name == "echo" and protocol:
        rtt = protocol[0]
        return f"echo RTT p50 {rtt.p50_ms:.1f} ms over {rtt.samples} pings"
    return f"{stage.name} passed"


def judge_stages_ok(obs: Observations) -> list[Judgement]:
    """Without an idle stage, passing stages are the health verdict: a quick connectivity
    check (``--stages handshake,echo``) is healthy when the path upgrades and answers.

    Any problem another rule finds outranks this judgement, so it only decides health.
    """
    if not obs.paths or obs.interrupted or any(p.stage("idle") is not None for p in obs.paths):
        return []
    evidence = []
    for path in obs.paths:
        ran = [
            s for s in path.stages if s.name in ("handshake", "echo", "size", "rate", "stability")
        ]
        if not ran or not all(_passed(s) for s in ran):
            return []
        evidence.append(f"{path.name}: " + ", ".join(_stage_figures(s) for s in ran))
    ran_names = {s.name for p in obs.paths for s in p.stages}
    skipped = [name for name in ALL_STAGES if name not in ran_names]
    return [
        Judgement(
            finding("stages_ok", evidence),
            culprit="none",
            confidence=0.6,
            kind="stages_ok",
            summary="No problem in the requested stages ("
            + ", ".join(name for name in ALL_STAGES if name in ran_names)
            + ")"
            + (f"; not run: {', '.join(skipped)}" if skipped else "")
            + ". Run the idle stage too for drops after idle time.",
            remedies=["Nothing to fix in what was probed; probe without --stages for idle drops."],
        )
    ]
