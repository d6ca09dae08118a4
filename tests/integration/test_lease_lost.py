"""A lease lost mid-run: a worker stalls past its lease, a second worker takes the export over
and delivers, then the first one wakes up. Nothing is lost, nothing is delivered twice, and the
stale worker commits nothing (DESIGN.md invariants 2 and 6)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine

from spillway.store import catalog
from spillway.store import runs as q
from tests.integration.exporting import T0, Clock, data_files, delivered_uuids, make_setup

# make_setup's local destination needs the operator's SPILLWAY_LOCAL_ROOT.
pytestmark = pytest.mark.usefixtures("local_root")

QUARTER = 900
LEASE_MS = 400


def test_a_worker_that_lost_its_lease_mid_run_commits_nothing(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_setup(engine, tmp_path)
    export = s.export(frequency="every_15_minutes")
    w1, w2, w3 = (T0 + QUARTER * k for k in (1, 2, 3))
    sent = s.ingest(400, at=w1 - 300)
    sent += s.ingest(300, at=w2 - 300)
    sent += s.ingest(200, at=w3 - 300)

    # Worker B runs on its own clock, later than A's: by the time it takes over, two windows
    # have closed.
    b = s.scheduler(owner="B", lease_ttl_ms=LEASE_MS)
    b.clock = Clock(w2 + 1)
    taken_over: list[dict[str, int]] = []

    def stall_then_lose_the_lease(checkpoint: str) -> None:
        """Worker A, in the middle of writing window 1: stalls (a long GC pause, a frozen VM)
        until its lease has expired, and B takes the export over meanwhile."""
        if checkpoint != "between_parts" or taken_over:
            return
        time.sleep(LEASE_MS * 1.5 / 1000)
        taken_over.append(b.serve_export(export.id))

    a = s.scheduler(owner="A", lease_ttl_ms=LEASE_MS, hook=stall_then_lose_the_lease)
    a.clock = Clock(w1 + 1)
    with caplog.at_level(logging.WARNING, logger="spillway.engine.scheduler"):
        assert a.tick()["runs"] == 0  # A completed nothing itself
    assert taken_over == [{"runs": 2, "failed": 0}], "B did not take over windows 1 and 2"
    assert "lease lost" in caplog.text

    with engine.connect() as conn:
        row = catalog.export_by_id(conn, export.id)
        history = q.list_runs(conn, export.id)
    assert row is not None
    # The cursor is where B left it (the end of window 2), not moved back to window 1's end.
    assert row.cursor_seq == max(r.seq_to for r in history)
    assert row.lease_owner is None  # and A left no lease behind
    assert [(r.window_end, r.status) for r in history] == [
        (w2, "succeeded"),
        (w1, "succeeded"),
    ]

    # Later passes go on from there: window 3 holds window 3's events only.
    b.clock.now = w3 + 1
    assert b.tick() == {"runs": 1, "failed": 0}
    delivered = delivered_uuids(s.root)
    assert Counter(delivered) == Counter(sent), "an event is missing or delivered twice"
    assert len(delivered) == len(set(delivered)) == 900
    # Every file is the one its manifest lists, byte for byte: A overwrote nothing.
    manifests = sorted(s.root.rglob("*.manifest.json"))
    assert len(manifests) == 3
    listed = {}
    for path in manifests:
        for item in orjson.loads(path.read_bytes())["files"]:
            listed[item["key"]] = item["sha256"]
    on_disk = {
        p.relative_to(s.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in data_files(s.root)
    }
    assert on_disk == listed
