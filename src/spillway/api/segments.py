"""Segments: ``POST|GET /api/v1/segments``, ``GET|PATCH|DELETE /api/v1/segments/{id}``.

The request models here are also what an export job's inline ``filter`` is checked with
(:class:`FilterIn`), so a filter means the same thing wherever it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spillway import filters, text
from spillway.api import schemas
from spillway.api.deps import ContextDep, ReadKey, WriteKey
from spillway.api.docs import documented, error_answers
from spillway.api.models import ChannelType, Demographic, Location
from spillway.api.responses import JSON
from spillway.model import Actor, Segment
from spillway.services import segments as service
from spillway.services.projects import Principal

router = APIRouter(prefix="/api/v1/segments", tags=["segments"])

MAX_VALUES = 1000
Values = Annotated[list[str], Field(min_length=1, max_length=MAX_VALUES)]
ValueMap = Annotated[dict[str, Values], Field(min_length=1)]
# Demographic and location fields a filter can compare: the text ones an endpoint may hold
# (latitude and longitude are numbers: equality on them selects nothing useful).
DEMOGRAPHIC_FIELDS = tuple(Demographic.model_fields)
LOCATION_FIELDS = tuple(
    name for name in Location.model_fields if name not in ("latitude", "longitude")
)
ISO_HINT = "must be an ISO 8601 date or date-time, such as 2026-01-31 or 2026-01-31T12:00:00Z"


def _known_fields(allowed: tuple[str, ...]) -> Any:
    def check(value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for name in value or {}:
            if name not in allowed:
                raise ValueError(f"unknown field {name!r}; one of: {', '.join(allowed)}")
        return value

    return check


class FilterIn(BaseModel):
    """An endpoint filter as a client sends it; every field optional, each a list of values."""

    model_config = ConfigDict(extra="forbid")
    endpoint_ids: Values | None = None
    user_ids: Values | None = None
    channel_type: Annotated[list[ChannelType], Field(min_length=1)] | None = None
    endpoint_status: Annotated[list[Literal["ACTIVE", "INACTIVE"]], Field(min_length=1)] | None = (
        None
    )
    opt_out: Annotated[list[Literal["ALL", "NONE"]], Field(min_length=1)] | None = None
    attributes: ValueMap | None = None
    user_attributes: ValueMap | None = None
    demographic: ValueMap | None = None
    location: ValueMap | None = None
    effective_after: str | None = None
    effective_before: str | None = None

    _text = model_validator(mode="before")(text.checked)
    _demographic = field_validator("demographic")(_known_fields(DEMOGRAPHIC_FIELDS))
    _location = field_validator("location")(_known_fields(LOCATION_FIELDS))

    @field_validator("effective_after", "effective_before")
    @classmethod
    def _iso_8601(cls, value: str | None) -> str | None:
        if value is not None and filters.parse_instant(value) is None:
            raise ValueError(f"{value!r} {ISO_HINT}")
        return value

    @model_validator(mode="after")
    def _range(self) -> Self:
        after, before = self.effective_after, self.effective_before
        if after is not None and before is not None:
            start, end = filters.parse_instant(after), filters.parse_instant(before)
            if start is not None and end is not None and end <= start:
                raise ValueError("effective_before must be later than effective_after")
        return self

    def to_filter(self) -> filters.EndpointFilter:
        """The typed filter the service keeps."""

        def values(items: Sequence[str] | None) -> tuple[str, ...] | None:
            return None if items is None else filters.as_lists(items)

        def value_map(items: dict[str, list[str]] | None) -> dict[str, tuple[str, ...]] | None:
            if items is None:
                return None
            return {name: filters.as_lists(v) for name, v in items.items()}

        return filters.EndpointFilter(
            endpoint_ids=values(self.endpoint_ids),
            user_ids=values(self.user_ids),
            channel_type=values(self.channel_type),
            endpoint_status=values(self.endpoint_status),
            opt_out=values(self.opt_out),
            attributes=value_map(self.attributes),
            user_attributes=value_map(self.user_attributes),
            demographic=value_map(self.demographic),
            location=value_map(self.location),
            effective_after=_instant(self.effective_after),
            effective_before=_instant(self.effective_before),
        )


def _instant(value: str | None) -> datetime | None:
    return None if value is None else filters.parse_instant(value)


class SegmentIn(BaseModel):
    """``POST /api/v1/segments``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=service.NAME_LENGTH)
    filter: FilterIn = Field(default_factory=FilterIn)


class SegmentPatch(BaseModel):
    """``PATCH /api/v1/segments/{id}``: a new name, a new filter (replacing the old), or both."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=service.NAME_LENGTH)
    filter: FilterIn | None = None


def _actor(principal: Principal) -> Actor:
    return Actor(f"key:{principal.key_id}", principal.project_id)


def public(segment: Segment, size: int | None = None) -> dict[str, Any]:
    """A segment as the API shows it."""
    shown: dict[str, Any] = {
        "id": segment.id,
        "name": segment.name,
        "filter": segment.filter.to_json(),
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }
    if size is not None:
        shown["size"] = size
    return shown


@router.post(
    "",
    status_code=201,
    response_class=JSON,
    responses=documented(schemas.Segment, 409, 422, status=201),
)
def create(body: SegmentIn, context: ContextDep, principal: WriteKey) -> JSON:
    """Save a filter under a name (unique among the project's segments)."""
    segment = service.create(context.engine, _actor(principal), body.name, body.filter.to_filter())
    return JSON(public(segment), 201)


@router.get("", response_class=JSON, responses=documented(schemas.SegmentList))
def list_all(context: ContextDep, principal: ReadKey) -> dict[str, Any]:
    """The project's segments, oldest first."""
    segments = service.list_all(context.engine, principal.project_id)
    return {"segments": [public(segment) for segment in segments]}


@router.get("/{segment_id}", response_class=JSON, responses=documented(schemas.Segment, 404))
def get_one(
    segment_id: str, context: ContextDep, principal: ReadKey, count: bool = False
) -> dict[str, Any]:
    """One segment; with ``count=true``, its ``size``: how many endpoints it selects now."""
    segment = service.get(context.engine, principal.project_id, segment_id)
    size = service.size(context.engine, principal.project_id, segment.filter) if count else None
    return public(segment, size)


@router.patch(
    "/{segment_id}", response_class=JSON, responses=documented(schemas.Segment, 404, 409, 422)
)
def update(
    segment_id: str, body: SegmentPatch, context: ContextDep, principal: WriteKey
) -> dict[str, Any]:
    """Rename a segment and/or replace its filter."""
    segment = service.update(
        context.engine,
        _actor(principal),
        segment_id,
        name=body.name,
        endpoint_filter=None if body.filter is None else body.filter.to_filter(),
    )
    return public(segment)


@router.delete("/{segment_id}", status_code=204, responses=error_answers(404))
def delete(segment_id: str, context: ContextDep, principal: WriteKey) -> Response:
    """Remove a segment; its name is free again."""
    service.delete(context.engine, _actor(principal), segment_id)
    return Response(status_code=204)
