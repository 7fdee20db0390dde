"""What every rule shares: the Judgement it returns and the Rule that declares it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wsdoctor.diagnosis.catalogue import code_of
from wsdoctor.diagnosis.model import Culprit, Finding, Hop, IdleCluster, Status
from wsdoctor.observations import Observations


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
    connection_limit: int | None = None
    max_message_bytes: int | None = None
    idle_timeout_range_s: list[float] | None = None
    idle_clusters: list[IdleCluster] = field(default_factory=list)
    kind: str = ""  # its level in ``precedence.PRECEDENCE``, when it proposes a culprit
    order: float = 0.0  # between judgements of one level: the higher wins
    casts_doubt: bool = False
    relies_on_pongs: bool = False
    status: Status | None = None  # overrides the status the culprit implies


@dataclass(frozen=True)
class Rule:
    """One audit: an id, a title, the stages it reads, its pure judging function, and the
    catalogue keys of the findings it may report."""

    code: str
    title: str
    needs: tuple[str, ...]
    judge: Callable[[Observations], list[Judgement]]
    findings: tuple[str, ...] = ()

    @property
    def codes(self) -> frozenset[str]:
        """The report codes of its findings."""
        return frozenset(code_of(key) for key in self.findings)

    def __call__(self, obs: Observations) -> list[Judgement]:
        """Judge ``obs``; a finding the rule does not declare is a programming error."""
        judgements = self.judge(obs)
        for judgement in judgements:
            if judgement.finding.code not in self.codes:
                raise ValueError(
                    f"rule {self.code!r} ({self.title}) reported finding "
                    f"{judgement.finding.code!r}, which it does not declare"
                )
        return judgements
