"""Named queries for export runs, export leases (``store/leases.py`` on the exports table) and
reading events for a run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.model import Export, Run, RunSettings
from spillway.store import leases
from spillway.store.db import now_ms
from spillway.store.schema import events, exports, runs

ACTIVE_STATES = ("queued", "running", "failed")


def live_exports(conn: Connection) -> list[Export]:
    """Exports the scheduler looks after (not disabled, not deleted)."""
    rows = conn.execute(
        sa.select(exports).where(exports.c.deleted_at.is_(None), exports.c.status != "disabled")
    )
    return [Export.from_row(row) for row in rows]


def claim(conn: Connection, export_id: str, owner: str, now: int, ttl_ms: int) -> bool:
    """Take (or renew) the export's lease; True when this owner holds it now."""
    return leases.claim(conn, exports, export_id, owner, now, ttl_ms)


def renew(conn: Connection, export_id: str, owner: str, now: int, ttl_ms: int) -> bool:
    """Extend a lease this owner still holds; False once another worker took it over."""
    return leases.renew(conn, exports, export_id, owner, now, ttl_ms)


def release(conn: Connection, export_id: str, owner: str) -> None:
    """Give the lease up."""
    leases.release(conn, exports, export_id, owner)


def fence(conn: Connection, export_id: str, owner: str, now: int) -> None:
    """Inside a commit's transaction: raise LeaseLost unless this owner still holds the lease."""
    leases.fence(conn, exports, export_id, owner, now)


def insert_run(conn: Connection, values: dict[str, Any], settings: RunSettings) -> bool:
    """Queue a run unless one exists for the same export, kind and window; ``settings`` is
    its snapshot of the export's settings.

    A manual run (run now) is always queued: two in one second are two runs, each covering
    what was received before it (their files are named by their sequence ranges).
    """
    if values["kind"] != "manual":
        existing = conn.execute(
            sa.select(runs.c.id).where(
                runs.c.export_id == values["export_id"],
                runs.c.kind == values["kind"],
                runs.c.window_end == values["window_end"],
            )
        ).first()
        if existing is not None:
            return False
    conn.execute(
        runs.insert().values(
            status="queued",
            attempts=0,
            events=0,
            bytes=0,
            files=[],
            created_at=now_ms(),
            settings=settings.to_json(),
            **values,
        )
    )
    return True


def pending_runs(conn: Connection, export_id: str) -> list[Run]:
    """Runs still to deliver, in the order they must go (creation order)."""
    rows = conn.execute(
        sa.select(runs)
        .where(runs.c.export_id == export_id, runs.c.status.in_(ACTIVE_STATES))
        .order_by(runs.c.created_at, runs.c.window_end, runs.c.id)
    )
    return [Run.from_row(row) for row in rows]


def update_run(conn: Connection, run_id: str, values: dict[str, Any]) -> None:
    """Change a run's columns."""
    conn.execute(runs.update().where(runs.c.id == run_id).values(**values))


def list_runs(conn: Connection, export_id: str, limit: int = 100) -> list[Run]:
    """Newest runs first."""
    rows = conn.execute(
        sa.select(runs)
        .where(runs.c.export_id == export_id)
        .order_by(runs.c.created_at.desc(), runs.c.window_end.desc())
        .limit(limit)
    )
    return [Run.from_row(row) for row in rows]


def get_run(conn: Connection, run_id: str) -> Run | None:
    """One run."""
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    return None if row is None else Run.from_row(row)


def last_window_end(conn: Connection, export_id: str) -> int:
    """The end of the export's last covered window (0 before the first)."""
    value = conn.execute(
        sa.select(exports.c.last_window_end).where(exports.c.id == export_id)
    ).scalar_one_or_none()
    return int(value or 0)


def high_water_before(conn: Connection, before_ms: int) -> int:
    """The ingest sequence of the last event received before ``before_ms`` (0 if none).

    Sequence numbers commit in order (writers are serialised), so everything at or below the
    answer is committed: a range ending there never skips an in-flight event.
    """
    seq = conn.execute(
        sa.select(events.c.seq)
        .where(events.c.received_at < before_ms)
        .order_by(events.c.received_at.desc(), events.c.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    return int(seq or 0)


def latest_project_seq(conn: Connection, project_id: int, *, after: int) -> int | None:
    """The sequence of the project's newest event after ``after``, or None when there is none."""
    seq = conn.execute(
        sa.select(events.c.seq)
        .where(events.c.project_id == project_id, events.c.seq > after)
        .order_by(events.c.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    return None if seq is None else int(seq)


def first_seq_since(conn: Connection, project_id: int, since_ms: int) -> int | None:
    """The smallest ingest sequence of the project's events received at or after ``since_ms``
    (None when there is none)."""
    # Walks the (project_id, seq) index from the oldest event: for "retention" the first
    # one is the answer.
    seq = conn.execute(
        sa.select(events.c.seq)
        .where(events.c.project_id == project_id, events.c.received_at >= since_ms)
        .order_by(events.c.seq)
        .limit(1)
    ).scalar_one_or_none()
    return None if seq is None else int(seq)


def high_water_now(conn: Connection) -> int:
    """The last committed sequence number."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one())


def _filters(
    project_id: int,
    seq_from: int,
    seq_to: int,
    names: list[str] | None,
    received: tuple[int, int] | None,
) -> list[sa.ColumnElement[bool]]:
    # Served by the (project_id, seq) index: a range read in ingest order, whatever other
    # projects store meanwhile.
    where = [events.c.project_id == project_id, events.c.seq > seq_from, events.c.seq <= seq_to]
    if names is not None:
        where.append(events.c.event_name.in_(names))
    if received is not None:
        where.append(events.c.received_at >= received[0])
        where.append(events.c.received_at < received[1])
    return where


def measure(
    conn: Connection,
    project_id: int,
    seq_from: int,
    seq_to: int,
    names: list[str] | None = None,
    received: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """(events, payload bytes) in a run's range."""
    row = conn.execute(
        sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(sa.func.length(events.c.payload)), 0)
        ).where(*_filters(project_id, seq_from, seq_to, names, received))
    ).one()
    return int(row[0]), int(row[1])


def payload_ceiling(conn: Connection) -> int | None:
    """A cheap ceiling on the payload bytes of any range, or None where the store has none.

    SQLite keeps every payload byte uncompressed in the database's pages, so the database's size
    (in this read's snapshot, WAL included) is never less than what ``measure`` would add up; it
    lets a run that cannot reach its file limit skip counting. PostgreSQL compresses large values
    (TOAST), so its sizes bound nothing.
    """
    if conn.dialect.name != "sqlite":
        return None
    pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    return int(pages) * int(size)


def stream_payloads(
    conn: Connection,
    project_id: int,
    seq_from: int,
    seq_to: int,
    names: list[str] | None = None,
    received: tuple[int, int] | None = None,
    chunk: int = 5_000,
) -> Iterator[list[bytes]]:
    """Payloads in ingest order, a chunk at a time (keyset pagination: bounded memory).

    Each chunk is its own short read transaction on ``conn``, so a long run never pins a
    snapshot (nor SQLite's WAL). Rows come straight from the driver's cursor: building
    SQLAlchemy Row objects would cost as much as the read itself. A few thousand rows a chunk
    stay in the CPU cache on their way to the compressor.
    """
    cursor = seq_from
    while True:
        query = (
            sa.select(events.c.seq, events.c.payload)
            .where(*_filters(project_id, cursor, seq_to, names, received))
            .order_by(events.c.seq)
            .limit(chunk)
        )
        result = conn.execute(query)
        rows = result.cursor.fetchall()
        result.close()
        conn.rollback()  # ends the read transaction before the caller gets the chunk
        if not rows:
            return
        cursor = rows[-1][0]
        payloads = [row[1] for row in rows]
        if type(payloads[0]) is not bytes:  # a driver that hands out memoryviews
            payloads = [bytes(payload) for payload in payloads]
        yield payloads
        if len(rows) < chunk:
            return
