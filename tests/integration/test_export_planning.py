"""How a run plans its files: the split decision and the per-file fill must agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.services import exports as export_service
from spillway.store import runs as q
from spillway.store.schema import projects
from tests.integration.exporting import T0, data_files, delivered_uuids, make_setup

# Local destinations exist only with the operator's SPILLWAY_LOCAL_ROOT (each project in its own
# subfolder): make_setup puts its destination there.
pytestmark = pytest.mark.usefixtures("local_root")


@pytest.mark.timeout(60)
def test_unsplit_run_finishes_when_its_frame_is_larger_than_the_estimate(
    engine: Engine, tmp_path: Path
) -> None:
    # A long app name makes each record's frame longer than the 120 bytes `execute` plans for
    # when it decides whether to split; the run then stalled once its planned size passed the
    # limit, taking no more records into the one file it may write.
    s = make_setup(engine, tmp_path)
    with engine.begin() as conn:
        conn.execute(projects.update().where(projects.c.id == s.project_id).values(name="x" * 60))
    export = s.export()
    uuids = s.ingest(200, at=T0 + 100)
    with engine.connect() as conn:
        count, size = q.measure(conn, s.project_id, 0, 10**12)
    limit = size + count * 120 + 10  # one file by `execute`'s estimate, over it by the frame's
    export_service.update(engine, s.actor, export.id, api_models.ExportPatch(max_file_bytes=limit))
    s.clock.now = T0 + 901
    assert s.scheduler().tick() == {"runs": 1, "failed": 0}
    assert [p.name for p in data_files(s.root)] == [f"event_exports_{T0 + 900}.json.gz"]
    assert delivered_uuids(s.root) == uuids
