"""Reconnect backoff: exponential with full jitter, capped, reset after a stable period.

Pure and clock-free: callers pass how long a connection stayed up, and a random source.
Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the reconnects of
many clients dropped at the same moment, so that they do not return in one synchronised wave
(the thundering herd after a restart); the growing ceiling keeps a failing client from looping.

Backoff is for *consecutive failures*. A failure is a handshake that fails, or a connection
that ends within its first ``stable`` seconds (accepted, then dropped at once: a crash loop, a
backend that is down behind a proxy that upgrades anyway, a refusal by close frame). A
connection that stayed up ``stable`` seconds or more ends the run: the wait after its drop is
the first one again (up to the base). ``stable`` is min(the cap, ``STABLE_UP_S``):

- never longer than the cap: a connection that stayed up as long as the longest wait already
  spaced its attempts as far apart as a client backed off all the way would, so counting it
  as a failure protects nobody, and only blinds a watch for longer after each drop;
- never longer than ``STABLE_UP_S`` (5 s): by then the handshake, the upgrade and the first
  exchanges have worked, and a target that cuts every connection after that long gets at most
  one handshake per 5 s from each watched connection, a load nothing notices.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

STABLE_UP_S = 5.0
"""Up this long (or as long as the cap, if shorter), a connection was no failure."""


@dataclass(frozen=True)
class BackoffPolicy:
    """How long to wait before the next reconnect attempt.

    ``stable_s`` is how long a connection must stay up for its drop not to count as a failure
    (the failure count starts over); by default min(``max_s``, ``STABLE_UP_S``), see the
    module's docstring.
    """

    base_s: float = 0.5
    max_s: float = 30.0
    stable_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base_s) and self.base_s > 0):
            raise ValueError(
                f"backoff base must be a positive number of seconds, got {self.base_s}"
            )
        if not (math.isfinite(self.max_s) and self.max_s >= self.base_s):
            raise ValueError(
                f"backoff maximum must be at least the base ({self.base_s:g} s), got {self.max_s}"
            )
        if self.stable_s is not None and not self.stable_s > 0:
            raise ValueError(f"stable period must be positive, got {self.stable_s}")

    @property
    def stable_after_s(self) -> float:
        """How long a connection must stay up for the failure count to start over."""
        if self.stable_s is not None:
            return self.stable_s
        return min(self.max_s, STABLE_UP_S)

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` consecutive failures: base x 2^failures, capped."""
        if failures >= 64:  # 2**64 x any positive base is past every sensible cap
            return self.max_s
        return min(self.max_s, self.base_s * 2**failures)

    def delay(self, failures: int, rng: random.Random) -> float:
        """A wait drawn uniformly from [0, ceiling(failures)] (full jitter)."""
        return rng.uniform(0.0, self.ceiling(failures))


@dataclass
class Backoff:
    """The backoff state of one connection: consecutive failures so far."""

    policy: BackoffPolicy
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> tuple[float, float]:
        """The wait before the next attempt and its ceiling; counts one more failure."""
        ceiling = self.policy.ceiling(self.failures)
        delay = self.policy.delay(self.failures, self.rng)
        self.failures += 1
        return delay, ceiling

    def dropped_after(self, up_s: float) -> None:
        """A connection that had been up for ``up_s`` seconds dropped: a stable one was no
        failure, so the count starts over; a shorter one counts as one more failure when the
        wait is drawn (``next_delay``)."""
        if up_s >= self.policy.stable_after_s:
            self.failures = 0
