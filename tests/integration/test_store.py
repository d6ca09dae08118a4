"""The store on SQLite and PostgreSQL: schema, ingest insert, ordering, retention."""

from __future__ import annotations

import threading
import time
import uuid

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

from spillway.engine.worker import DAY_MS, Worker
from spillway.services.projects import create_project
from spillway.store import events as q
from spillway.store.db import PG_LOCK_INGEST, create_engine, migrate, now_ms, write_lock
from spillway.store.schema import events, metadata
from tests.store_queries import count_events, event_uuids, high_water


def _rows(count: int, uid: str = "u1") -> list[q.EventRow]:
    return [
        (1_700_000_000_000, str(uuid.uuid4()), "USER_ACTION_EVENT", "Open", uid, b"{}")
        for _ in range(count)
    ]


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    engine = create_engine(db_url)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_insert_skips_already_stored_uuids(engine: Engine) -> None:
    project = create_project(engine, "p").id
    rows = _rows(10)
    assert q.insert_events(engine, project, now_ms(), rows) == set()
    again = q.insert_events(engine, project, now_ms(), rows[5:] + _rows(3))
    assert again == {row[1] for row in rows[5:]}
    with engine.connect() as conn:
        assert count_events(conn, project) == 13


def test_same_uuid_in_two_projects_is_two_events(engine: Engine) -> None:
    first, second = create_project(engine, "a").id, create_project(engine, "b").id
    rows = _rows(2)
    q.insert_events(engine, first, now_ms(), rows)
    assert q.insert_events(engine, second, now_ms(), rows) == set()


def test_sequence_never_reused_after_everything_is_pruned(engine: Engine) -> None:
    project = create_project(engine, "p").id
    q.insert_events(engine, project, now_ms() - 100 * DAY_MS, _rows(5))
    with engine.connect() as conn:
        before = high_water(conn)
    assert q.prune_before(engine, now_ms(), batch_size=2) == 5
    q.insert_events(engine, project, now_ms(), _rows(1))
    with engine.connect() as conn:
        assert high_water(conn) > before


def test_retention_prunes_only_old_events_in_batches(engine: Engine) -> None:
    project = create_project(engine, "p").id
    old = _rows(23)
    q.insert_events(engine, project, now_ms() - 91 * DAY_MS, old)
    fresh = _rows(4)
    q.insert_events(engine, project, now_ms() - 89 * DAY_MS, fresh)
    result = Worker(engine, retention_days=90, retention_batch_size=5).run_once()
    assert result == {"pruned": 23}
    with engine.connect() as conn:
        assert event_uuids(conn, project) == [row[1] for row in fresh]


def test_sequence_order_is_commit_order(engine: Engine) -> None:
    """A writer holding a sequence value blocks the next one, so no later value can commit
    first and let an export's high-water mark skip an in-flight event (invariant 1)."""
    project = create_project(engine, "p").id
    done = threading.Event()
    holder = engine.connect().execution_options(write=True)
    tx = holder.begin()
    write_lock(holder, PG_LOCK_INGEST)
    holder.execute(
        events.insert().values(
            project_id=project,
            received_at=now_ms(),
            event_time=0,
            event_uuid=str(uuid.uuid4()),
            event_type="T",
            event_name="first",
            uid="u",
            payload=b"{}",
        )
    )

    def second_writer() -> None:
        q.insert_events(engine, project, now_ms(), _rows(1))
        done.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    time.sleep(0.5)
    with engine.connect() as reader:
        assert high_water(reader) == 0, "an uncommitted sequence must not be visible"
    assert not done.is_set(), "second writer must wait for the first to commit"
    tx.commit()
    holder.close()
    thread.join(timeout=30)
    assert done.is_set()
    with engine.connect() as conn:
        names = conn.execute(sa.select(events.c.event_name).order_by(events.c.seq)).scalars()
        assert list(names) == ["first", "Open"]
