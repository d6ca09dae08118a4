"""The worker loop: runs every due task, then sleeps until the next tick, a wake-up or a stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from spillway import metrics
from spillway.secrets import SecretBox
from spillway.store.db import now_ms, write
from spillway.store.events import prune_before, undelivered_before

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


@dataclass
class Worker:
    """All background duties of one process: scheduled exports, then retention."""

    engine: Engine
    retention_days: int
    retention_batch_size: int = 5_000
    interval_seconds: float = 5.0
    box: SecretBox | None = None
    lease_ttl_ms: int = 120_000
    clock: Callable[[], float] = time.time
    _wake: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        from spillway.engine.scheduler import Scheduler
        from spillway.engine.webhooks import notify

        self.scheduler = (
            Scheduler(
                self.engine,
                self.box,
                clock=self.clock,
                notify=notify,
                lease_ttl_ms=self.lease_ttl_ms,
            )
            if self.box is not None
            else None
        )

    def run_once(self) -> dict[str, Any]:
        """Do all due work once; returns what was done, for logs and ``worker --once``."""
        done: dict[str, Any] = {}
        if self.scheduler is not None:
            try:
                done.update(self.scheduler.tick())
            except Exception:  # retention runs whatever happened to the exports
                log.exception("the export pass failed; retention runs anyway")
        cutoff = now_ms() - self.retention_days * DAY_MS
        self._report_gaps(cutoff)
        pruned = prune_before(self.engine, cutoff, self.retention_batch_size)
        if pruned:
            metrics.EVENTS_PRUNED.inc(pruned)
            log.info("retention removed %d events older than %d days", pruned, self.retention_days)
        done["pruned"] = pruned
        return done

    def _report_gaps(self, cutoff: int) -> None:
        """Say so, loudly, when retention is about to remove events an export never delivered
        (an outage longer than retention): the export's status, the audit log, a metric."""
        from spillway.store import catalog, runs
        from spillway.store.projects import record_audit

        with self.engine.connect() as conn:
            exports = runs.live_exports(conn)
        for export in exports:
            with self.engine.connect() as conn:
                lost, through = undelivered_before(
                    conn, export.project_id, export.cursor_seq, cutoff
                )
            if not lost:
                continue
            reason = (
                f"{lost} events (through sequence {through}) were older than the "
                f"{self.retention_days}-day retention and were removed before this export "
                "delivered them"
            )
            log.error("export %s: %s", export.id, reason)
            metrics.EXPORT_GAP_EVENTS.labels(export.id).inc(lost)
            with write(self.engine) as conn:
                catalog.update_export(conn, export.id, {"status_reason": reason})
                record_audit(
                    conn,
                    actor="worker",
                    action="export.retention_gap",
                    project_id=export.project_id,
                    target=export.id,
                    detail={"events": lost, "through_seq": through},
                )

    def wake(self) -> None:
        """Run the next pass now (e.g. a run was queued through the API)."""
        self._wake.set()

    def run_forever(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; an error in one pass is logged and the loop goes on."""
        try:
            while not stop.is_set():
                try:
                    self.run_once()
                except Exception:  # the loop must outlive any single failure
                    log.exception("worker pass failed; retrying in %.0fs", self.interval_seconds)
                if self.scheduler is not None and self.scheduler.behind:
                    continue  # exports still have runs waiting: the next pass starts at once
                self._wake.wait(self.interval_seconds)
                self._wake.clear()
        finally:
            self.close()

    def close(self) -> None:
        """Release the destination clients the scheduler kept."""
        if self.scheduler is not None:
            self.scheduler.close()


class WorkerThread:
    """Runs a :class:`Worker` beside the API in ``spillway serve``."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=worker.run_forever, args=(self._stop,), name="spillway-worker", daemon=True
        )

    def start(self) -> None:
        """Start the loop."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to stop and wait for the current pass."""
        self._stop.set()
        self.worker.wake()
        self._thread.join(timeout=30)
