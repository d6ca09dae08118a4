"""The scheduler: turns due windows into runs and delivers them, export by export.

Each export is handled under a lease, so several workers (on one PostgreSQL database) never
run the same export at once. Runs of an export go in order; a failing run holds back the ones
after it, so when the failure is fixed the export catches up window by window.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from spillway.engine import naming, retry, runner
from spillway.engine.loop import DeliveryLoop
from spillway.engine.status import destination_gone, destination_works, internal_error
from spillway.engine.targets import open_target
from spillway.engine.windows import Frequency, due_ends, floor
from spillway.errors import TerminalError, TransientError
from spillway.model import Destination, Export, Run
from spillway.store import catalog, leases, runs
from spillway.store.db import now_ms, write
from spillway.store.projects import project_by_id

log = logging.getLogger(__name__)


@dataclass
class Scheduler(DeliveryLoop):
    """Everything the worker does for scheduled exports."""

    clock: Callable[[], float] = time.time
    owner: str = field(default_factory=lambda: f"worker-{secrets.token_hex(6)}")
    lease_ttl_ms: int = 120_000
    hook: runner.Hook = field(default=lambda _: None)

    def tick(self) -> dict[str, int]:
        """Plan due windows and deliver what can be delivered now."""
        done = {"runs": 0, "failed": 0}
        with self.engine.connect() as conn:
            exports = runs.live_exports(conn)
        for export in exports:
            if export.is_stream:
                continue
            try:
                outcome = self.serve_export(export.id)
            except Exception as exc:  # one export's trouble is that export's alone
                log.exception("export %s: the pass over it failed; the others go on", export.id)
                self._broken(export, exc)
                done["failed"] += 1
                continue
            done["runs"] += outcome["runs"]
            done["failed"] += outcome["failed"]
        return done

    def serve_export(self, export_id: str) -> dict[str, int]:
        """Plan and run one export's due work under its lease."""
        now = int(self.clock() * 1000)
        with self._held(export_id) as held:
            if held is None:
                return {"runs": 0, "failed": 0}
            return self._serve(export_id, now)

    def _serve(self, export_id: str, now: int) -> dict[str, int]:
        export = self._export(export_id)
        if export is None or export.status == "disabled":
            return {"runs": 0, "failed": 0}
        waiting = bool(export.next_attempt_at and export.next_attempt_at > now)
        destination = self._destination(export)
        if destination is None:
            # Deleted (the export was disabled then, and enabled again behind the API's back):
            # nothing to plan or run, ever. Say so on the export; the others go on.
            if not waiting:
                self._hold(export, destination_gone(self.engine, export), now)
                return {"runs": 0, "failed": 1}
            return {"runs": 0, "failed": 0}
        self._plan(export, destination, now // 1000)
        if waiting:
            return {"runs": 0, "failed": 0}
        with self.engine.connect() as conn:
            pending = runs.pending_runs(conn, export_id)
        if not pending:
            return {"runs": 0, "failed": 0}
        try:
            context = self._context(export, destination)
        except Exception as exc:
            # The destination cannot even be opened (credentials this service key cannot
            # decrypt, an endpoint no longer allowed, a stored config this version refuses):
            # its run fails with the reason and the export shows it, while the other exports
            # of this pass go on.
            run = pending[0]
            reason = self._opening_failed(destination, export, exc)
            self._fail(export, run, run.attempts, reason, terminal=True, now=now)
            return {"runs": 0, "failed": 1}
        done, wrote = 0, False
        try:
            for run in pending:
                export = self._export(export_id) or export
                result = self._attempt(context, export, run, now, destination)
                if result is None:
                    return {"runs": done, "failed": 1}
                done += 1
                wrote = wrote or bool(result["files"])
        finally:
            context.target.close()
        if wrote:
            destination_works(self.engine, destination, export)
        if export.status == "failing":
            self._set_state(export, "active", None)
        return {"runs": done, "failed": 0}

    def _hold(self, export: Export, reason: str, now: int) -> None:
        """The export cannot run at all: ``failing`` with the reason, looked at again later."""
        with write(self.engine) as conn:
            catalog.update_export(
                conn, export.id, {"next_attempt_at": now + retry.SCHEDULED.terminal_ms}
            )
        log.warning("export %s cannot run: %s", export.id, reason)
        if export.status != "failing" or export.status_reason != reason:
            self._set_state(export, "failing", reason)

    def _broken(self, export: Export, exc: Exception) -> None:
        """What is left to do after an unexpected error escaped the pass over one export:
        show it on that export (``failing``, with the reason), and try again later."""
        reason = internal_error(exc)
        try:
            now = int(self.clock() * 1000)
            self._hold(export, reason, now)
        except Exception:  # the database itself is failing: the log is all there is
            log.exception("export %s: could not record its failure", export.id)

    def _export(self, export_id: str) -> Export | None:
        with self.engine.connect() as conn:
            return catalog.export_by_id(conn, export_id)

    def _plan(self, export: Export, destination: Destination, now_s: int) -> None:
        """Queue a run for every window that closed since the last delivered one."""
        frequency = Frequency(export.frequency)
        last = export.last_window_end
        if last is None:
            last = floor(frequency, export.created_at // 1000)
        queued = self._latest_queued_end(export.id)
        ends = due_ends(frequency, max(last, queued), now_s)
        if not ends:
            return
        with write(self.engine) as conn:
            needed = _windows_with_data(conn, export, ends)
            if len(needed) < len(ends):
                # The later windows closed with nothing new: mark them covered instead of
                # queueing empty runs (after a week-long outage, hundreds of them). An event
                # committed late still lands in the next window's run: the cursor stays put.
                catalog.update_export(conn, export.id, {"last_window_end": ends[-1]})
            settings = naming.run_settings(export, destination.folder)
            for end in needed:
                runs.insert_run(
                    conn,
                    {
                        "id": uuid.uuid4().hex,
                        "export_id": export.id,
                        "kind": "scheduled",
                        "window_end": end,
                    },
                    settings,
                )

    def _latest_queued_end(self, export_id: str) -> int:
        with self.engine.connect() as conn:
            pending = [r for r in runs.pending_runs(conn, export_id) if r.kind == "scheduled"]
        return max((r.window_end for r in pending), default=0)

    def _context(self, export: Export, destination: Destination) -> runner.RunContext:
        with self.engine.connect() as conn:
            project = project_by_id(conn, export.project_id)
        if project is None:
            raise TerminalError(f"project {export.project_id} of this export no longer exists")
        target = open_target(self.engine, self.box, destination)
        return runner.RunContext(
            engine=self.engine,
            target=target,
            export_id=export.id,
            project_id=export.project_id,
            app_name=project.name,
            db_name=project.app_id,
            owner=self.owner,
            lease_ttl_ms=self.lease_ttl_ms,
            hook=self.hook,
            cleanup=bool(destination.features.get("cleanup")),
        )

    def _destination(self, export: Export) -> Destination | None:
        """The export's destination, or None when it was deleted."""
        with self.engine.connect() as conn:
            return catalog.destination_by_id(conn, export.destination_id)

    def _attempt(
        self,
        context: runner.RunContext,
        export: Export,
        run: Run,
        now: int,
        destination: Destination,
    ) -> dict[str, Any] | None:
        """One attempt; the run's outcome when it succeeded, None when it did not."""
        attempts = run.attempts + 1
        with write(self.engine) as conn:
            runs.update_run(
                conn,
                run.id,
                {
                    "status": "running",
                    "attempts": attempts,
                    "started_at": run.started_at or now_ms(),
                },
            )
        try:
            result = runner.execute(context, export, run)
        except leases.LeaseLost:
            log.warning("export %s: lease lost, another worker continues", export.id)
            return None
        except TerminalError as exc:
            reason = self._refused(destination, export, exc)
            self._fail(export, run, attempts, reason, terminal=True, now=now)
            return None
        except (TransientError, OSError) as exc:
            self._fail(export, run, attempts, str(exc), terminal=False, now=now)
            return None
        except Exception as exc:  # an unexpected bug: keep the data, retry later, say why
            log.exception("export %s run %s failed unexpectedly", export.id, run.id)
            reason = internal_error(exc)
            self._fail(export, run, attempts, reason, terminal=False, now=now, failing=True)
            return None
        return result

    def _fail(
        self,
        export: Export,
        run: Run,
        attempts: int,
        error: str,
        *,
        terminal: bool,
        now: int,
        failing: bool = False,
    ) -> None:
        """The run failed: its error, a back-off, and (terminal or ``failing``: an error no
        retry is known to cure) the export turns ``failing`` with the reason."""
        delay = retry.SCHEDULED.delay_ms(attempts, terminal=terminal)
        with write(self.engine) as conn:
            runs.update_run(conn, run.id, {"status": "failed", "error": error})
            catalog.update_export(conn, export.id, {"next_attempt_at": now + delay})
        log.warning(
            "export %s run %s attempt %d failed (%s): %s",
            export.id,
            run.id,
            attempts,
            "terminal" if terminal else "transient",
            error,
        )
        if (terminal or failing) and (export.status != "failing" or export.status_reason != error):
            self._set_state(export, "failing", error)  # the latest reason; one webhook call


def _windows_with_data(conn: Connection, export: Export, ends: list[int]) -> list[int]:
    """The due window ends that runs are needed for: up to the first one covering every event.

    Events are ordered by ingest sequence; a window's run covers the cursor up to the high-water
    mark at its close. Once a window's high-water mark reaches the project's latest event, the
    windows after it would be empty.
    """
    latest = runs.latest_project_seq(conn, export.project_id, after=export.cursor_seq)
    if latest is None:
        return []
    needed: list[int] = []
    for end in ends:
        needed.append(end)
        if runs.high_water_before(conn, end * 1000) >= latest:
            break
    return needed
