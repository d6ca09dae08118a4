"""Segments: saved endpoint filters of a project (the filter itself is ``spillway.filters``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway import text
from spillway.errors import Conflict, Invalid, NotFound
from spillway.filters import EndpointFilter
from spillway.model import Actor, Endpoint, Segment
from spillway.store import segments as segment_store
from spillway.store.db import now_ms, unique_violation, write
from spillway.store.schema import segments as segments_table

NAME_LENGTH = 200
PAGE_SIZE = 1000


def _checked_name(name: str) -> str:
    name = name.strip()
    if not 0 < len(name) <= NAME_LENGTH:
        raise Invalid("name", f"must be 1 to {NAME_LENGTH} characters")
    reason = text.problem(name)
    if reason is not None:
        raise Invalid("name", reason)
    return name


def _taken(name: str) -> Conflict:
    return Conflict(f"a segment named {name!r} already exists in this project")


def _index() -> sa.Index:
    return next(i for i in segments_table.indexes if i.name == "uq_segments_project_id_name")


def create(engine: Engine, actor: Actor, name: str, endpoint_filter: EndpointFilter) -> Segment:
    """Save a filter under a name that no live segment of the project has."""
    name = _checked_name(name)
    now = now_ms()
    segment = Segment(uuid.uuid4().hex, actor.project_id, name, endpoint_filter, now, now)
    try:
        with write(engine) as conn:
            if segment_store.segment_by_name(conn, actor.project_id, name) is not None:
                raise _taken(name)
            segment_store.insert_segment(conn, _values(segment))
    except sa.exc.IntegrityError as exc:  # a racing create took the name after the check
        if unique_violation(exc, _index()):
            raise _taken(name) from exc
        raise
    return segment


def _values(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "project_id": segment.project_id,
        "name": segment.name,
        "filter": segment.filter.to_json(),
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
        "deleted_at": segment.deleted_at,
    }


def get(engine: Engine, project_id: int, segment_id: str) -> Segment:
    """A live segment of the project; another project's id is not found, as if it did not exist."""
    with engine.connect() as conn:
        row = segment_store.get_segment(conn, project_id, segment_id)
    if row is None:
        raise NotFound(f"no segment {segment_id!r} in this project")
    return row


def list_all(engine: Engine, project_id: int) -> list[Segment]:
    """The project's live segments, oldest first."""
    with engine.connect() as conn:
        return [row for row in segment_store.list_segments(conn, project_id)]


def update(
    engine: Engine,
    actor: Actor,
    segment_id: str,
    *,
    name: str | None = None,
    endpoint_filter: EndpointFilter | None = None,
) -> Segment:
    """Rename a segment and/or replace its filter (a new filter replaces the old one whole)."""
    if name is None and endpoint_filter is None:
        raise Invalid(None, "nothing to change: send name and/or filter")
    checked = None if name is None else _checked_name(name)
    try:
        with write(engine) as conn:
            row = segment_store.get_segment(conn, actor.project_id, segment_id)
            if row is None:
                raise NotFound(f"no segment {segment_id!r} in this project")
            segment = row
            renamed = checked is not None and checked != segment.name
            if (
                renamed
                and segment_store.segment_by_name(conn, actor.project_id, str(checked)) is not None
            ):
                raise _taken(str(checked))
            segment = replace(
                segment,
                name=checked or segment.name,
                filter=segment.filter if endpoint_filter is None else endpoint_filter,
                updated_at=now_ms(),
            )
            segment_store.update_segment(conn, segment.id, _values(segment))
    except sa.exc.IntegrityError as exc:
        if checked is not None and unique_violation(exc, _index()):
            raise _taken(checked) from exc
        raise
    return segment


def delete(engine: Engine, actor: Actor, segment_id: str) -> None:
    """Mark a segment deleted; its name is free again."""
    with write(engine) as conn:
        if not segment_store.delete_segment(conn, actor.project_id, segment_id, now_ms()):
            raise NotFound(f"no segment {segment_id!r} in this project")


def matching(
    engine: Engine,
    project_id: int,
    endpoint_filter: EndpointFilter,
    *,
    after: str | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[list[Endpoint]]:
    """The project's selected endpoints in id order, a page at a time (each page in its own
    short read, so memory stays bounded). A page may be empty when the JSON conditions drop
    every row the SQL conditions let through; paging goes on from the last row *read*."""
    columns = endpoint_filter.columns()
    while True:
        with engine.connect() as conn:
            rows = segment_store.endpoint_page(
                conn, project_id, columns, after=after, limit=page_size
            )
        if not rows:
            return
        yield [row for row in rows if endpoint_filter.matches(row)]
        if len(rows) < page_size:
            return
        after = rows[-1].endpoint_id


def size(engine: Engine, project_id: int, endpoint_filter: EndpointFilter) -> int:
    """How many of the project's endpoints the filter selects now."""
    if not endpoint_filter.needs_python:
        with engine.connect() as conn:
            return segment_store.count_endpoints(conn, project_id, endpoint_filter.columns())
    return sum(len(page) for page in matching(engine, project_id, endpoint_filter))
