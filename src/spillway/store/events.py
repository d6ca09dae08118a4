"""Named queries for the events table: the ingest insert, lookups and retention pruning."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spillway.store.db import PG_LOCK_INGEST, write_lock
from spillway.store.schema import events

# Rows per IN (...) lookup; far below SQLite's and PostgreSQL's parameter limits.
_LOOKUP_CHUNK = 500

EventRow = tuple[int, str, str, str, str, bytes]  # event_time, uuid, type, name, uid, payload


Batch = tuple[int, int, Sequence[EventRow]]  # project_id, received_ms, rows


def insert_events(
    engine: Engine, project_id: int, received_ms: int, rows: Sequence[EventRow]
) -> set[str]:
    """Store new events; return the uuids that were already stored (and so were skipped)."""
    return insert_batches(engine, [(project_id, received_ms, rows)])[0]


def insert_batches(engine: Engine, batches: Sequence[Batch]) -> list[set[str]]:
    """Store several batches in one transaction; per batch, the uuids already stored.

    Writers are serialised (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL) so that
    sequence numbers become visible in commit order: an export's high-water mark can then never
    pass a sequence that is still in flight (DESIGN.md invariant 1). Batches are checked in
    order inside the transaction, so a uuid in two batches of one group is stored once.
    """
    results: list[set[str]] = []
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        write_lock(conn, PG_LOCK_INGEST)
        placeholder = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql = (
            "INSERT INTO events (project_id, received_at, event_time, event_uuid, "
            "event_type, event_name, uid, payload) VALUES ("
            + ", ".join([placeholder] * 8)
            + ") ON CONFLICT (project_id, event_uuid) DO NOTHING"
        )
        for project_id, received_ms, rows in batches:
            if not rows:
                results.append(set())
                continue
            existing = _existing_uuids(conn, project_id, [row[1] for row in rows])
            fresh = rows if not existing else [row for row in rows if row[1] not in existing]
            if fresh:
                # exec_driver_sql hands the tuples straight to the driver's executemany.
                conn.exec_driver_sql(sql, [(project_id, received_ms, *row) for row in fresh])
            results.append(existing)
    return results


def _existing_uuids(conn: Connection, project_id: int, uuids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(uuids), _LOOKUP_CHUNK):
        chunk = uuids[start : start + _LOOKUP_CHUNK]
        query = sa.select(events.c.event_uuid).where(
            events.c.project_id == project_id, events.c.event_uuid.in_(chunk)
        )
        found.update(conn.execute(query).scalars())
    return found


def count_events(conn: Connection, project_id: int | None = None) -> int:
    """How many events are stored, for one project or all."""
    query = sa.select(sa.func.count()).select_from(events)
    if project_id is not None:
        query = query.where(events.c.project_id == project_id)
    return int(conn.execute(query).scalar_one())


def event_uuids(conn: Connection, project_id: int) -> list[str]:
    """Every stored uuid of a project in ingest order (for tests and tools)."""
    query = (
        sa.select(events.c.event_uuid)
        .where(events.c.project_id == project_id)
        .order_by(events.c.seq)
    )
    return list(conn.execute(query).scalars())


def high_water(conn: Connection) -> int:
    """The largest committed sequence number (0 when empty)."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one())


def prune_before(engine: Engine, cutoff_ms: int, batch_size: int) -> int:
    """Delete events received before ``cutoff_ms`` in batches; return how many went.

    Each batch is its own short transaction so ingest never waits long behind retention.
    """
    total = 0
    while True:
        with engine.connect().execution_options(write=True) as conn, conn.begin():
            victims = (
                sa.select(events.c.seq)
                .where(events.c.received_at < cutoff_ms)
                .order_by(events.c.seq)
                .limit(batch_size)
                .scalar_subquery()
            )
            deleted = conn.execute(events.delete().where(events.c.seq.in_(victims))).rowcount
        total += deleted
        if deleted < batch_size:
            return total
