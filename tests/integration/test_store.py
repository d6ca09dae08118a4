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
from spillway.store.db import (
    MIGRATIONS_DIR,
    PG_LOCK_INGEST,
    create_engine,
    migrate,
    now_ms,
    write_lock,
)
from spillway.store.schema import events, metadata
from tests.store_queries import count_events, event_uuids, high_water


def _rows(count: int, uid: str = "u1") -> list[q.EventRow]:
    return [
        (1_700_000_000_000, uuid.uuid4().bytes, "USER_ACTION_EVENT", "Open", uid, b"{}")
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
    assert again == {str(uuid.UUID(bytes=row[1])) for row in rows[5:]}  # text, as sent
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
            event_uuid=uuid.uuid4().bytes,
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


def test_a_uuid_in_two_batches_of_one_group_is_stored_once(engine: Engine) -> None:
    """The group writer's batches share a transaction: the later batch reports the earlier one's
    event as already stored, and each batch hears only of its own duplicates."""
    project, other = create_project(engine, "p").id, create_project(engine, "q").id
    before, shared, after, theirs = _rows(2), _rows(1), _rows(3), _rows(1)
    q.insert_events(engine, project, now_ms(), before)
    results = q.insert_batches(
        engine,
        [
            (project, now_ms(), shared + after[:1]),
            (project, now_ms(), before[:1] + shared + after[1:]),
            (other, now_ms(), shared + theirs),  # another project: not a duplicate
        ],
    )
    text = {row[1]: str(uuid.UUID(bytes=row[1])) for row in before + shared}
    assert results == [set(), {text[before[0][1]], text[shared[0][1]]}, set()]
    with engine.connect() as conn:
        assert event_uuids(conn, project) == [row[1] for row in before + shared + after]
        assert count_events(conn, other) == 2


def _old_events(engine: Engine, project: int, count: int, received: int) -> list[str]:
    """Events written as migration 0012's schema holds them (the id as text); their ids."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        conn.execute(
            sa.text(
                "INSERT INTO events (project_id, received_at, event_time, event_uuid, "
                "event_type, event_name, uid, payload) VALUES (:p, :r, 0, :u, 'T', 'n', 'u', :b)"
            ),
            [{"p": project, "r": received, "u": key, "b": key.encode()} for key in ids],
        )
    return ids


def test_migration_to_binary_ids_keeps_events_sequence_and_dedup(db_url: str) -> None:
    engine = create_engine(db_url)
    migrate(engine, "0012")
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        project = conn.execute(
            sa.text(
                "INSERT INTO projects (app_id, name, external_id, created_at) "
                "VALUES ('a', 'p', 'x', 0) RETURNING id"
            )
        ).scalar_one()
    _old_events(engine, project, 3, now_ms() - 100 * DAY_MS)
    kept = _old_events(engine, project, 4, now_ms())
    with engine.connect() as conn:
        issued = high_water(conn)
    # Retention took the three oldest; the newest goes too, so the highest sequence ever issued
    # is stored nowhere and the rebuild must carry SQLite's AUTOINCREMENT mark over.
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        conn.execute(sa.text("DELETE FROM events WHERE received_at < :t"), {"t": now_ms() - DAY_MS})
        last = conn.execute(sa.text("SELECT max(seq) FROM events")).scalar_one()
        conn.execute(sa.text("DELETE FROM events WHERE seq = :s"), {"s": last})
        before = conn.execute(sa.text("SELECT seq, event_uuid, payload FROM events ORDER BY seq"))
        before_rows = [tuple(row) for row in before]

    migrate(engine)

    with engine.connect() as conn:
        after = conn.execute(sa.select(events.c.seq, events.c.event_uuid, events.c.payload))
        after_rows = sorted(tuple(row) for row in after)
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    assert [(seq, str(uuid.UUID(bytes=key)), body) for seq, key, body in after_rows] == [
        (seq, key, body) for seq, key, body in before_rows
    ]
    assert [key for _, key, _ in before_rows] == kept[:3]
    # A new event gets a sequence never issued before (first: a skipped duplicate may use up
    # a value on SQLite); a re-sent one is still a duplicate.
    assert q.insert_events(engine, project, now_ms(), _rows(1)) == set()
    with engine.connect() as conn:
        assert high_water(conn) == issued + 1
    resent = (0, uuid.UUID(kept[1]).bytes, "T", "n", "u", b"{}")
    assert q.insert_events(engine, project, now_ms(), [resent]) == {kept[1]}
    with engine.connect() as conn:
        assert count_events(conn, project) == 4
    engine.dispose()


def test_migration_to_binary_ids_downgrades_to_text(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    project = create_project(engine, "p").id
    rows = _rows(3)
    q.insert_events(engine, project, now_ms(), rows)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "0012")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT seq, event_uuid FROM events ORDER BY seq")).all()
    assert [tuple(row) for row in stored] == [
        (number, str(uuid.UUID(bytes=row[1]))) for number, row in enumerate(rows, 1)
    ]
