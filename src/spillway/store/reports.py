"""Read-only queries for export jobs: aggregates over a project's events (users, event counts)
and the endpoints read once for a snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.store.schema import endpoints, events

DAY_MS = 86_400_000


def user_event_stats(conn: Connection, project_id: int) -> Iterator[tuple[str, int, int, int]]:
    """``(uid, first event time, last event time, events)`` per user with kept events."""
    result = conn.execution_options(yield_per=10_000).execute(
        sa.select(
            events.c.uid,
            sa.func.min(events.c.event_time),
            sa.func.max(events.c.event_time),
            sa.func.count(),
        )
        .where(events.c.project_id == project_id)
        .group_by(events.c.uid)
    )
    for uid, first, last, count in result:
        yield str(uid), int(first), int(last), int(count)


def daily_event_counts(
    conn: Connection, project_id: int, start_ms: int, end_ms: int
) -> Iterator[tuple[int, str, int, int]]:
    """``(UTC day number, event name, events, distinct users)`` for event times in
    ``[start_ms, end_ms)``, by day then name (``//`` renders as integer division on SQLite and
    PostgreSQL alike; event times are never negative)."""
    day = (events.c.event_time // DAY_MS).label("day")
    result = conn.execute(
        sa.select(
            day,
            events.c.event_name,
            sa.func.count(),
            sa.func.count(sa.distinct(events.c.uid)),
        )
        .where(
            events.c.project_id == project_id,
            events.c.event_time >= start_ms,
            events.c.event_time < end_ms,
        )
        .group_by(day, events.c.event_name)
        .order_by(day, events.c.event_name)
    )
    for number, name, count, users in result:
        yield int(number), str(name), int(count), int(users)


# An export job's snapshot with a filter (or on PostgreSQL) reads every endpoint once: the
# columns in this order, the JSON maps as their text (parsed by the caller with orjson, far
# cheaper than the JSON type's json.loads), then the stored export line parts.
ENDPOINT_COLUMNS = (
    "endpoint_id",
    "user_id",
    "channel_type",
    "address",
    "endpoint_status",
    "opt_out",
    "effective_date",
    "created_at",
    "updated_at",
    "attributes",
    "user_attributes",
    "demographic",
    "location",
    "metrics",
    "pinpoint_head",  # the stored export line parts (NULL: not built yet)
    "pinpoint_tail",
)
_JSON_COLUMNS = frozenset(("attributes", "user_attributes", "demographic", "location", "metrics"))


def endpoint_pages(
    conn: Connection, project_id: int, page: int = 5_000
) -> Iterator[list[tuple[Any, ...]]]:
    """The project's endpoints in id order, a page of driver tuples at a time (keyset paging,
    all in the caller's transaction: one consistent view on PostgreSQL)."""
    columns = [
        sa.cast(endpoints.c[name], sa.Text) if name in _JSON_COLUMNS else endpoints.c[name]
        for name in ENDPOINT_COLUMNS
    ]
    after: str | None = None
    while True:
        query = sa.select(*columns).where(endpoints.c.project_id == project_id)
        if after is not None:
            query = query.where(endpoints.c.endpoint_id > after)
        result = conn.execute(query.order_by(endpoints.c.endpoint_id).limit(page))
        # Straight from the driver's cursor: SQLAlchemy Row objects would cost as much as
        # the rest of the record's way to the snapshot.
        rows: list[tuple[Any, ...]] = list(result.cursor.fetchall())
        result.close()
        if rows:
            yield rows
        if len(rows) < page:
            return
        after = rows[-1][0]
