"""The scheduler: turns due windows into runs and delivers them, export by export.

Each export is handled under a lease, so several workers (on one PostgreSQL database) never
run the same export at once. Runs of an export go in order; a failing run holds back the ones
after it, so when the failure is fixed the export catches up window by window.

Fairness: an export gets a bounded *turn* (``turn_runs`` runs, or ``turn_seconds``, whichever
ends first; a single run is never cut), then its lease is released and the pass moves on to the
next export. A pass goes round again at once while an export still has runs waiting, so after an
outage an export with hundreds of windows advances a turn at a time beside the others instead of
holding a worker, and other workers can take its next turn in between. Exports go in the order
of their last change (``updated_at``: every delivered run moves it), the one left alone longest
first; exports another worker holds right now are skipped, so workers spread over different
exports instead of queueing on one lease.
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
from spillway.engine.targets import TargetCache
from spillway.engine.windows import Frequency, due_ends, floor
from spillway.errors import TerminalError, TransientError
from spillway.model import Destination, Export, Run
from spillway.store import catalog, leases, runs
from spillway.store.db import now_ms, write
from spillway.store.projects import project_by_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    """What one turn on an export did; ``more``: it stopped with runs still waiting."""

    runs: int = 0
    failed: int = 0
    more: bool = False

    def counts(self) -> dict[str, int]:
        return {"runs": self.runs, "failed": self.failed}


IDLE = Turn()


@dataclass
class Scheduler(DeliveryLoop):
    """Everything the worker does for scheduled exports."""

    clock: Callable[[], float] = time.time
    owner: str = field(default_factory=lambda: f"worker-{secrets.token_hex(6)}")
    lease_ttl_ms: int = 120_000
    hook: runner.Hook = field(default=lambda _: None)
    # One export's turn: at most this many runs, and no new run after this long (a single
    # run is never cut). Others wait at most about ``turn_seconds`` plus one run; a turn takes
    # many runs when they are small, since each turn costs a few statements of its own (claim,
    # plan, release): with 4 runs a turn, 200 tiny runs took 1.4 s instead of 1.0 s.
    turn_runs: int = 50
    turn_seconds: float = 2.0
    # One tick goes round the exports until none has work left, or this long (then ``behind``
    # says so and the worker ticks again at once, after its other duties).
    pass_seconds: float = 60.0
    # While some exports still have work, every export is looked at again this often (new
    # windows, a run queued through the API); in between, only the ones with work left.
    full_round_seconds: float = 5.0
    behind: bool = field(default=False, init=False)
    _targets: TargetCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._targets = TargetCache(self.engine, self.box)

    def tick(self) -> dict[str, int]:
        """Plan due windows and deliver what can be delivered now, a bounded turn per export,
        round after round while any export has runs waiting."""
        done = {"runs": 0, "failed": 0}
        started = time.monotonic()
        full_due = started
        wanted: set[str] = set()
        self.behind = False
        while True:
            with self.engine.connect() as conn:
                live = runs.live_exports(conn)
            now = time.monotonic()
            full = now >= full_due
            if full:
                full_due = now + self.full_round_seconds
            more: set[str] = set()
            for export in self._order([e for e in live if not e.is_stream]):
                if not full and export.id not in wanted:
                    continue
                turn = self._turn(export)
                done["runs"] += turn.runs
                done["failed"] += turn.failed
                if turn.more:
                    more.add(export.id)
            if not more:
                break
            if time.monotonic() - started >= self.pass_seconds:
                self.behind = True
                break
            wanted = more
        self._targets.keep_only({e.destination_id for e in live if not e.is_stream})
        return done

    def _turn(self, export: Export) -> Turn:
        """One bounded turn on an export; its trouble is its own."""
        try:
            return self._take_turn(export.id)
        except Exception as exc:  # one export's trouble is that export's alone
            log.exception("export %s: the pass over it failed; the others go on", export.id)
            self._broken(export, exc)
            return Turn(failed=1)

    def serve_export(self, export_id: str) -> dict[str, int]:
        """Plan one export's due work and take one turn on it under its lease."""
        return self._take_turn(export_id).counts()

    def _take_turn(self, export_id: str) -> Turn:
        now = int(self.clock() * 1000)
        with self._held(export_id) as held:
            if held is None:
                return IDLE
            return self._serve(export_id, now)

    def close(self) -> None:
        """Close the destination clients kept across runs."""
        self._targets.close()

    def _serve(self, export_id: str, now: int) -> Turn:
        export = self._export(export_id)
        if export is None or export.status == "disabled":
            return IDLE
        waiting = bool(export.next_attempt_at and export.next_attempt_at > now)
        destination = self._destination(export)
        if destination is None:
            self._targets.forget(export.destination_id)
            # Deleted (the export was disabled then, and enabled again behind the API's back):
            # nothing to plan or run, ever. Say so on the export; the others go on.
            if not waiting:
                self._hold(export, destination_gone(self.engine, export), now)
                return Turn(failed=1)
            return IDLE
        with self.engine.connect() as conn:
            pending = runs.pending_runs(conn, export_id)
        if self._plan(export, destination, now // 1000, pending):
            with self.engine.connect() as conn:
                pending = runs.pending_runs(conn, export_id)
        if waiting or not pending:
            return IDLE
        try:
            context = self._context(export, destination)
        except Exception as exc:
            # The destination cannot even be opened (credentials this service key cannot
            # decrypt, an endpoint no longer allowed, a stored config this version refuses):
            # its run fails with the reason and the export shows it, while the other exports
            # of this pass go on.
            self._targets.forget(destination.id)
            run = pending[0]
            reason = self._opening_failed(destination, export, exc)
            self._fail(export, run, run.attempts, reason, terminal=True, now=now)
            return Turn(failed=1)
        done, wrote, more = 0, False, False
        started = time.monotonic()
        for run in pending:
            if done and (done >= self.turn_runs or time.monotonic() - started >= self.turn_seconds):
                more = True  # the others get their turn; this export goes on in the next round
                break
            export = self._export(export_id) or export
            result = self._attempt(context, export, run, now, destination)
            if result is None:
                # A fresh client next time: a broken connection pool or stale credentials
                # must not outlive the failure.
                self._targets.forget(destination.id)
                return Turn(runs=done, failed=1)
            done += 1
            wrote = wrote or bool(result["files"])
        if wrote:
            destination_works(self.engine, destination, export)
        if export.status == "failing":
            self._set_state(export, "active", None)
        return Turn(runs=done, more=more)

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

    def _plan(
        self, export: Export, destination: Destination, now_s: int, pending: list[Run]
    ) -> bool:
        """Queue a run for every window that closed since the last delivered one (``pending``:
        the export's runs still to deliver); True when it queued any."""
        frequency = Frequency(export.frequency)
        last = export.last_window_end
        if last is None:
            last = floor(frequency, export.created_at // 1000)
        queued = max((r.window_end for r in pending if r.kind == "scheduled"), default=0)
        ends = due_ends(frequency, max(last, queued), now_s)
        if not ends:
            return False
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
        return bool(needed)

    def _context(self, export: Export, destination: Destination) -> runner.RunContext:
        with self.engine.connect() as conn:
            project = project_by_id(conn, export.project_id)
        if project is None:
            raise TerminalError(f"project {export.project_id} of this export no longer exists")
        target = self._targets.get(destination)
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
