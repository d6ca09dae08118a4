"""Destination validations in their own small pool, so one project cannot stall the others.

A validation talks to a server the project chose, which may never answer. So validations run
in a pool of their own (``SPILLWAY_VALIDATION_CONCURRENCY`` threads, never the threads that
serve requests), at most ``SPILLWAY_VALIDATION_PER_PROJECT`` of one project at once (beyond:
429), and each has a hard deadline (``SPILLWAY_VALIDATION_DEADLINE_SECONDS``): when it passes,
the caller gets a failed check saying the destination did not answer, while the stuck thread
finishes on its own (the SDK clients' connect and read timeouts end it). A stuck validation
keeps its place until then, so the pool cannot grow: when every place is taken, new
validations are refused at once with 503 and ``Retry-After`` instead of queuing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from spillway.destinations.base import Check
from spillway.errors import Busy, RateLimited
from spillway.settings import Settings, get_settings

log = logging.getLogger(__name__)


class ValidationPool:
    """The pool, its per-project counts and its deadline."""

    def __init__(self, concurrency: int, per_project: int, deadline_seconds: float) -> None:
        self.concurrency = concurrency
        self.per_project = per_project
        self.deadline = deadline_seconds
        # No queue: a validation starts at once or is refused at once. Waiting behind
        # validations that may be stuck would hold the request for nothing.
        self.capacity = concurrency
        self._pool = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="spillway-validate"
        )
        self._lock = threading.Lock()
        # Validations admitted and not finished, stuck ones included: in all, per project.
        self._admitted = 0
        self._by_project: dict[str, int] = {}

    def run(self, project: str, work: Callable[[], list[Check]]) -> list[Check]:
        """Run ``work`` (one validation of ``project``) in the pool and wait at most the
        deadline for its checks. Raises :class:`Busy` (the pool is full) or
        :class:`RateLimited` (the project's share is used) without starting it
        when the project or the pool has no room."""
        self._admit(project)
        try:
            future = self._pool.submit(work)
        except BaseException:
            self._release(project)
            raise
        future.add_done_callback(lambda _: self._release(project))
        try:
            return future.result(timeout=self.deadline)
        except FutureTimeout:
            if future.cancel():  # never started (a thread was still finishing up)
                raise self._busy() from None
            log.warning(
                "a destination validation of project %s did not finish within %g s; answered "
                "as failed, its thread ends when the client's timeouts do",
                project,
                self.deadline,
            )
            return [
                Check.failed(
                    "deadline",
                    f"the destination did not answer within {self.deadline:g} s: check the "
                    "endpoint (URL, region, account) and that the network lets Spillway reach "
                    "it, then validate again",
                )
            ]

    def _admit(self, project: str) -> None:
        with self._lock:
            mine = self._by_project.get(project, 0)
            if mine >= self.per_project:
                raise RateLimited(
                    f"this project already has {mine} destination validations running, the most "
                    "it may run at once (SPILLWAY_VALIDATION_PER_PROJECT); try again when they "
                    "finish",
                    retry_after=self.deadline,
                )
            if self._admitted >= self.capacity:
                raise self._busy()
            self._admitted += 1
            self._by_project[project] = mine + 1

    def _busy(self) -> Busy:
        return Busy(
            "Spillway is busy validating other destinations (SPILLWAY_VALIDATION_CONCURRENCY); "
            "nothing was changed, try again shortly",
            retry_after=self.deadline,
        )

    def _release(self, project: str) -> None:
        with self._lock:
            self._admitted -= 1
            left = self._by_project.get(project, 1) - 1
            if left:
                self._by_project[project] = left
            else:
                self._by_project.pop(project, None)

    def close(self) -> None:
        """Stop taking work; threads still stuck end on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)


_lock = threading.Lock()
_current: ValidationPool | None = None


def configure(settings: Settings) -> ValidationPool:
    """Use the settings' pool from now on (the server calls this at start)."""
    global _current
    wanted = (
        settings.validation_concurrency,
        settings.validation_per_project,
        settings.validation_deadline_seconds,
    )
    with _lock:
        old = _current
        if old is not None and (old.concurrency, old.per_project, old.deadline) == wanted:
            return old
        _current = ValidationPool(*wanted)
    if old is not None:
        old.close()
    return _current


def current() -> ValidationPool:
    """The pool in use (from the environment's settings until :func:`configure` is called)."""
    pool = _current
    return pool if pool is not None else configure(get_settings())


def run(project: str, work: Callable[[], list[Check]]) -> list[Check]:
    """Run one validation of ``project`` in the pool, within the deadline."""
    return current().run(project, work)
