"""Two worker processes on one PostgreSQL database: every window runs once (DESIGN invariant 6).

Both processes step through the same simulated window times, meeting at a barrier before each
tick so they contend for the same exports at the same moment; the exports' leases decide who
runs what.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from spillway.engine.scheduler import Scheduler
from spillway.secrets import SecretBox
from spillway.store import runs as q
from spillway.store.db import create_engine, migrate
from tests.integration.exporting import T0, Clock, data_files, make_setup, records

# Local destinations exist only with the operator's SPILLWAY_LOCAL_ROOT (each project in its own
# subfolder): make_setup puts its destination there.
pytestmark = pytest.mark.usefixtures("local_root")

WINDOWS = 50
QUARTER = 900
EXPORTS = ("alpha", "beta", "gamma")
WORKER_TIMEOUT = 50.0


def worker(
    number: int, url: str, times: list[int], barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a spawned process
    """One worker process: tick at each shared simulated time; report what it ran."""
    try:
        engine = create_engine(url)
        clock = Clock(times[0])
        scheduler = Scheduler(engine, SecretBox(b"k" * 48), clock=clock, owner=f"w{number}")
        done = {"runs": 0, "failed": 0}
        for moment in times:
            barrier.wait(timeout=WORKER_TIMEOUT)
            clock.now = moment
            for key, value in scheduler.tick().items():
                done[key] += value
        engine.dispose()
        results.put((number, done, None))
    except BaseException:
        barrier.abort()
        results.put((number, None, traceback.format_exc()))


def test_two_workers_run_every_window_exactly_once(pg_url: str, tmp_path: Path) -> None:
    engine = create_engine(pg_url)
    migrate(engine)
    s = make_setup(engine, tmp_path)
    made = {name: s.export(name, frequency="every_15_minutes") for name in EXPORTS}
    ends = [T0 + QUARTER * (k + 1) for k in range(WINDOWS)]
    sent = {end: s.ingest(4, at=end - QUARTER + 100) for end in ends}

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    times = [end + 1 for end in ends]
    processes = [
        context.Process(target=worker, args=(n, pg_url, times, barrier, results)) for n in (1, 2)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=WORKER_TIMEOUT * 2) for _ in processes]
    for process in processes:
        process.join(timeout=WORKER_TIMEOUT)
    results.close()
    results.join_thread()
    for number, _, error in reports:
        assert error is None, f"worker {number} failed:\n{error}"
    assert [p.exitcode for p in processes] == [0, 0]
    # Every run was executed by exactly one of the two workers.
    assert sum(done["runs"] for _, done, _ in reports) == WINDOWS * len(EXPORTS)
    assert sum(done["failed"] for _, done, _ in reports) == 0

    for name, export in made.items():
        with engine.connect() as conn:
            history = q.list_runs(conn, export.id, limit=1000)
        assert Counter(r.window_end for r in history) == Counter(ends), name
        assert {(r.status, r.attempts) for r in history} == {("succeeded", 1)}
        files = data_files(s.root / f"spillway_{name}")
        assert [p.name for p in files] == [f"event_exports_{end}.json.gz" for end in ends]
        manifests = sorted((s.root / f"spillway_{name}").rglob("*.manifest.json"))
        assert len(manifests) == WINDOWS
        delivered: list[str] = []
        for path, end in zip(files, ends, strict=True):
            uuids = [r["event"]["event_uuid"] for r in records(path)]
            assert uuids == sent[end], f"{name}: window {end} holds other events"
            delivered += uuids
        assert Counter(delivered) == Counter(u for uuids in sent.values() for u in uuids)
        assert len(delivered) == len(set(delivered)) == WINDOWS * 4
    engine.dispose()
