"""What an export job writes, read once when the job is planned (its snapshot) and numbered in
output order: every piece is then a fixed range of those records, so a piece written again after
a crash has the same bytes, and an endpoint changed while the job runs appears once, as it was
when the job was planned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from spillway.engine.jobs.shapes import NESTED_NAMES as _NESTED
from spillway.engine.jobs.shapes import iso_time, pascal_fields
from spillway.store import reports

Record = dict[str, Any]
Matches = Callable[[Mapping[str, Any]], bool]
Row = tuple[Any, ...]

# Positions in a row of ``reports.endpoint_pages``.
_NAMES = reports.ENDPOINT_COLUMNS
(_ID, _USER, _CHANNEL, _ADDRESS, _STATUS, _OPT_OUT, _EFFECTIVE, _CREATED, _UPDATED) = range(9)
(_ATTRIBUTES, _USER_ATTRIBUTES, _DEMOGRAPHIC, _LOCATION, _METRICS) = range(9, 14)
_JSON = range(9, 14)
# Scalars in the order Pinpoint's export lines have them (``shapes.to_pinpoint``).
_SCALARS = (
    (_CHANNEL, "ChannelType"),
    (_ADDRESS, "Address"),
    (_STATUS, "EndpointStatus"),
    (_OPT_OUT, "OptOut"),
    (_EFFECTIVE, "EffectiveDate"),
)
_loads = orjson.loads


def _map(text: str) -> dict[str, Any]:
    """A stored JSON map column, read as text (``reports.endpoint_pages`` casts it)."""
    value: dict[str, Any] = _loads(text) or {}
    return value


def _record(project_id: int, row: Row) -> Record:
    """A row as the record ``store.endpoints.list_endpoints`` gives (what filters look at)."""
    record: Record = {"project_id": project_id, **dict(zip(_NAMES, row, strict=True))}
    for position in _JSON:
        record[_NAMES[position]] = _map(row[position])
    return record


def _selected(
    conn: Connection, project_id: int, matches: Matches | None
) -> Iterator[list[tuple[Row, Record | None]]]:
    """Pages of the endpoints the filter selects, each row with its record when a filter
    needed one (None without a filter: the fast path builds nothing it does not write)."""
    for page in reports.endpoint_pages(conn, project_id):
        if matches is None:
            yield [(row, None) for row in page]
            continue
        records = ((row, _record(project_id, row)) for row in page)
        yield [(row, record) for row, record in records if matches(record)]


def _endpoints(conn: Connection, project_id: int, matches: Matches | None) -> Iterator[Record]:
    """The project's endpoints the filter selects, in endpoint id order, as records."""
    for page in _selected(conn, project_id, matches):
        for row, record in page:
            yield record if record is not None else _record(project_id, row)


def _pascal(text: str) -> dict[str, Any]:
    """A stored demographic or location map as ``shapes.pascal_fields`` gives it; the renaming
    runs in C (``map`` over the keys), the None filter only when there is a None."""
    values: dict[str, Any] = _loads(text) or {}
    if None in values.values():
        return pascal_fields(values)
    return dict(zip(map(_NESTED.get, values, values), values.values(), strict=True))


def pinpoint_line(row: Row, application_id: str) -> bytes:
    """One line of a Pinpoint endpoint export straight from a stored row: the same fields, in
    the same order, as ``shapes.to_pinpoint`` of its record, without the record."""
    out: dict[str, Any] = {"Id": row[_ID]}
    for position, name in _SCALARS:
        if row[position] is not None:
            out[name] = row[position]
    out["Attributes"] = _map(row[_ATTRIBUTES])
    out["Demographic"] = _pascal(row[_DEMOGRAPHIC])
    out["Location"] = _pascal(row[_LOCATION])
    out["Metrics"] = _map(row[_METRICS])
    user: dict[str, Any] = {"UserAttributes": _map(row[_USER_ATTRIBUTES])}
    if row[_USER] is not None:
        user["UserId"] = row[_USER]
    out["User"] = user
    out["ApplicationId"] = application_id
    out["CreationDate"] = iso_time(row[_CREATED])
    return orjson.dumps(out)


def endpoint_records(
    conn: Connection, project_id: int, application_id: str, matches: Matches | None
) -> Iterator[bytes]:
    """One Pinpoint endpoint definition per record."""
    if matches is None and reports.lines_in_sql(conn):
        # Every endpoint, no filter: the database builds the lines (no Python per record).
        for lines in reports.endpoint_lines(conn, project_id, application_id):
            yield from lines
        return
    for page in _selected(conn, project_id, matches):
        yield from [pinpoint_line(row, application_id) for row, _record in page]


def user_records(conn: Connection, project_id: int, matches: Matches | None) -> Iterator[bytes]:
    """One row per user of the selected endpoints: their endpoint ids, user attributes merged
    over their endpoints (the most recently updated endpoint wins a clash), and their kept
    events: first and last event time and count. Users come from endpoints (``user_id``); events
    of a uid no endpoint names are not a user here."""
    users: dict[str, list[Record]] = {}
    for record in _endpoints(conn, project_id, matches):
        if record.get("user_id"):
            users.setdefault(record["user_id"], []).append(record)
    stats = {
        uid: (first, last, count)
        for uid, first, last, count in reports.user_event_stats(conn, project_id)
        if uid in users
    }
    for user_id in sorted(users):
        owned = sorted(users[user_id], key=lambda r: (r.get("updated_at") or 0, r["endpoint_id"]))
        merged: dict[str, Any] = {}
        for record in owned:
            merged.update(record.get("user_attributes") or {})
        first, last, count = stats.get(user_id, (None, None, 0))
        yield orjson.dumps(
            {
                "user_id": user_id,
                "endpoints": sorted(r["endpoint_id"] for r in owned),
                "user_attributes": merged,
                "first_event_at": iso_time(first),
                "last_event_at": iso_time(last),
                "event_count": count,
            }
        )


def event_count_records(
    conn: Connection, project_id: int, start_ms: int, end_ms: int
) -> Iterator[bytes]:
    """Events and distinct users per UTC day and event name, for event times in the range."""
    for day, name, count, users in reports.daily_event_counts(conn, project_id, start_ms, end_ms):
        date = dt.datetime.fromtimestamp(day * 86_400, tz=dt.UTC).strftime("%Y-%m-%d")
        yield orjson.dumps({"day": date, "event_name": name, "events": count, "users": users})
