"""Segments: saved endpoint filters of a project, and the filter itself.

The filter lives here, beside the service, because every front door (API, CLI, export and
import jobs) selects endpoints through it. The store stays ignorant of it: the filter hands the
store plain "column IN values" conditions (:meth:`EndpointFilter.columns`) to pre-filter a page
in SQL, and checks the JSON parts (attributes, demographic, location, effective date) here in
Python, so the same code runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway import text
from spillway.errors import Conflict, Invalid, NotFound
from spillway.model import Actor
from spillway.store import segments as segment_store
from spillway.store.db import now_ms, unique_violation, write
from spillway.store.schema import segments as segments_table

NAME_LENGTH = 200
PAGE_SIZE = 1000
# Columns the store can compare directly; the order is the order of the SQL conditions.
COLUMN_FIELDS = ("user_ids", "channel_type", "endpoint_status", "opt_out")
_COLUMN_OF = {"user_ids": "user_id"}
MAP_FIELDS = ("attributes", "user_attributes", "demographic", "location")

Values = tuple[str, ...]
ValueMap = Mapping[str, Values]


def parse_instant(value: str) -> datetime | None:
    """An ISO 8601 date or date-time as an aware datetime (no zone: UTC), or None if unreadable."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class EndpointFilter:
    """Which endpoints a segment selects. Every field is optional; the fields set must all hold
    (AND), and each holds when the endpoint has any of its values (OR). An empty filter selects
    every endpoint of the project."""

    user_ids: Values | None = None
    channel_type: Values | None = None
    endpoint_status: Values | None = None
    opt_out: Values | None = None
    # name -> values: the endpoint's list under that name holds at least one of the values.
    attributes: ValueMap | None = None
    user_attributes: ValueMap | None = None
    # field -> values: the endpoint's value of that field is one of the values.
    demographic: ValueMap | None = None
    location: ValueMap | None = None
    # Half-open range of the endpoint's effective date: after <= date < before.
    effective_after: datetime | None = None
    effective_before: datetime | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> EndpointFilter:
        """A filter as stored (the output of :meth:`to_json`, already validated)."""
        value = value or {}
        known: dict[str, Any] = {}
        for name in COLUMN_FIELDS:
            if value.get(name) is not None:
                known[name] = tuple(value[name])
        for name in MAP_FIELDS:
            if value.get(name) is not None:
                known[name] = {key: tuple(items) for key, items in value[name].items()}
        for name in ("effective_after", "effective_before"):
            if value.get(name) is not None:
                known[name] = parse_instant(value[name])
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        """The fields that are set, as JSON (lists, ISO 8601 UTC)."""
        out: dict[str, Any] = {}
        for name in COLUMN_FIELDS:
            values = getattr(self, name)
            if values is not None:
                out[name] = list(values)
        for name in MAP_FIELDS:
            mapping = getattr(self, name)
            if mapping is not None:
                out[name] = {key: list(items) for key, items in mapping.items()}
        for name in ("effective_after", "effective_before"):
            instant = getattr(self, name)
            if instant is not None:
                out[name] = _iso(instant)
        return out

    def columns(self) -> dict[str, Values]:
        """``column -> accepted values`` the store can check in SQL (an index-friendly IN)."""
        return {
            _COLUMN_OF.get(name, name): getattr(self, name)
            for name in COLUMN_FIELDS
            if getattr(self, name) is not None
        }

    @property
    def needs_python(self) -> bool:
        """Whether some condition reads the JSON columns (the store cannot count alone)."""
        return any(getattr(self, name) is not None for name in MAP_FIELDS) or (
            self.effective_after is not None or self.effective_before is not None
        )

    def matches(self, endpoint: Mapping[str, Any]) -> bool:
        """Whether a stored endpoint record (a row mapping) is selected."""
        for name, values in self.columns().items():
            if endpoint.get(name) not in values:
                return False
        for name in ("attributes", "user_attributes"):
            wanted: ValueMap | None = getattr(self, name)
            if wanted is not None and not _lists_match(endpoint.get(name) or {}, wanted):
                return False
        for name in ("demographic", "location"):
            wanted = getattr(self, name)
            if wanted is not None and not _fields_match(endpoint.get(name) or {}, wanted):
                return False
        return self._effective_matches(endpoint.get("effective_date"))

    def _effective_matches(self, stored: Any) -> bool:
        if self.effective_after is None and self.effective_before is None:
            return True
        # An endpoint without a readable effective date is outside every date range.
        instant = parse_instant(stored) if isinstance(stored, str) else None
        if instant is None:
            return False
        if self.effective_after is not None and instant < self.effective_after:
            return False
        return self.effective_before is None or instant < self.effective_before


def _lists_match(stored: Mapping[str, Any], wanted: ValueMap) -> bool:
    for name, values in wanted.items():
        have = stored.get(name)
        items = [have] if isinstance(have, str) else (have or [])
        if not any(item in values for item in items):
            return False
    return True


def _fields_match(stored: Mapping[str, Any], wanted: ValueMap) -> bool:
    return all(stored.get(name) in values for name, values in wanted.items())


@dataclass(frozen=True, slots=True)
class Segment:
    """A saved filter of a project."""

    id: str
    project_id: int
    name: str
    filter: EndpointFilter = field(default_factory=EndpointFilter)
    created_at: int = 0  # epoch ms
    updated_at: int = 0
    deleted_at: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Segment:
        return cls(
            id=row["id"],
            project_id=int(row["project_id"]),
            name=row["name"],
            filter=EndpointFilter.from_json(row["filter"]),
            created_at=int(row["created_at"]),
            updated_at=int(row["updated_at"]),
            deleted_at=row.get("deleted_at"),
        )


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
    return Segment.from_row(row)


def list_all(engine: Engine, project_id: int) -> list[Segment]:
    """The project's live segments, oldest first."""
    with engine.connect() as conn:
        return [Segment.from_row(row) for row in segment_store.list_segments(conn, project_id)]


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
            segment = Segment.from_row(row)
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
) -> Iterator[list[dict[str, Any]]]:
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
        after = rows[-1]["endpoint_id"]


def size(engine: Engine, project_id: int, endpoint_filter: EndpointFilter) -> int:
    """How many of the project's endpoints the filter selects now."""
    if not endpoint_filter.needs_python:
        with engine.connect() as conn:
            return segment_store.count_endpoints(conn, project_id, endpoint_filter.columns())
    return sum(len(page) for page in matching(engine, project_id, endpoint_filter))


def as_lists(values: Sequence[str]) -> Values:
    """A request's list of values as the filter keeps it (order kept, duplicates dropped)."""
    return tuple(dict.fromkeys(values))
