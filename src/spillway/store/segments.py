"""Named queries for segments, and for the endpoints a segment's filter selects.

The endpoint queries take the filter's column conditions as plain ``column -> values``
(``services.segments.EndpointFilter.columns``): the store knows columns, not filters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.model import Endpoint, Segment
from spillway.store import endpoints as endpoint_store
from spillway.store.schema import endpoints, segments

# The endpoint columns a filter may compare in SQL; anything else is a programming error.
FILTER_COLUMNS = frozenset({"endpoint_id", "user_id", "channel_type", "endpoint_status", "opt_out"})


def _live(project_id: int) -> list[sa.ColumnElement[bool]]:
    return [segments.c.project_id == project_id, segments.c.deleted_at.is_(None)]


def get_segment(conn: Connection, project_id: int, segment_id: str) -> Segment | None:
    """A live segment of this project, or None (also for another project's id)."""
    row = conn.execute(
        sa.select(segments).where(segments.c.id == segment_id, *_live(project_id))
    ).first()
    return None if row is None else Segment.from_row(row)


def segment_by_name(conn: Connection, project_id: int, name: str) -> Segment | None:
    """The live segment of this project with this name, or None."""
    row = conn.execute(
        sa.select(segments).where(segments.c.name == name, *_live(project_id))
    ).first()
    return None if row is None else Segment.from_row(row)


def list_segments(conn: Connection, project_id: int) -> list[Segment]:
    """The project's live segments, oldest first."""
    rows = conn.execute(
        sa.select(segments).where(*_live(project_id)).order_by(segments.c.created_at, segments.c.id)
    )
    return [Segment.from_row(row) for row in rows]


def insert_segment(conn: Connection, values: Mapping[str, Any]) -> None:
    """Store a new segment."""
    conn.execute(segments.insert().values(**values))


def update_segment(conn: Connection, segment_id: str, values: Mapping[str, Any]) -> None:
    """Write a segment's name, filter and updated_at."""
    conn.execute(
        segments.update()
        .where(segments.c.id == segment_id)
        .values(name=values["name"], filter=values["filter"], updated_at=values["updated_at"])
    )


def delete_segment(conn: Connection, project_id: int, segment_id: str, at: int) -> bool:
    """Mark a live segment deleted; True when there was one."""
    result = conn.execute(
        segments.update()
        .where(segments.c.id == segment_id, *_live(project_id))
        .values(deleted_at=at, updated_at=at)
    )
    return result.rowcount > 0


def _endpoint_conditions(
    project_id: int, columns: Mapping[str, Sequence[str]]
) -> list[sa.ColumnElement[bool]]:
    unknown = set(columns) - FILTER_COLUMNS
    if unknown:
        raise ValueError(f"not filterable in SQL: {sorted(unknown)}")
    conditions = [endpoints.c.project_id == project_id]
    conditions += [endpoints.c[name].in_(list(values)) for name, values in columns.items()]
    return conditions


def endpoint_page(
    conn: Connection,
    project_id: int,
    columns: Mapping[str, Sequence[str]],
    *,
    after: str | None,
    limit: int,
) -> list[Endpoint]:
    """Up to ``limit`` endpoints whose columns hold one of the given values, in id order after
    ``after`` (keyset paging along the primary key)."""
    query = endpoint_store.select_endpoints().where(*_endpoint_conditions(project_id, columns))
    if after is not None:
        query = query.where(endpoints.c.endpoint_id > after)
    query = query.order_by(endpoints.c.endpoint_id).limit(limit)
    return [Endpoint.from_row(row) for row in conn.execute(query)]


def count_endpoints(conn: Connection, project_id: int, columns: Mapping[str, Sequence[str]]) -> int:
    """How many endpoints pass the column conditions."""
    query = (
        sa.select(sa.func.count())
        .select_from(endpoints)
        .where(*_endpoint_conditions(project_id, columns))
    )
    return int(conn.execute(query).scalar_one())
