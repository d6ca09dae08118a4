"""The validation pool: per-project limit, no growth past its threads, a hard deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from spillway.api.errors import answer_for
from spillway.destinations.base import Check, CheckStatus
from spillway.errors import Busy
from spillway.validation import ValidationPool

PASSED = [Check.passed("credentials", "ok")]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set to let every hanging validation of a test finish."""
    event = threading.Event()
    yield event
    event.set()


def hangs(release: threading.Event) -> Callable[[], list[Check]]:
    def work() -> list[Check]:
        release.wait(30)
        return PASSED

    return work


def test_a_validation_within_the_deadline_answers_its_checks() -> None:
    pool = ValidationPool(2, 1, 5.0)
    assert pool.run("p", lambda: PASSED) == PASSED
    assert pool.run("p", lambda: PASSED) == PASSED  # its place was given back


def test_past_the_deadline_the_caller_gets_a_failed_check(release: threading.Event) -> None:
    pool = ValidationPool(2, 2, 0.3)
    started = time.monotonic()
    checks = pool.run("p", hangs(release))
    assert time.monotonic() - started < 2
    assert [(c.name, c.status) for c in checks] == [("deadline", CheckStatus.FAILED)]
    assert "did not answer within 0.3 s" in checks[0].message


def test_a_project_runs_at_most_its_share(release: threading.Event) -> None:
    pool = ValidationPool(4, 2, 0.3)
    with ThreadPoolExecutor(2) as callers:
        stuck = [callers.submit(pool.run, "p", hangs(release)) for _ in range(2)]
        time.sleep(0.1)
        with pytest.raises(Busy) as info:
            pool.run("p", lambda: PASSED)
        assert answer_for(info.value).status == 429
        assert "SPILLWAY_VALIDATION_PER_PROJECT" in str(info.value)
        assert int(answer_for(info.value).headers["Retry-After"]) >= 1
        assert pool.run("other", lambda: PASSED) == PASSED  # others are not held up
        for future in stuck:
            assert future.result()[0].name == "deadline"
    # Answered, but the stuck threads still run: they keep the project's places.
    with pytest.raises(Busy):
        pool.run("p", lambda: PASSED)
    release.set()
    deadline = time.monotonic() + 5
    while True:  # once they end, the project may validate again
        try:
            assert pool.run("p", lambda: PASSED) == PASSED
            break
        except Busy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_full_pool_refuses_at_once_instead_of_queuing(release: threading.Event) -> None:
    pool = ValidationPool(2, 2, 0.3)
    for project in ("a", "b"):
        pool.run(project, hangs(release))  # answered by the deadline, thread still stuck
    started = time.monotonic()
    with pytest.raises(Busy) as info:
        pool.run("c", lambda: PASSED)
    assert time.monotonic() - started < 0.1
    assert answer_for(info.value).status == 503
    assert answer_for(info.value).code == "validation_busy"
    assert "Retry-After" in answer_for(info.value).headers
    release.set()
    time.sleep(0.2)
    assert pool.run("c", lambda: PASSED) == PASSED
