"""Statistics over samples, with one definition of a percentile for the whole tool.

A percentile here is the **nearest rank**: the p-th percentile of n samples is the smallest
sample such that at least p % of the samples are at or below it, that is the sample of rank
ceil(p / 100 x n) counted from 1 in ascending order (rank 1 for p = 0). It is always one of the
samples, never an interpolation, so "p95 120 ms" means a round trip that really took 120 ms.
Examples: of [10, 20, 30, 40] the p50 is 20, the p75 30, the p76 40, the p100 40; of 20
samples the p95 is the 19th smallest; of 100 the p99 is the 99th.

``watch``, the stability stage, ``check``'s expectations and the RTT figures of every stage
all read their percentiles from here, so a "p95" means the same everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from wsdoctor.observations import RttStats

_ROUNDING_SLACK = 1e-9
"""``fraction x n`` is computed in floating point: 0.1 x 30 is 3.0000000000000004, whose
ceiling would skip a rank. A product within this of a whole number counts as that number."""


def percentile_rank(count: int, fraction: float) -> int:
    """The 0-based index of the nearest-rank percentile ``fraction`` (0..1) of ``count``
    sorted samples."""
    if count <= 0:
        raise ValueError("a percentile needs at least one sample")
    rank = math.ceil(fraction * count - _ROUNDING_SLACK)
    return min(count, max(1, rank)) - 1


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile ``fraction`` (0..1) of ``values`` (sorted or not)."""
    ordered = sorted(values)
    return ordered[percentile_rank(len(ordered), fraction)]


def percentile_or_none(values: Sequence[float], fraction: float) -> float | None:
    """As ``percentile``, or ``None`` without samples."""
    return percentile(values, fraction) if values else None


def jitter(values: Sequence[float]) -> float:
    """The mean absolute difference of consecutive samples, in their order (0 for fewer than
    two)."""
    diffs = [abs(b - a) for a, b in zip(values, values[1:])]
    return sum(diffs) / len(diffs) if diffs else 0.0


def rtt_stats(
    kind: Literal["protocol", "application"], samples_ms: list[float], lost: int = 0
) -> RttStats | None:
    """Percentiles, maximum and jitter of round trips in milliseconds (``None`` without any)."""
    if not samples_ms:
        return None
    return RttStats(
        kind=kind,
        samples=len(samples_ms),
        p50_ms=round(percentile(samples_ms, 0.50), 3),
        p95_ms=round(percentile(samples_ms, 0.95), 3),
        p99_ms=round(percentile(samples_ms, 0.99), 3),
        max_ms=round(max(samples_ms), 3),
        jitter_ms=round(jitter(samples_ms), 3),
        lost=lost,
    )
