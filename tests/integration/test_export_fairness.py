"""Lease fairness for scheduled exports (issue 15, item 3).

An export with many windows waiting (after an outage) gets bounded turns: the others are
delivered between its turns, in one worker and across workers; exports run in parallel on
different workers; one export's runs stay in window order whoever delivers them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.engine.scheduler import Scheduler
from spillway.engine.worker import Worker
from spillway.model import Export
from spillway.store import runs as q
from spillway.store.db import create_engine
from tests.integration.exporting import T0, Setup, data_files, make_setup

# make_setup's local destination needs the operator's SPILLWAY_LOCAL_ROOT.
pytestmark = pytest.mark.usefixtures("local_root")

QUARTER = 900


class Journal:
    """What each worker delivered, in order: (owner, export id, window end) at each commit.

    The scheduler's hook does not say which run it is in; a run being committed is the one
    marked ``running`` that this worker's lease covers, read from the store.
    """

    def __init__(self, engine: Engine, exports: list[Export]) -> None:
        self.engine = engine
        self.exports = exports
        self.entries: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()

    def hook(self, owner: str, extra: Callable[[str], None] | None = None) -> Callable[[str], None]:
        def record(checkpoint: str) -> None:
            if checkpoint == "before_upload" and extra is not None:
                extra(owner)
            if checkpoint != "before_commit":
                return
            with self.engine.connect() as conn:
                for export in self.exports:
                    row = conn.execute(
                        sa.text("SELECT lease_owner FROM exports WHERE id = :id"),
                        {"id": export.id},
                    ).scalar()
                    if row != owner:
                        continue
                    running = [r for r in q.pending_runs(conn, export.id) if r.status == "running"]
                    assert len(running) == 1, running
                    with self.lock:
                        self.entries.append((owner, export.id, running[0].window_end))
                    return
            raise AssertionError(f"{owner} commits a run of no export it holds")

        return record

    def windows(self, export: Export) -> list[int]:
        return [end for _, export_id, end in self.entries if export_id == export.id]


def outage(s: Setup, windows: int, quiet: str | None = None) -> tuple[list[int], Export | None]:
    """Events in each of ``windows`` quarter-hours from T0, and their window ends; with
    ``quiet``, an export of that name created in the last window: the only one it delivers."""
    ends = [T0 + QUARTER * (k + 1) for k in range(windows)]
    made = None
    for end in ends:
        if quiet is not None and end == ends[-1]:
            made = late_export(s, quiet, end - QUARTER + 1)
        s.ingest(2, at=end - QUARTER + 60)
    return ends, made


def late_export(s: Setup, name: str, at: float) -> Export:
    """An export created at ``at``: it has only the windows after that to deliver."""
    s.clock.now = at
    return s.export(name, frequency="every_15_minutes")


def test_one_busy_export_does_not_hold_back_another_in_one_worker(
    engine: Engine, tmp_path: Path
) -> None:
    s = make_setup(engine, tmp_path)
    busy = late_export(s, "busy", T0)
    ends, made = outage(s, 20, "quiet")
    assert made is not None
    quiet = made
    s.clock.now = ends[-1] + 1
    journal = Journal(engine, [busy, quiet])
    # Small turns (the default is time-bound: many more of these tiny runs per turn).
    scheduler = s.scheduler(owner="w1", hook=journal.hook("w1"), turn_runs=4, turn_seconds=600)

    assert scheduler.tick() == {"runs": 21, "failed": 0}

    order = [export_id for _, export_id, _ in journal.entries]
    # The busy export, left alone longest, goes first; one bounded turn, then the quiet one.
    assert order.index(quiet.id) == scheduler.turn_runs < len(ends)
    assert journal.windows(quiet) == [ends[-1]]
    assert journal.windows(busy) == ends  # in window order, every window once
    assert not scheduler.behind
    files = data_files(s.root / "spillway_busy")
    assert [p.name for p in files] == [f"event_exports_{end}.json.gz" for end in ends]


def test_two_workers_share_busy_exports_without_starving_a_quiet_one(
    pg_url: str, tmp_path: Path
) -> None:
    """Two busy exports and two workers: the quiet export is not left until both are done,
    the busy ones run on both workers at once, and each export's windows go in order."""
    engine = create_engine(pg_url)
    s = make_setup(engine, tmp_path)
    alpha = late_export(s, "alpha", T0)
    beta = late_export(s, "beta", T0)
    ends, made = outage(s, 16, "quiet")
    assert made is not None
    quiet = made
    s.clock.now = ends[-1] + 1
    journal = Journal(engine, [alpha, beta, quiet])
    # Each worker, in its first run, waits for the other to be inside a run too: both are
    # only there at once if two exports' runs proceed in parallel.
    both_in_a_run = threading.Barrier(2)
    met: dict[str, bool] = {}

    def meet(owner: str) -> None:
        if owner in met:
            return
        try:
            both_in_a_run.wait(timeout=20)
            met[owner] = True
        except threading.BrokenBarrierError:
            met[owner] = False

    results: dict[str, dict[str, int]] = {}
    errors: list[BaseException] = []

    def work(owner: str) -> None:
        own = create_engine(pg_url)
        try:
            scheduler = Scheduler(
                own,
                s.box,
                clock=s.clock,
                owner=owner,
                hook=journal.hook(owner, meet),
                turn_runs=4,
                turn_seconds=600,
            )
            results[owner] = scheduler.tick()
            scheduler.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=work, args=(owner,)) for owner in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert met == {"w1": True, "w2": True}, "the two workers never ran at the same time"
    # Whatever a worker left (its lease was held by the other when it looked), one more tick
    # finishes; nothing runs twice.
    rest = Scheduler(engine, s.box, clock=s.clock, owner="w3", hook=journal.hook("w3")).tick()
    assert sum(r["runs"] for r in results.values()) + rest["runs"] == 2 * 16 + 1
    assert {owner for owner, _, _ in journal.entries} >= {"w1", "w2"}

    done = [(export_id, end) for _, export_id, end in journal.entries]
    assert journal.windows(quiet) == [ends[-1]]
    at = done.index((quiet.id, ends[-1]))
    for busy in (alpha, beta):
        assert done.index((busy.id, ends[-1])) > at, "the quiet export waited for a busy one"
        assert journal.windows(busy) == ends, "a busy export's windows went out of order"
    for name in ("alpha", "beta"):
        files = data_files(s.root / f"spillway_{name}")
        assert [p.name for p in files] == [f"event_exports_{end}.json.gz" for end in ends]
    with engine.connect() as conn:
        history = [r for e in (alpha, beta, quiet) for r in q.list_runs(conn, e.id, limit=100)]
    assert Counter((r.status, r.attempts) for r in history) == {("succeeded", 1): 33}
    engine.dispose()


def test_a_failing_export_takes_one_attempt_per_back_off_and_the_others_go_on(
    engine: Engine, tmp_path: Path
) -> None:
    s = make_setup(engine, tmp_path)
    broken = late_export(s, "broken", T0)
    healthy = late_export(s, "healthy", T0)
    ends, _ = outage(s, 6)
    s.clock.now = ends[-1] + 1
    calls = Counter[str]()

    def fail_broken(checkpoint: str) -> None:
        if checkpoint != "before_upload":
            return
        with engine.connect() as conn:
            mine = conn.execute(
                sa.text("SELECT lease_owner FROM exports WHERE id = :id"), {"id": broken.id}
            ).scalar()
        if mine == "w1":
            calls["broken"] += 1
            raise OSError("the network is down for this one")
        calls["healthy"] += 1

    scheduler = s.scheduler(owner="w1", hook=fail_broken)
    started = time.monotonic()
    assert scheduler.tick() == {"runs": 6, "failed": 1}
    assert time.monotonic() - started < scheduler.pass_seconds
    assert calls == {"broken": 1, "healthy": 6}  # one attempt, then its back-off
    with engine.connect() as conn:
        assert [r.window_end for r in q.list_runs(conn, healthy.id)] == ends[::-1]
        assert q.pending_runs(conn, broken.id)[0].status == "failed"


def test_a_worker_behind_after_its_pass_budget_goes_again_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    """A tick that ran out of its pass budget with runs waiting: the worker's next pass comes at
    once, not after its interval."""
    s = make_setup(engine, tmp_path)
    busy = late_export(s, "busy", T0)
    ends, _ = outage(s, 12)
    s.clock.now = ends[-1] + 1
    worker = Worker(engine, 3650, interval_seconds=60.0, box=s.box, clock=s.clock)
    assert worker.scheduler is not None
    worker.scheduler.turn_runs = 2
    worker.scheduler.pass_seconds = 0.0  # one round a tick: behind after each while work is left
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if not q.pending_runs(conn, busy.id) and q.list_runs(conn, busy.id):
                    break
            time.sleep(0.05)
        with engine.connect() as conn:
            history = q.list_runs(conn, busy.id, limit=100)
        assert sorted(r.window_end for r in history if r.status == "succeeded") == ends, (
            "the worker waited for its interval between passes"
        )
    finally:
        stop.set()
        worker.wake()
        thread.join(30)
