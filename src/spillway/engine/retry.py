"""When a delivery loop tries again after a failure: one policy class, every loop's values here.

An error no retry is known to cure (terminal) waits a fixed interval, so that a fix made meanwhile
(new credentials, a created bucket) is picked up without anyone restarting anything. A transient
error backs off exponentially, up to a cap, with jitter so that many workers don't retry in step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

Draw = Callable[[float, float], float]

# A generator of our own: loops run in background threads, and drawing from the module-level
# one would change global state that other code in the process (tests' property generators
# among them) expects to own.
_jitter = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before attempt ``n + 1`` after attempt ``n`` failed."""

    terminal_ms: int  # after a terminal error
    base_ms: int  # after the first transient failure, before jitter
    cap_ms: int  # the longest back-off, before jitter
    jitter: tuple[float, float] = (0.8, 1.2)  # the back-off is multiplied by a draw in here

    def backoff_ms(self, attempt: int, draw: Draw = _jitter.uniform) -> int:
        """The wait after the ``attempt``-th transient failure (counted from 1):
        ``base_ms · 2^(attempt-1)``, at most ``cap_ms``, times the jitter."""
        exponent = min(max(attempt - 1, 0), 32)  # far past any cap: keeps the number small
        delay = min(self.cap_ms, self.base_ms * 2**exponent)
        return int(delay * draw(*self.jitter))

    def delay_ms(self, attempt: int, *, terminal: bool, draw: Draw = _jitter.uniform) -> int:
        """The wait after a failure: the terminal interval, or the back-off."""
        return self.terminal_ms if terminal else self.backoff_ms(attempt, draw)


# Scheduled file exports: a failing export re-tries by itself every five minutes; a transient
# failure backs off from 5 s to 15 min.
SCHEDULED = RetryPolicy(terminal_ms=5 * 60_000, base_ms=5_000, cap_ms=15 * 60_000)
# Streams, between passes: a failing stream tries again every minute; a pass given up on after
# transient errors (its batch was retried for a while already) goes back after about 10 s.
STREAM = RetryPolicy(terminal_ms=60_000, base_ms=10_000, cap_ms=10_000)
# Streams, within a batch: resends back off from 0.1 s to 5 s, never beyond (the lease is short).
STREAM_BATCH = RetryPolicy(
    terminal_ms=STREAM.terminal_ms, base_ms=100, cap_ms=5_000, jitter=(0.5, 1.0)
)
