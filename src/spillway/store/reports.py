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


# An export job's snapshot reads every endpoint once: the columns in this order, the JSON maps
# as their text (parsed by the caller with orjson, far cheaper than the JSON type's json.loads).
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


# Pinpoint's names for the demographic and location fields (``engine/jobs/shapes.py`` has the
# same table for the Python path; the API accepts no other fields in these maps).
_DEMOGRAPHIC = (
    ("AppVersion", "app_version"),
    ("Locale", "locale"),
    ("Make", "make"),
    ("Model", "model"),
    ("ModelVersion", "model_version"),
    ("Platform", "platform"),
    ("PlatformVersion", "platform_version"),
    ("Timezone", "timezone"),
)
_LOCATION = (
    ("City", "city"),
    ("Country", "country"),
    ("Latitude", "latitude"),
    ("Longitude", "longitude"),
    ("PostalCode", "postal_code"),
    ("Region", "region"),
)


def _renamed(column: str, fields: tuple[tuple[str, str], ...]) -> str:
    pairs = ", ".join(f"'{pascal}', {column}->'$.{snake}'" for pascal, snake in fields)
    return f"json_object({pairs})"


# One Pinpoint export line per endpoint, built by SQLite: ``json_patch('{}', …)`` drops the
# members that are null (a scalar not set, a demographic field absent), as the Python path
# leaves them out. Stored maps are embedded as they are (``json()`` only minifies them), so a
# line equals the Python path's record, though not always byte for byte (SQLite keeps a
# ``\u00e9`` escape as it was stored, orjson writes the character).
_LINES_SQL = f"""
SELECT endpoint_id, CAST(json_patch('{{}}', json_object(
    'Id', endpoint_id,
    'ChannelType', channel_type,
    'Address', address,
    'EndpointStatus', endpoint_status,
    'OptOut', opt_out,
    'EffectiveDate', effective_date,
    'Attributes', json(attributes),
    'Demographic', {_renamed("demographic", _DEMOGRAPHIC)},
    'Location', {_renamed("location", _LOCATION)},
    'Metrics', json(metrics),
    'User', json_object('UserAttributes', json(user_attributes), 'UserId', user_id),
    'ApplicationId', :application_id,
    'CreationDate', strftime('%Y-%m-%dT%H:%M:%S', created_at / 1000, 'unixepoch')
        || printf('.%03dZ', created_at % 1000)
)) AS BLOB)
FROM endpoints
WHERE project_id = :project_id AND endpoint_id > :after
ORDER BY endpoint_id
LIMIT :page
"""


def lines_in_sql(conn: Connection) -> bool:
    """Whether ``endpoint_lines`` serves this database (SQLite's JSON functions); elsewhere
    the lines are built in Python from ``endpoint_pages``."""
    return conn.dialect.name == "sqlite"


def endpoint_lines(
    conn: Connection, project_id: int, application_id: str, page: int = 5_000
) -> Iterator[list[bytes]]:
    """The project's endpoints in id order as Pinpoint export lines (JSON, one per endpoint),
    a page at a time, all in the caller's transaction. SQLite only (``lines_in_sql``)."""
    after = ""  # every endpoint id is longer than the empty string
    statement = sa.text(_LINES_SQL)
    while True:
        params = {
            "project_id": project_id,
            "after": after,
            "page": page,
            "application_id": application_id,
        }
        result = conn.execute(statement, params)
        rows = result.cursor.fetchall()
        result.close()
        if rows:
            yield [line for _id, line in rows]
        if len(rows) < page:
            break
        after = rows[-1][0]
    # The pass filled this connection's page cache (64 MiB) with pages it will not read again;
    # give the memory back before the job's pieces fill another connection's.
    conn.exec_driver_sql("PRAGMA shrink_memory")
