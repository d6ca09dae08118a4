"""Status at a glance on SQLite and PostgreSQL: which run ``last_run`` is, ``last_success_at``,
``next_run_at``, and a fixed number of statements for ``GET /exports`` however many exports."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.api import views
from spillway.engine.windows import QUARTER
from spillway.model import Export
from spillway.services import exports as export_service
from spillway.store import catalog
from spillway.store.schema import runs
from tests.integration.exporting import Setup, make_setup

MINUTE_MS = 60_000


def add_run(setup: Setup, export: Export, status: str, created_at: int, **values: Any) -> str:
    """Store a run of ``export`` in ``status`` as if the worker had got it that far."""
    run_id = uuid.uuid4().hex
    with setup.engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                id=run_id,
                export_id=export.id,
                kind=values.pop("kind", "scheduled"),
                window_end=created_at,  # unique to the run: no file is named by it here
                settings={},
                status=status,
                attempts=0 if status == "queued" else 1,
                events=values.pop("events", 0),
                bytes=0,
                files=[],
                created_at=created_at,
                **values,
            )
        )
    return run_id


def shown(setup: Setup, export: Export) -> dict[str, Any]:
    """The export as GET /exports/{id} answers, and checked the same in the list."""
    one = views.export(setup.engine, export_service.get(setup.engine, setup.project_id, export.id))
    with setup.engine.connect() as conn:
        rows = catalog.list_exports(conn, setup.project_id)
    (listed,) = [e for e in views.exports(setup.engine, rows) if e["id"] == export.id]
    assert listed == one
    return one


def test_last_run_last_success_and_next_run_follow_the_runs(
    engine: Engine, tmp_path: Path, local_root: Path
) -> None:
    setup = make_setup(engine, tmp_path)
    export = setup.export("events")  # every 15 minutes
    created = export.created_at
    first_window = (created // 1000 // QUARTER + 1) * QUARTER * 1000

    fresh = shown(setup, export)
    assert (fresh["last_run"], fresh["last_success_at"]) == (None, None)
    assert fresh["next_run_at"] == first_window

    # Two runs succeeded: the later one is the last run and the last success.
    add_run(setup, export, "succeeded", created + 1, finished_at=created + 50, events=7)
    second = add_run(setup, export, "succeeded", created + 100, finished_at=created + 150, events=9)
    with engine.begin() as conn:
        catalog.update_export(conn, export.id, {"last_window_end": first_window // 1000})
    done = shown(setup, export)
    assert done["last_run"] == {
        "id": second,
        "kind": "scheduled",
        "status": "succeeded",
        "finished_at": created + 150,
        "events": 9,
        "error": None,
    }
    assert done["last_success_at"] == created + 150
    assert done["next_run_at"] == first_window + QUARTER * 1000

    # A run now is queued: not the last run yet, but the next run is due since it was queued.
    queued_at = created + 200
    add_run(setup, export, "queued", queued_at, kind="manual")
    waiting = shown(setup, export)
    assert waiting["last_run"]["id"] == second
    assert waiting["next_run_at"] == queued_at

    # It starts, then fails: it is the last run, with its error; the success stays; the next
    # run is the retry.
    with engine.begin() as conn:
        conn.execute(
            runs.update()
            .where(runs.c.export_id == export.id, runs.c.status == "queued")
            .values(status="running")
        )
    assert shown(setup, export)["last_run"]["status"] == "running"
    retry = created + 5 * MINUTE_MS
    with engine.begin() as conn:
        conn.execute(
            runs.update()
            .where(runs.c.export_id == export.id, runs.c.status == "running")
            .values(status="failed", error="access denied")
        )
        catalog.update_export(conn, export.id, {"next_attempt_at": retry})
    failed = shown(setup, export)
    assert failed["last_run"]["status"] == "failed"
    assert failed["last_run"]["error"] == "access denied"
    assert failed["last_run"]["finished_at"] is None
    assert failed["last_success_at"] == created + 150
    assert failed["next_run_at"] == retry

    # Disabled: nothing will run.
    with engine.begin() as conn:
        catalog.update_export(conn, export.id, {"status": "disabled"})
    assert shown(setup, export)["next_run_at"] is None


def test_listing_exports_takes_the_same_statements_for_two_or_twelve(
    engine: Engine, tmp_path: Path, local_root: Path
) -> None:
    setup = make_setup(engine, tmp_path)

    def add(count: int) -> None:
        for _ in range(count):
            export = setup.export(f"e-{uuid.uuid4().hex[:8]}", frequency="daily")
            for n in range(3):
                add_run(setup, export, "succeeded", export.created_at + n, finished_at=n + 9)
            add_run(setup, export, "failed", export.created_at + 5, error="x")

    def statements() -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(str(args[2]))

        with engine.connect() as conn:
            rows = catalog.list_exports(conn, setup.project_id)
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            listed = views.exports(engine, rows)
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert all(e["last_run"]["status"] == "failed" for e in listed)
        assert all(e["last_success_at"] == 11 for e in listed)
        return len([s for s in seen if s.lstrip().upper().startswith("SELECT")])

    add(2)
    few = statements()
    add(10)
    assert statements() == few
    assert few <= 3, few
