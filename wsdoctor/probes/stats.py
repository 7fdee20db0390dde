"""Small statistics over RTT samples (percentiles and jitter)."""

from __future__ import annotations

from typing import Literal

from wsdoctor.observations import RttStats


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def rtt_stats(
    kind: Literal["protocol", "application"], samples_ms: list[float], lost: int = 0
) -> RttStats | None:
    """Percentiles and jitter (mean absolute difference of consecutive samples)."""
    if not samples_ms:
        return None
    ordered = sorted(samples_ms)
    diffs = [abs(b - a) for a, b in zip(samples_ms, samples_ms[1:])]
    return RttStats(
        kind=kind,
        samples=len(samples_ms),
        p50_ms=round(percentile(ordered, 0.50), 3),
        p95_ms=round(percentile(ordered, 0.95), 3),
        p99_ms=round(percentile(ordered, 0.99), 3),
        max_ms=round(ordered[-1], 3),
        jitter_ms=round(sum(diffs) / len(diffs), 3) if diffs else 0.0,
        lost=lost,
    )
