"""Retention is the only thing that removes data, and it never does so silently."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.engine.worker import Worker
from spillway.services import exports as export_service
from spillway.store.schema import audit_log
from tests.integration.exporting import make_setup

# Local destinations exist only with the operator's SPILLWAY_LOCAL_ROOT (each project in its own
# subfolder): make_setup puts its destination there.
pytestmark = pytest.mark.usefixtures("local_root")


def test_events_pruned_before_delivery_are_reported(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    export = s.export()
    s.ingest(7, at=time.time() - 91 * 86_400)  # an outage longer than retention
    s.ingest(3, at=time.time())
    done = Worker(engine, retention_days=90).run_once()
    assert done["pruned"] == 7
    row = export_service.get(engine, s.project_id, export.id)
    assert row.status_reason is not None
    assert "7 events" in row.status_reason and "90-day retention" in row.status_reason
    with engine.connect() as conn:
        actions = conn.execute(
            sa.select(audit_log.c.action, audit_log.c.detail).where(
                audit_log.c.action == "export.retention_gap"
            )
        ).all()
    assert [(a, d["events"]) for a, d in actions] == [("export.retention_gap", 7)]
    # The next pass has nothing more to report.
    Worker(engine, retention_days=90).run_once()
    with engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(audit_log.c.action == "export.retention_gap")
        ).scalar_one()
    assert count == 1
