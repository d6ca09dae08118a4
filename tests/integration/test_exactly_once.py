"""Property: whatever fails wherever, the delivered files hold every event exactly once."""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spillway.api import models as api_models
from spillway.errors import TransientError
from spillway.services import exports as export_service
from spillway.store import catalog
from spillway.store import runs as q
from spillway.store.db import create_engine, migrate
from tests.integration.exporting import data_files, delivered_uuids, make_setup

# Local destinations exist only with the operator's SPILLWAY_LOCAL_ROOT (each project in its own
# subfolder): make_setup puts its destination there.
pytestmark = pytest.mark.usefixtures("local_root")

CHECKPOINTS = ["before_upload", "between_parts", "before_manifest", "before_commit"]

step = st.one_of(
    st.tuples(st.just("ingest"), st.integers(1, 60)),
    st.tuples(st.just("wait"), st.integers(60, 5 * 3600)),
    st.tuples(st.just("tick"), st.sampled_from([None, *CHECKPOINTS]), st.integers(0, 3)),
    st.tuples(st.just("frequency"), st.sampled_from(["every_15_minutes", "daily", "weekly"])),
    st.tuples(
        st.just("run_now"),
    ),
)


class Faults:
    """Raises a transient error at the n-th passage through one checkpoint."""

    def __init__(self) -> None:
        self.at: str | None = None
        self.countdown = 0

    def __call__(self, checkpoint: str) -> None:
        if checkpoint != self.at:
            return
        if self.countdown == 0:
            self.at = None
            raise TransientError(f"injected failure at {checkpoint}")
        self.countdown -= 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=25), split=st.booleans())
def test_every_event_delivered_exactly_once(steps: list[tuple[object, ...]], split: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/db.sqlite")
        migrate(engine)
        s = make_setup(engine, Path(tmp))
        export = s.export(max_file_bytes=4_000 if split else 10**9)
        faults = Faults()
        scheduler = s.scheduler(hook=faults)
        sent: list[str] = []
        for action in steps:
            kind = action[0]
            if kind == "ingest":
                sent += s.ingest(int(action[1]))  # type: ignore[call-overload]
            elif kind == "wait":
                s.clock.now += int(action[1])  # type: ignore[call-overload]
            elif kind == "tick":
                faults.at, faults.countdown = action[1], int(action[2])  # type: ignore[assignment,call-overload]
                scheduler.tick()
            elif kind == "frequency":
                patch = api_models.ExportPatch(frequency=action[1])  # type: ignore[arg-type]
                export_service.update(engine, s.actor, export.id, patch)
            else:
                export_service.run_now(engine, s.actor, export.id, now=int(s.clock.now * 1000))
        # Then everything heals: time passes, windows close, retries run.
        faults.at = None
        for _ in range(12):
            s.clock.now += 8 * 86_400
            scheduler.tick()
        delivered = Counter(delivered_uuids(s.root))
        assert delivered == Counter(sent), "some event missing or delivered twice"
        # Every data file is listed by exactly one manifest, with the bytes it has now: no
        # attempt or later run overwrote a delivered file, none left a file no run owns.
        listed = [
            (item["key"], item["sha256"])
            for path in s.root.rglob("*.manifest.json")
            for item in orjson.loads(path.read_bytes())["files"]
        ]
        files = {
            p.relative_to(s.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in data_files(s.root)
        }
        assert sorted(listed) == sorted(files.items())
        # And the export ends healthy: every run succeeded, the cursor at the last event.
        with engine.connect() as conn:
            history = q.list_runs(conn, export.id, limit=10_000)
            row = catalog.export_by_id(conn, export.id)
            last = q.high_water_now(conn)
        assert {r.status for r in history} <= {"succeeded"}
        assert row is not None and row.status == "active"
        assert row.cursor_seq == last
        engine.dispose()
