"""The shapes of the API's successful answers, for the OpenAPI document only.

The routes build their answers as dicts (``api/views.py``); these models describe them in
``/openapi.json`` and ``/docs`` (``responses=answer(Model)``) and are never used to validate
or filter an answer, so documenting a shape cannot change one. Each allows fields it does not
name: an answer may carry more (an export's settings, for one), never fewer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- Ingest --------------------------------------------------------------------------------


class Event(BaseModel):
    """One event of ``POST /api/v1/events`` (the route reads the body itself: each event is
    judged alone, so this model only documents it)."""

    model_config = ConfigDict(extra="forbid")
    event_name: str = Field(max_length=256, description="What happened.")
    uid: str = Field(max_length=256, description="The user id.")
    event_type: str | None = Field(default=None, description="Default `USER_ACTION_EVENT`.")
    event_code: str | None = Field(default=None, description="Default: `event_name`.")
    event_time: int | str | None = Field(
        default=None,
        description="Epoch seconds or ISO 8601 (no zone means UTC); default: time received.",
    )
    event_uuid: str | None = Field(
        default=None, description="A UUID; generated when absent. A stored one is a duplicate."
    )
    event_source: str | None = Field(default=None, description="Default `API`.")
    event_attributes: dict[str, Any] | None = None
    user_attributes: dict[str, Any] | None = None
    device_attributes: dict[str, Any] | None = None
    email_id: str | None = None


def ingest_body() -> dict[str, Any]:
    """``openapi_extra`` for ``POST /api/v1/events``: the body forms it takes."""
    event = Event.model_json_schema()
    batch = {"type": "array", "items": event, "minItems": 1}
    wrapped = {
        "type": "object",
        "properties": {"events": batch},
        "required": ["events"],
        "additionalProperties": False,
    }
    return {
        "requestBody": {
            "required": True,
            "description": 'A JSON array of events, `{"events": [...]}` or one event; or NDJSON '
            "(one event per line). `Content-Encoding: gzip` is accepted.",
            "content": {
                "application/json": {"schema": {"anyOf": [batch, wrapped, event]}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    }


class IngestResult(_Shape):
    """What happened to a batch: counts, and each rejected or duplicate event by index."""

    received: int = Field(description="Events in the body.")
    accepted: int = Field(description="Events stored now.")
    duplicate: int = Field(description="Events whose `event_uuid` was stored before.")
    rejected: list[dict[str, Any]] = Field(description="Each refused event: index and reason.")
    duplicates: list[dict[str, Any]] = Field(description="Each duplicate: index and uuid.")


# --- Destinations --------------------------------------------------------------------------


class Check(_Shape):
    """One validation step against the destination."""

    name: str
    status: str = Field(description="`passed`, `failed` or `skipped`.")
    message: str


class Checks(_Shape):
    """The checks that ran, and whether none failed."""

    ok: bool
    checks: list[Check]


class Destination(_Shape):
    """A destination; credentials appear masked, never a secret."""

    id: str
    name: str
    kind: str
    config: dict[str, Any]
    credentials: dict[str, Any] | None = None
    features: dict[str, Any] | None = None
    status: str
    status_reason: str | None = None
    credentials_version: int | None = None
    last_validation: dict[str, Any] | None = None
    created_at: int
    updated_at: int
    checks: list[Check] | None = Field(
        default=None, description="After a create, change or rotation: the checks that ran."
    )


class DestinationList(_Shape):
    destinations: list[Destination]


class DestinationDeleted(_Shape):
    deleted: bool
    id: str
    disabled_exports: list[dict[str, str]] = Field(
        description="The exports that used it, now disabled."
    )


# --- Exports -------------------------------------------------------------------------------


class Run(_Shape):
    """One delivery run of an export."""

    id: str
    kind: str
    status: str
    events: int | None = None
    error: str | None = None
    created_at: int | None = None


class Export(_Shape):
    """An export: its settings, status and where its files go."""

    id: str
    name: str
    destination_id: str
    frequency: str
    status: str
    status_reason: str | None = None
    last_run: dict[str, Any] | None = None
    last_success_at: int | None = None
    next_run_at: int | None = None
    cursor_seq: int | None = None
    created_at: int
    updated_at: int


class ExportList(_Shape):
    exports: list[Export]


class Deleted(_Shape):
    deleted: bool
    id: str


class RunQueued(_Shape):
    run_id: str


class BackfillQueued(_Shape):
    run_id: str
    start: int
    end: int
    prefix: str = Field(description="Where the backfill's files go.")


class RunList(_Shape):
    runs: list[Run]


class DeadLetter(_Shape):
    seq: int
    event_uuid: str | None = None
    bytes: int
    reason: str
    created_at: int


class DeadLetters(_Shape):
    dead_letters: list[DeadLetter]


# --- Endpoints, segments, jobs -------------------------------------------------------------


class Endpoint(_Shape):
    """An endpoint profile (Pinpoint's fields)."""

    endpoint_id: str
    user_id: str | None = None
    channel_type: str | None = None
    address: str | None = None
    endpoint_status: str
    opt_out: str
    attributes: dict[str, Any]
    user_attributes: dict[str, Any]
    demographic: dict[str, Any]
    location: dict[str, Any]
    metrics: dict[str, Any]
    effective_date: str | None = None
    created_at: int
    updated_at: int


class EndpointList(_Shape):
    endpoints: list[Endpoint]


class EndpointDeleted(_Shape):
    deleted: bool
    endpoint: Endpoint


class Segment(_Shape):
    id: str
    name: str
    filter: dict[str, Any]
    created_at: int
    updated_at: int
    size: int | None = Field(default=None, description="With `count=true`: endpoints it selects.")


class SegmentList(_Shape):
    segments: list[Segment]


class Job(_Shape):
    """An export or import job and its progress."""

    id: str
    type: str
    status: str
    definition: dict[str, Any]
    total_pieces: int | None = None
    completed_pieces: int | None = None
    failed_pieces: int | None = None
    created_at: int
    keys: list[str] | None = Field(default=None, description="Keys written (or read) so far.")


class JobList(_Shape):
    jobs: list[Job]
    next: str | None = Field(description="The `after` for the next page; null on the last.")


class Health(_Shape):
    status: str
    version: str | None = None
