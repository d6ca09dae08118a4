"""Named queries for the events table: the ingest insert, lookups and retention pruning."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from spillway.store.db import PG_LOCK_INGEST, write, write_lock
from spillway.store.schema import events

if TYPE_CHECKING:  # psycopg is only needed, and only imported, on PostgreSQL
    from psycopg import Cursor

# Rows per multi-row INSERT: 8 parameters a row stays far below SQLite's 32,766 and
# PostgreSQL's 65,535 parameter limits.
_INSERT_CHUNK = 1_000

# event_time, uuid (its 16 bytes), type, name, uid, payload
EventRow = tuple[int, bytes, str, str, str, bytes]


Batch = tuple[int, int, Sequence[EventRow]]  # project_id, received_ms, rows


def insert_events(
    engine: Engine, project_id: int, received_ms: int, rows: Sequence[EventRow]
) -> set[str]:
    """Store new events; return the uuids that were already stored (and so were skipped), in
    their text form."""
    return insert_batches(engine, [(project_id, received_ms, rows)])[0]


def insert_batches(engine: Engine, batches: Sequence[Batch]) -> list[set[str]]:
    """Store several batches in one transaction; per batch, the uuids already stored (text).

    Writers are serialised (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL) so that
    sequence numbers become visible in commit order: an export's high-water mark can then never
    pass a sequence that is still in flight (DESIGN.md invariant 1). Batches are inserted in
    order inside the transaction, so a uuid in two batches of one group is stored once.
    """
    with write(engine) as conn:
        if conn.dialect.name == "postgresql":
            driver = conn.connection.driver_connection
            with driver.cursor() as cursor:  # type: ignore[union-attr]
                # Staging needs no turn: other processes' writers don't wait for this COPY.
                _stage(cursor, batches)
                write_lock(conn, PG_LOCK_INGEST)
                return _insert_staged(cursor, batches)
        write_lock(conn, PG_LOCK_INGEST)
        return _insert_values(conn, batches)


def _insert_values(conn: Connection, batches: Sequence[Batch]) -> list[set[str]]:
    """Multi-row INSERTs, the unique index deciding what is new (SQLite's fastest path)."""
    results: list[set[str]] = []
    qmark = conn.dialect.paramstyle == "qmark"
    for project_id, received_ms, rows in batches:
        existing: set[str] = set()
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            params = [value for row in chunk for value in (project_id, received_ms, *row)]
            # RETURNING names what went in.
            stored = conn.exec_driver_sql(_insert_sql(len(chunk), qmark), tuple(params))
            existing |= _skipped(chunk, set(stored.scalars()))
        results.append(existing)
    return results


def _skipped(rows: Sequence[EventRow], inserted: set[bytes]) -> set[str]:
    """The text uuids of ``rows`` that did not go in (the rare case, so converted only then)."""
    if len(inserted) == len(rows):
        return set()
    return set(uuid_texts(row[1] for row in rows if row[1] not in inserted))


def uuid_texts(ids: Iterable[bytes]) -> list[str]:
    """Stored event ids in their text form (8-4-4-4-12 lower-case hex), as clients send them."""
    return [str(uuid.UUID(bytes=value)) for value in ids]


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


# PostgreSQL: the whole group goes over in one binary COPY into a session-local staging table,
# then one fixed INSERT ... SELECT per batch. Binding thousands of parameters (multi-row VALUES)
# or text arrays (unnest) costs the single Python core far more than COPY's C row writer, and a
# statement per batch, run in order, lets each batch see what the batches before it stored.
_STAGE = "spillway_ingest"
_STAGE_TYPES = ("int4", "int8", "bytea", "text", "text", "text", "bytea")
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (batch int4 NOT NULL, event_time int8 NOT NULL, "
    "event_uuid bytea NOT NULL, event_type text NOT NULL, event_name text NOT NULL, "
    "uid text NOT NULL, payload bytea NOT NULL) ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY {_STAGE} FROM STDIN (FORMAT BINARY)"
_INSERT_STAGED = (
    "INSERT INTO events (project_id, received_at, event_time, event_uuid, event_type, "
    "event_name, uid, payload) SELECT %s, %s, event_time, event_uuid, event_type, event_name, "
    f"uid, payload FROM {_STAGE} WHERE batch = %s "
    "ON CONFLICT (project_id, event_uuid) DO NOTHING RETURNING event_uuid"
)


def _stage(cursor: Cursor[Any], batches: Sequence[Batch]) -> None:
    """COPY the group's rows, each tagged with its batch's number, into the staging table."""
    # Per transaction, not once per connection: cheap, and right after a reconnect too.
    # ON COMMIT DELETE ROWS empties it at the end of every transaction.
    cursor.execute(_CREATE_STAGE)
    with cursor.copy(_COPY_STAGE) as copy:
        copy.set_types(_STAGE_TYPES)
        write_row = copy.write_row
        for number, (_, _, rows) in enumerate(batches):
            for row in rows:
                write_row((number, *row))


def _insert_staged(cursor: Cursor[Any], batches: Sequence[Batch]) -> list[set[str]]:
    """Move each staged batch into events, in order (the writers' lock is held)."""
    results: list[set[str]] = []
    for number, (project_id, received_ms, rows) in enumerate(batches):
        cursor.execute(_INSERT_STAGED, (project_id, received_ms, number))
        results.append(_skipped(rows, {stored for (stored,) in cursor.fetchall()}))
    return results


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
