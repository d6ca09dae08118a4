"""Named queries for the events table: the ingest insert, lookups and retention pruning."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spillway.store.db import PG_LOCK_INGEST, write, write_lock
from spillway.store.schema import events

# Rows per multi-row INSERT: 8 parameters a row stays far below SQLite's 32,766 and
# PostgreSQL's 65,535 parameter limits.
_INSERT_CHUNK = 1_000

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
    pass a sequence that is still in flight (DESIGN.md invariant 1). Batches are inserted in
    order inside the transaction, so a uuid in two batches of one group is stored once.
    """
    results: list[set[str]] = []
    with write(engine) as conn:
        write_lock(conn, PG_LOCK_INGEST)
        qmark = conn.dialect.paramstyle == "qmark"
        for project_id, received_ms, rows in batches:
            existing: set[str] = set()
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
                params = [value for row in chunk for value in (project_id, received_ms, *row)]
                # The unique index decides what is new; RETURNING names what went in.
                stored = conn.exec_driver_sql(_insert_sql(len(chunk), qmark), tuple(params))
                inserted = set(stored.scalars())
                if len(inserted) < len(chunk):
                    existing.update(row[1] for row in chunk if row[1] not in inserted)
            results.append(existing)
    return results


@cache
def _insert_sql(rows: int, qmark: bool) -> str:
    placeholder = "?" if qmark else "%s"
    values = "(" + ", ".join([placeholder] * 8) + ")"
    return (
        "INSERT INTO events (project_id, received_at, event_time, event_uuid, event_type, "
        "event_name, uid, payload) VALUES "
        + ", ".join([values] * rows)
        + " ON CONFLICT (project_id, event_uuid) DO NOTHING RETURNING event_uuid"
    )


def undelivered_before(
    conn: Connection, project_id: int, cursor: int, cutoff_ms: int
) -> tuple[int, int]:
    """Events of a project past an export's cursor that retention is about to remove:
    (how many, the highest sequence among them)."""
    count, top = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(events.c.seq), 0)).where(
            events.c.received_at < cutoff_ms,
            events.c.project_id == project_id,
            events.c.seq > cursor,
        )
    ).one()
    return int(count), int(top)


def prune_before(engine: Engine, cutoff_ms: int, batch_size: int) -> int:
    """Delete events received before ``cutoff_ms`` in batches; return how many went.

    Each batch is its own short transaction so ingest never waits long behind retention.
    """
    total = 0
    while True:
        with write(engine) as conn:
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


def recent_event_names(
    conn: Connection, project_id: int, *, scan: int = 10_000, limit: int = 200
) -> list[str]:
    """The distinct event names among the project's last ``scan`` events (at most ``limit``,
    sorted): the names an export's form offers. Bounded both ways, so a busy project costs one
    short index range read, never a scan of its whole history."""
    recent = (
        sa.select(events.c.event_name)
        .where(events.c.project_id == project_id)
        .order_by(events.c.seq.desc())
        .limit(scan)
        .subquery()
    )
    names = sa.select(recent.c.event_name).distinct().order_by(recent.c.event_name).limit(limit)
    return [str(name) for name in conn.execute(names).scalars()]
