"""The one percentile definition (nearest rank) and the one way to print durations and sizes."""

from __future__ import annotations

import pytest

from wsdoctor.stats import jitter, percentile, percentile_or_none, percentile_rank, rtt_stats
from wsdoctor.units import clock, seconds, seconds_as_ms, seconds_tenths, size


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([10.0, 20.0, 30.0, 40.0], 0.5, 20.0),  # rank ceil(2) = 2: not the mean of 20 and 30
        ([10.0, 20.0, 30.0, 40.0], 0.75, 30.0),
        ([10.0, 20.0, 30.0, 40.0], 0.76, 40.0),
        ([10.0, 20.0, 30.0, 40.0], 1.0, 40.0),
        ([10.0, 20.0, 30.0, 40.0], 0.0, 10.0),  # rank 1 at least
        ([40.0, 10.0, 30.0, 20.0], 0.5, 20.0),  # unsorted input is sorted first
        ([7.0], 0.99, 7.0),
        ([float(v) for v in range(1, 21)], 0.95, 19.0),  # of 20 samples, the 19th
        ([float(v) for v in range(1, 101)], 0.99, 99.0),  # of 100, the 99th
        ([float(v) for v in range(1, 31)], 0.1, 3.0),  # 0.1 x 30 is 3.0000000000000004
        ([float(v) for v in range(1, 11)], 0.5, 5.0),
        ([float(v) for v in range(1, 12)], 0.5, 6.0),  # the median of an odd count
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], fraction: float, expected: float):
    assert percentile(values, fraction) == expected


def test_percentile_needs_samples() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile_rank(0, 0.5)
    assert percentile_or_none([], 0.5) is None


def test_rtt_stats_use_the_same_percentiles_and_jitter() -> None:
    samples = [5.0, 1.0, 3.0, 2.0, 4.0]
    stats = rtt_stats("protocol", samples, lost=1)
    assert stats is not None
    assert (stats.p50_ms, stats.p95_ms, stats.p99_ms, stats.max_ms) == (3.0, 5.0, 5.0, 5.0)
    assert stats.jitter_ms == jitter(samples) == 2.25
    assert (stats.samples, stats.lost) == (5, 1)
    assert rtt_stats("protocol", []) is None


def test_units() -> None:
    assert (seconds(7.46), seconds(99.94), seconds(120.4)) == ("7.5 s", "99.9 s", "120 s")
    assert (seconds_tenths(60.123), seconds_tenths(600.0), seconds_tenths(None)) == (
        "60.1 s",
        "600.0 s",
        "-",
    )
    assert (seconds_as_ms(0.0123), seconds_as_ms(None)) == ("12.3 ms", "-")
    assert (clock(42.9), clock(187.0), clock(3723.0)) == ("42s", "3m07s", "1h02m03s")
    assert (size(512), size(65536), size(1.5 * (1 << 20)), size(1000.0)) == (
        "512 B",
        "64 KiB",
        "1.5 MiB",
        "1000 B",
    )
