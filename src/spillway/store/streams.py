"""Queries of the stream delivery loop: rows to send, its counters, the dead letters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.model import DeadLetter, StreamState
from spillway.store.db import now_ms
from spillway.store.schema import dead_letters, events, stream_state

COUNTERS = ("records_sent", "records_retried", "dead_lettered", "redelivered")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row read for delivery."""

    seq: int
    uid: str
    event_uuid: str
    received_at: int  # epoch ms
    payload: bytes


def rows_after(
    conn: Connection, project_id: int, after: int, limit: int, names: list[str] | None
) -> tuple[list[StoredEvent], int]:
    """The project's next events in ingest order (those named in ``names``, when given), and
    the sequence the scan covered: the cursor may move there once these rows are delivered.

    The scan stops at the high-water mark: every sequence at or below it is committed (writers
    are serialised, DESIGN.md invariant 1), so moving the cursor past the events of other
    names up to there never skips an event that commits late. When ``limit`` rows came back,
    the scan covered only up to the last of them.
    """
    high = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one())
    where = [events.c.project_id == project_id, events.c.seq > after, events.c.seq <= high]
    if names is not None:
        where.append(events.c.event_name.in_(names))
    result = conn.execute(
        sa.select(
            events.c.seq, events.c.uid, events.c.event_uuid, events.c.received_at, events.c.payload
        )
        .where(*where)
        .order_by(events.c.seq)
        .limit(limit)
    )
    # event_uuid is stored as its 16 bytes (migration 0013); records carry the text form.
    rows = [
        StoredEvent(seq, uid, str(uuid.UUID(bytes=key)), received, payload)
        for seq, uid, key, received, payload in result
    ]
    if len(rows) == limit:
        return rows, rows[-1].seq
    if names is None:
        return rows, rows[-1].seq if rows else after
    # The project's last event up to the high-water mark, whatever its name (served by the
    # (project_id, seq) index): nothing for this export lies between the rows and it.
    last = conn.execute(
        sa.select(sa.func.max(events.c.seq)).where(
            events.c.project_id == project_id, events.c.seq > after, events.c.seq <= high
        )
    ).scalar_one_or_none()
    return rows, int(last) if last is not None else after


def state(conn: Connection, export_id: str) -> StreamState:
    """The export's delivery counters (zeros before the first batch)."""
    row = conn.execute(sa.select(stream_state).where(stream_state.c.export_id == export_id)).first()
    return StreamState(export_id) if row is None else StreamState.from_row(row)


def save_state(conn: Connection, state: StreamState) -> None:
    """Insert or replace the export's counters."""
    values = {
        "inflight_to": state.inflight_to,
        "last_sent_at": state.last_sent_at,
        **{name: getattr(state, name) for name in COUNTERS},
    }
    exists = conn.execute(
        sa.select(stream_state.c.export_id).where(stream_state.c.export_id == state.export_id)
    ).first()
    if exists:
        conn.execute(
            stream_state.update().where(stream_state.c.export_id == state.export_id).values(values)
        )
    else:
        conn.execute(stream_state.insert().values(export_id=state.export_id, **values))


def add_dead_letter(
    conn: Connection, export_id: str, event: StoredEvent, size: int, reason: str
) -> None:
    """Keep a record the service can never accept, with the reason (once per event)."""
    known = conn.execute(
        sa.select(dead_letters.c.id).where(
            dead_letters.c.export_id == export_id, dead_letters.c.seq == event.seq
        )
    ).first()
    if known is None:
        conn.execute(
            dead_letters.insert().values(
                export_id=export_id,
                seq=event.seq,
                event_uuid=event.event_uuid,
                bytes=size,
                reason=reason,
                created_at=now_ms(),
            )
        )


def list_dead_letters(conn: Connection, export_id: str, limit: int = 100) -> list[DeadLetter]:
    """The export's dead letters, newest first."""
    rows = conn.execute(
        sa.select(dead_letters)
        .where(dead_letters.c.export_id == export_id)
        .order_by(dead_letters.c.seq.desc())
        .limit(limit)
    )
    return [DeadLetter.from_row(row) for row in rows]


def _names(names: list[str] | None) -> list[sa.ColumnElement[bool]]:
    return [] if names is None else [events.c.event_name.in_(names)]


def lag(
    conn: Connection, project_id: int, cursor: int, now: int, names: list[str] | None = None
) -> dict[str, int]:
    """How far behind an export is: events after its cursor that it takes (all, or those named
    in ``names``), and the age of the oldest one."""
    where = [events.c.project_id == project_id, events.c.seq > cursor, *_names(names)]
    behind = conn.execute(sa.select(sa.func.count()).select_from(events).where(*where)).scalar_one()
    oldest = conn.execute(
        sa.select(events.c.received_at).where(*where).order_by(events.c.seq).limit(1)
    ).scalar_one_or_none()
    seconds = max(0, (now - oldest) // 1000) if oldest is not None else 0
    return {"events": int(behind), "seconds": int(seconds)}


def count_between(
    conn: Connection, project_id: int, after: int, through: int, names: list[str] | None = None
) -> int:
    """The project's events in (after, through] (those named in ``names``, when given)."""
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(events)
            .where(
                events.c.project_id == project_id,
                events.c.seq > after,
                events.c.seq <= through,
                *_names(names),
            )
        ).scalar_one()
    )
