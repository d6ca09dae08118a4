"""Group commit for ingest: one writer thread stores whatever batches queued up meanwhile.

Concurrent requests then share a transaction, so the random pages of the uuid index are
written once per group instead of once per request; no request waits longer than one commit.

On PostgreSQL two writer threads take turns: while one holds the writers' lock and PostgreSQL
inserts its group, the other stages the next group (a COPY that needs no lock), so the serve's
Python work and the database's work overlap instead of alternating. The lock keeps sequence
numbers committing in order either way (DESIGN.md invariant 1).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from sqlalchemy.engine import Engine

from spillway.store.events import Batch, EventRow, insert_batches

log = logging.getLogger(__name__)


class GroupWriter:
    """Serialises event inserts through one thread, committing queued batches together."""

    def __init__(
        self, engine: Engine, *, max_rows: int = 20_000, writers: int | None = None
    ) -> None:
        self._engine = engine
        self._max_rows = max_rows
        self._queue: queue.SimpleQueue[tuple[Batch, Future[set[str]]] | None] = queue.SimpleQueue()
        if writers is None:  # SQLite has one writer at a time whatever the threads
            writers = 2 if engine.dialect.name == "postgresql" else 1
        self._threads = [
            threading.Thread(target=self._run, name=f"spillway-ingest-{n}", daemon=True)
            for n in range(writers)
        ]
        self._started = False
        # Called after every commit (from the writer thread): wakes stream delivery.
        self.listeners: list[Callable[[], None]] = []

    def start(self) -> None:
        """Start the writer thread."""
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._started:
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join(timeout=60)
            self._started = False

    def submit(
        self, project_id: int, received_ms: int, rows: Sequence[EventRow]
    ) -> Future[set[str]]:
        """Queue a batch; the future gives the uuids that were already stored."""
        future: Future[set[str]] = Future()
        if not self._started:
            future.set_exception(RuntimeError("ingest writer is not running"))
            return future
        self._queue.put(((project_id, received_ms, rows), future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            rows = len(first[0][2])
            while rows < self._max_rows:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True  # one sentinel per thread: this one is this thread's
                    break
                group.append(item)
                rows += len(item[0][2])
            self._commit(group)

    def _commit(self, group: list[tuple[Batch, Future[set[str]]]]) -> None:
        try:
            results = insert_batches(self._engine, [batch for batch, _ in group])
        except Exception as exc:  # every waiting request must hear about the failure
            log.warning("ingest commit of %d batches failed: %s", len(group), exc)
            for _, future in group:
                future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)
        for listener in self.listeners:
            listener()
