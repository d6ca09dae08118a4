"""Names unique by constraint, on SQLite and PostgreSQL (issue 8, item 9): a request that
loses the race past the application's check gets a 409, not a 500 or a duplicate, and the
migration renames duplicates an older version let in instead of failing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.api.errors import answer_for
from spillway.errors import InputError
from spillway.model import Actor
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from spillway.store import catalog
from spillway.store.db import create_engine, migrate, now_ms
from spillway.store.schema import audit_log, destinations
from spillway.store.schema import exports as exports_table

BOX = SecretBox(b"integration-test-service-key-32-bytes-long")


def s3(name: str) -> dict[str, Any]:
    """A destination stored without validation (no network)."""
    return {
        "name": name,
        "kind": "s3",
        "config": {"bucket": "acme-exports", "region": "us-east-1", "folder": "spillway"},
        "credentials": {
            "mode": "access_key",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "s" * 40,
        },
        "force": True,
    }


def no_check(*_: Any) -> None:
    """The application's check, as a racing request sees it: nothing there yet."""
    return None


def test_racing_destination_names_get_a_409(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    actor = Actor("test", create_project(engine, "acme").id)
    first, _ = destination_service.create(engine, BOX, actor, s3("warehouse"))
    monkeypatch.setattr(catalog, "destination_by_name", no_check)
    with pytest.raises(InputError) as info:
        destination_service.create(engine, BOX, actor, s3("warehouse"))
    assert (answer_for(info.value).status, answer_for(info.value).code) == (409, "conflict")
    assert "'warehouse' already exists" in str(info.value)

    # Renaming onto a taken name is refused the same way.
    other, _ = destination_service.create(engine, BOX, actor, s3("lake"))
    with pytest.raises(InputError) as info:
        destination_service.update(
            engine, BOX, actor, other.id, {"name": "warehouse", "force": True}
        )
    assert answer_for(info.value).status == 409

    # Another project, or a deleted destination, does not hold the name.
    elsewhere = Actor("test", create_project(engine, "beta").id)
    destination_service.create(engine, BOX, elsewhere, s3("warehouse"))
    destination_service.delete(engine, actor, first.id)
    again, _ = destination_service.create(engine, BOX, actor, s3("warehouse"))
    with engine.connect() as conn:
        names = [row.name for row in catalog.list_destinations(conn, actor.project_id)]
    assert sorted(names) == ["lake", "warehouse"]
    assert again.id != first.id


def test_racing_export_names_get_a_409(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    actor = Actor("test", create_project(engine, "acme").id)
    destination, _ = destination_service.create(engine, BOX, actor, s3("warehouse"))
    body = api_models.ExportIn(name="events", destination_id=destination.id)
    first = export_service.create(engine, actor, body)
    monkeypatch.setattr(catalog, "list_exports", lambda *_: [])
    with pytest.raises(InputError) as info:
        export_service.create(engine, actor, body)
    assert (answer_for(info.value).status, answer_for(info.value).code) == (409, "conflict")
    assert "'events' already writes there" in str(info.value)

    # The same name on another destination is fine, and so is reusing a deleted export's.
    other, _ = destination_service.create(engine, BOX, actor, s3("lake"))
    export_service.create(
        engine, actor, api_models.ExportIn(name="events", destination_id=other.id)
    )
    export_service.delete(engine, actor, first.id)
    export_service.create(engine, actor, body)


def _destination(conn: sa.Connection, project: int, name: str, at: int, **extra: Any) -> str:
    destination_id = f"d{at:031d}"
    conn.execute(
        destinations.insert().values(
            id=destination_id,
            project_id=project,
            name=name,
            kind="s3",
            config={},
            features={},
            credentials_sealed=b"x",
            credentials_public={},
            credentials_version=1,
            status="active",
            created_at=at,
            updated_at=at,
            **extra,
        )
    )
    return destination_id


def _export(conn: sa.Connection, project: int, destination: str, name: str, at: int) -> str:
    export_id = f"e{at:031d}"
    conn.execute(
        exports_table.insert().values(
            id=export_id,
            project_id=project,
            name=name,
            destination_id=destination,
            frequency="daily",
            settings={},
            status="active",
            cursor_seq=0,
            created_at=at,
            updated_at=at,
        )
    )
    return export_id


def _old_project(engine: Engine, name: str) -> int:
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        row = conn.execute(
            sa.text(
                "INSERT INTO projects (app_id, name, external_id, created_at) "
                "VALUES (:app_id, :name, :external_id, :created_at) RETURNING id"
            ),
            {
                "app_id": uuid.uuid4().hex,
                "name": name,
                "external_id": "spw-" + uuid.uuid4().hex[:24],
                "created_at": now_ms(),
            },
        ).scalar_one()
    return int(row)


def test_migration_renames_duplicates_instead_of_failing(db_url: str) -> None:
    engine = create_engine(db_url)
    migrate(engine, "0005")  # before the constraint: the racy check let duplicates in
    # Rows as that schema holds them (today's services write columns it does not have yet).
    project, other = _old_project(engine, "acme"), _old_project(engine, "beta")
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        oldest = _destination(conn, project, "warehouse", 1)
        second = _destination(conn, project, "warehouse", 2)
        taken = _destination(conn, project, "warehouse (2)", 3)
        third = _destination(conn, project, "warehouse", 4)
        gone = _destination(conn, project, "warehouse", 5, deleted_at=now_ms())
        theirs = _destination(conn, other, "warehouse", 6)
        kept = _export(conn, project, oldest, "events", 7)
        twin = _export(conn, project, oldest, "events", 8)
        beside = _export(conn, project, second, "events", 9)

    migrate(engine)

    with engine.connect() as conn:
        names = dict(conn.execute(sa.select(destinations.c.id, destinations.c.name)).all())
        export_names = dict(conn.execute(sa.select(exports_table.c.id, exports_table.c.name)).all())
        audit = conn.execute(
            sa.select(audit_log.c.action, audit_log.c.target, audit_log.c.detail).where(
                audit_log.c.actor == "migration"
            )
        ).all()
    assert names == {
        oldest: "warehouse",
        second: "warehouse (3)",
        taken: "warehouse (2)",
        third: "warehouse (4)",
        gone: "warehouse",  # deleted: keeps its name, holds nothing
        theirs: "warehouse",  # another project
    }
    assert export_names == {kept: "events", twin: "events-2", beside: "events"}
    assert {(a.action, a.target) for a in audit} == {
        ("destination.rename", second),
        ("destination.rename", third),
        ("export.rename", twin),
    }
    assert {a.detail["from"] for a in audit} == {"warehouse", "events"}

    # From now on the database itself refuses a duplicate.
    with (
        pytest.raises(sa.exc.IntegrityError),
        engine.connect().execution_options(write=True) as conn,
        conn.begin(),
    ):
        _destination(conn, project, "warehouse", 10)
    engine.dispose()
