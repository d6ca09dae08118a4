"""The retry policy: every loop's values, the back-off's growth, its cap and its jitter."""

from __future__ import annotations

import pytest

from spillway.engine.retry import SCHEDULED, STREAM, STREAM_BATCH, RetryPolicy


def low(a: float, b: float) -> float:
    return a


def high(a: float, b: float) -> float:
    return b


def middle(a: float, b: float) -> float:
    return 1.0


def test_each_loop_keeps_its_values() -> None:
    assert SCHEDULED.terminal_ms == 5 * 60_000
    assert [SCHEDULED.backoff_ms(n, middle) for n in (1, 2, 3, 8, 9, 10)] == [
        5_000,
        10_000,
        20_000,
        640_000,
        900_000,  # capped at 15 minutes
        900_000,
    ]
    assert STREAM.terminal_ms == 60_000
    assert STREAM.delay_ms(1, terminal=False, draw=middle) == 10_000
    assert STREAM.delay_ms(7, terminal=False, draw=middle) == 10_000  # a flat requeue
    assert [STREAM_BATCH.backoff_ms(n, high) for n in (1, 2, 3, 6, 7, 50)] == [
        100,
        200,
        400,
        3_200,
        5_000,
        5_000,
    ]


def test_a_terminal_error_waits_the_terminal_interval_whatever_the_attempt() -> None:
    policy = RetryPolicy(terminal_ms=300, base_ms=1, cap_ms=10)
    assert policy.delay_ms(1, terminal=True) == 300
    assert policy.delay_ms(40, terminal=True) == 300
    assert policy.delay_ms(1, terminal=False, draw=middle) == 1


def test_the_backoff_never_grows_past_its_cap_even_after_many_attempts() -> None:
    policy = RetryPolicy(terminal_ms=0, base_ms=5_000, cap_ms=900_000, jitter=(1.0, 1.0))
    assert policy.backoff_ms(10_000) == 900_000
    assert policy.backoff_ms(0) == 5_000  # no attempt counted yet: the base


@pytest.mark.parametrize(
    "policy", [SCHEDULED, STREAM, STREAM_BATCH], ids=["scheduled", "stream", "stream_batch"]
)
def test_jitter_stays_within_its_bounds(policy: RetryPolicy) -> None:
    lo, hi = policy.jitter
    for attempt in range(1, 15):
        plain = min(policy.cap_ms, policy.base_ms * 2 ** (attempt - 1))
        assert policy.backoff_ms(attempt, low) == int(plain * lo)
        assert policy.backoff_ms(attempt, high) == int(plain * hi)
        for _ in range(20):
            assert int(plain * lo) <= policy.backoff_ms(attempt) <= int(plain * hi)


def test_jitter_spreads_workers_apart() -> None:
    assert len({SCHEDULED.backoff_ms(3) for _ in range(50)}) > 1
