"""The reconnect backoff: exponential ceilings, full jitter, caps and resets."""

from __future__ import annotations

import random
import statistics

import pytest

from wsdoctor.backoff import STABLE_UP_S, Backoff, BackoffPolicy


def test_ceilings_double_from_the_base_up_to_the_cap() -> None:
    policy = BackoffPolicy(base_s=0.5, max_s=30.0)
    ceilings = [policy.ceiling(n) for n in range(10)]
    assert ceilings[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert all(c == 30.0 for c in ceilings[6:])
    assert policy.ceiling(10_000) == 30.0


def test_full_jitter_fills_zero_to_the_ceiling() -> None:
    policy = BackoffPolicy(base_s=1.0, max_s=8.0)
    rng = random.Random(7)
    draws = [policy.delay(3, rng) for _ in range(4000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    # uniform on [0, 8]: mean 4, and every eighth of the range is hit about equally often
    assert statistics.fmean(draws) == pytest.approx(4.0, abs=0.25)
    counts = [sum(1 for d in draws if k <= d < k + 1) for k in range(8)]
    assert min(counts) > 4000 / 8 * 0.8
    assert len({round(d, 6) for d in draws}) > 3900  # jittered, not a few fixed values


def test_delays_grow_while_failures_continue_and_stay_bounded() -> None:
    backoff = Backoff(BackoffPolicy(base_s=0.5, max_s=4.0), random.Random(1))
    steps = [backoff.next_delay() for _ in range(8)]
    ceilings = [c for _, c in steps]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0 <= d <= c for d, c in steps)
    assert backoff.failures == 8


def test_a_stable_connection_resets_the_backoff_and_a_short_one_does_not() -> None:
    backoff = Backoff(BackoffPolicy(base_s=0.5, max_s=4.0), random.Random(2))
    for _ in range(5):
        backoff.next_delay()
    backoff.dropped_after(3.9)  # shorter than the stable period (the cap, 4 s)
    assert backoff.next_delay()[1] == 4.0
    backoff.dropped_after(4.0)
    assert backoff.failures == 0
    assert backoff.next_delay()[1] == 0.5


def test_the_stable_period_is_the_cap_but_at_most_a_few_seconds() -> None:
    assert BackoffPolicy(base_s=0.1, max_s=1.0).stable_after_s == 1.0
    assert BackoffPolicy(base_s=0.5, max_s=30.0).stable_after_s == STABLE_UP_S == 5.0
    # With the default cap, a connection cut after 10 s is no failure: every drop starts over.
    backoff = Backoff(BackoffPolicy(base_s=0.5, max_s=30.0), random.Random(4))
    attempts = []
    for _ in range(6):
        backoff.dropped_after(10.0)
        backoff.next_delay()
        attempts.append(backoff.failures)
    assert attempts == [1] * 6
    # Connections dropped at once (1 s, under 5 s) are failures: the ceiling keeps doubling.
    ceilings = []
    for _ in range(5):
        backoff.dropped_after(1.0)
        ceilings.append(backoff.next_delay()[1])
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0]
    backoff.dropped_after(5.0)
    assert backoff.failures == 0


def test_the_stable_period_can_be_set_apart_from_the_cap() -> None:
    policy = BackoffPolicy(base_s=0.1, max_s=1.0, stable_s=60.0)
    backoff = Backoff(policy, random.Random(3))
    backoff.next_delay()
    backoff.dropped_after(30.0)
    assert backoff.failures == 1
    backoff.dropped_after(60.0)
    assert backoff.failures == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": 0.0},
        {"base_s": -1.0},
        {"base_s": float("nan")},
        {"base_s": 2.0, "max_s": 1.0},
        {"max_s": float("inf")},
        {"stable_s": 0.0},
    ],
)
def test_unusable_policies_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)
