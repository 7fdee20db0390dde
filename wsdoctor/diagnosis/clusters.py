"""Drops as a distribution: group the connections a path lost into clusters, on three clocks.

Every drop has an idle age (seconds since the last byte either way), a connection age, and a
moment (when it happened). An idle timeout lines drops up on idle age; a lifetime cap, or an
idle timer that ignores protocol pings, lines them up on connection age; a worker that sweeps
its idle connections only when it wakes up cuts a batch at one moment, each member idle at
least as long as the timeout. The probe opens connections together but restarts their idle
clocks at different moments (rungs ping once, then go quiet again), so the clocks disagree, and
each cluster is judged on the clock it lines up on.

On idle age and connection age a cluster grows by single linkage: the next drop joins when it is
within ``link_gap`` of the last member (a timer checked on a one-second tick, or per worker
process, spreads one timeout over about a second) and the cluster stays within ``max_span``. A
batch on the moment clock spans at most ``MOMENT_SPAN_S``. Only idle-stage connections found
clusters: heartbeat and traffic connections die at random idle ages when something else kills
them, so they only join clusters. Pure functions, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Clock = Literal["idle", "age", "moment"]
CLOCKS: tuple[Clock, ...] = ("idle", "age", "moment")

TICK_S = 1.0
"""The coarsest timer tick seen in real proxies (Squid, Dante): drops of one timeout spread
over up to a tick either side of it."""
LINK_JITTER_S = 0.05
RELATIVE_SPREAD = 0.05
MIN_CLUSTER_SAMPLES = 2
MIN_CLUSTER_FOUNDERS = 2
MOMENT_GAP_S = 0.15
MOMENT_SPAN_S = 0.3
"""Closes one sweep sends out arrive within a few milliseconds; two sweeps are a tick apart."""


def link_gap(value_s: float, clock: Clock = "idle") -> float:
    """How far apart two neighbouring drops of one cluster may be."""
    if clock == "moment":
        return MOMENT_GAP_S
    return max(TICK_S + LINK_JITTER_S, RELATIVE_SPREAD * value_s)


def max_span(low_s: float, clock: Clock = "idle") -> float:
    """How wide one cluster may grow: on idle age a tick either side of the timeout (a timer
    compared in whole seconds and checked on a tick), or 10 %; on connection age one tick, or
    5 % (a fleet's idle timers, met by connections whose idle clocks restarted at different
    ages, must not chain into one cap); a moment's batch, a fraction of a second."""
    if clock == "moment":
        return MOMENT_SPAN_S
    if clock == "age":
        return max(TICK_S + LINK_JITTER_S, RELATIVE_SPREAD * low_s)
    return max(2 * TICK_S + 2 * LINK_JITTER_S, 2 * RELATIVE_SPREAD * low_s)


@dataclass(frozen=True)
class DropSample:
    """One connection that the far side ended (close frame, FIN or RST)."""

    id: str
    how: str
    idle_s: float
    age_s: float
    at_s: float = 0.0  # the moment, seconds from the start of the run
    keeper: bool = False
    code: int | None = None
    reason: str | None = None

    def on(self, clock: Clock) -> float:
        """This drop's reading on ``clock``."""
        return {"idle": self.idle_s, "age": self.age_s, "moment": self.at_s}[clock]


@dataclass
class DropCluster:
    """Drops that line up on one clock: one timeout, as seen by these connections."""

    clock: Clock
    members: list[DropSample] = field(default_factory=list)

    @property
    def _reading(self) -> Clock:
        """The clock figures are read on: a batch cut at one moment is read by idle age."""
        return "idle" if self.clock == "moment" else self.clock

    @property
    def low_s(self) -> float:
        """The earliest drop: what a heartbeat must beat."""
        return min(m.on(self._reading) for m in self.members)

    @property
    def high_s(self) -> float:
        """The latest drop of the cluster."""
        return max(m.on(self._reading) for m in self.members)

    @property
    def samples(self) -> int:
        """How many connections ended in this cluster."""
        return len(self.members)

    @property
    def founders(self) -> int:
        """How many of them were idle-stage connections (not heartbeat or traffic)."""
        return sum(1 for m in self.members if not m.keeper)

    @property
    def ended_by(self) -> dict[str, int]:
        """How the members ended, counted, most common first."""
        return dict(Counter(m.how for m in self.members).most_common())

    @property
    def how(self) -> str:
        """The most common way the members ended."""
        return next(iter(self.ended_by))

    @property
    def repeatable(self) -> bool:
        """Seen on enough idle connections to be a timer, not a coincidence."""
        return self.samples >= MIN_CLUSTER_SAMPLES and self.founders >= MIN_CLUSTER_FOUNDERS


def _linked_groups(samples: Sequence[DropSample], clock: Clock) -> list[list[DropSample]]:
    """Single-linkage groups of ``samples`` on ``clock``, each within ``max_span``."""
    ordered = sorted(samples, key=lambda s: (s.on(clock), s.id))
    groups: list[list[DropSample]] = []
    for sample in ordered:
        value = sample.on(clock)
        if groups:
            group = groups[-1]
            last = group[-1].on(clock)
            first = group[0].on(clock)
            if value - last <= link_gap(last, clock) and value - first <= max_span(first, clock):
                group.append(sample)
                continue
        groups.append([sample])
    return groups


def _best_group(samples: Sequence[DropSample]) -> DropCluster | None:
    """The group with the most idle-stage founders on any clock; then the most members; then
    the tightest figures (a lifetime cap cuts rungs at one age but at many idle ages); then
    idle age before connection age before the moment; then the shorter."""
    best: tuple[tuple[int, int, float, int, float], DropCluster] | None = None
    for rank, clock in enumerate(CLOCKS):
        for group in _linked_groups(samples, clock):
            cluster = DropCluster(clock, group)
            spread = round(cluster.high_s - cluster.low_s, 2)
            key = (cluster.founders, cluster.samples, -spread, -rank, -cluster.low_s)
            if best is None or key > best[0]:
                best = (key, cluster)
    return best[1] if best else None


def cluster_drops(samples: Iterable[DropSample]) -> tuple[list[DropCluster], list[DropSample]]:
    """Repeatable clusters, shortest first, and the drops that belong to none.

    Greedy: the largest group on any clock is taken first, its members removed, and so on
    while a repeatable group remains. A survivor (a connection that outlived a cluster) is not
    a sample here: it never cancels a cluster of drops.
    """
    left = list(samples)
    clusters: list[DropCluster] = []
    while left:
        best = _best_group(left)
        if best is None or not best.repeatable:
            break
        clusters.append(best)
        taken = {m.id for m in best.members}
        left = [s for s in left if s.id not in taken]
    clusters.sort(key=lambda c: c.low_s)
    return clusters, sorted(left, key=lambda s: s.idle_s)
