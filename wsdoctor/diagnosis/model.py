"""What the rules produce: findings and one verdict (the report contract's vocabulary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["info", "warning", "error"]
Status = Literal["healthy", "problem", "inconclusive"]
Hop = Literal["direct", "proxy", "server", "network"]
Culprit = Literal[
    "none",
    "unreachable",
    "tls_error",
    "handshake_rejected",
    "upgrade_blocked",
    "proxy_idle_timeout",
    "cdn_idle_release",
    "nat_firewall_idle_drop",
    "server_idle_timeout",
    "lifetime_cap",
    "server_limits",
    "rate_limit",
    "message_size_limit",
    "network_instability",
    "restart",
]
CULPRITS: tuple[str, ...] = Culprit.__args__  # type: ignore[attr-defined]


@dataclass
class Finding:
    """One judged fact: what it means, the figures behind it, and what to do."""

    code: str
    severity: Severity
    title: str
    evidence: list[str] = field(default_factory=list)
    remedy: str | None = None


@dataclass
class IdleCluster:
    """One group of idle drops on a path: the timeout some of its connections met."""

    path: str
    idle_s: float  # the earliest drop (for a silent drop, the middle of its bracket)
    low_s: float
    high_s: float
    connections: int
    share: float  # of the idle connections whose fate is known
    ended_by: dict[str, int] = field(default_factory=dict)
    clock: Literal["idle", "age", "moment"] = "idle"


@dataclass
class Verdict:
    """The one answer of a run (field names are the public report contract)."""

    status: Status
    culprit: Culprit
    hop: Hop | None
    summary: str
    confidence: float
    idle_timeout_s: float | None = None
    lifetime_cap_s: float | None = None
    connection_limit: int | None = None
    max_message_bytes: int | None = None
    remedies: list[str] = field(default_factory=list)
    idle_timeout_range_s: list[float] | None = None
    idle_clusters: list[IdleCluster] = field(default_factory=list)


@dataclass
class Diagnosis:
    """Findings and the verdict drawn from them."""

    findings: list[Finding]
    verdict: Verdict
