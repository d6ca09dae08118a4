"""PutEvents: Pinpoint's batch of endpoints and their events, stored as Spillway events.

Each ``BatchItem`` endpoint is upserted with the native merge rules; each of its events becomes
one native event, judged by the ingest path (``ingest.judge``) and stored by the group writer as
``POST /api/v1/events`` stores them. Every endpoint and event gets its own ``StatusCode`` in the
answer: 202 stored (or already stored), 400 invalid with what is wrong, while the rest are kept.

How a Pinpoint event is kept (what the ``pinpoint`` stream record format reads back):

- ``event_name`` = ``EventType``; ``event_time`` = ``Timestamp``; ``uid`` = the endpoint's
  ``User.UserId``, else the endpoint id; ``event_source`` = ``PINPOINT``;
- ``event_attributes`` = ``Attributes`` (strings) and ``Metrics`` (numbers) in one map;
- ``user_attributes`` = the endpoint's ``User.UserAttributes`` (after the upsert);
- ``device_attributes`` = ``device_id`` (the endpoint id), the endpoint's ``Demographic`` in
  snake_case (``platform``, ``make``, ``model``, ``locale``…), ``application`` and ``session``
  in the shape of Pinpoint's event stream (``package_name``, ``title``, ``version_code``,
  ``sdk {name, version}``; ``session_id``, ``start_timestamp``, ``stop_timestamp`` in epoch ms,
  ``duration``), and ``endpoint``: the endpoint as Pinpoint shows it, without its user
  attributes (kept above) and app fields.

The stored ``event_uuid`` is a UUID 5 of (app id, endpoint id, event id): a retried PutEvents
names the same events, which the store's unique index keeps once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from spillway import metrics
from spillway.api.deps import Context, ContextDep
from spillway.api.models import EndpointIn
from spillway.api.pinpoint.auth import AppIngest
from spillway.api.pinpoint.endpoints import endpoint_in
from spillway.api.responses import JSON
from spillway.engine.jobs.shapes import NESTED_NAMES, to_pinpoint
from spillway.errors import InputError, Invalid, TransientError
from spillway.ingest import Judged, judge
from spillway.model import Project
from spillway.services import profiles
from spillway.store.db import now_ms

router = APIRouter()

# The namespace of stored event uuids (any fixed UUID would do; this one is derived, not typed).
EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://spillway.invalid/pinpoint/events")
SOURCE = "PINPOINT"
_ACCEPTED = {"Message": "Accepted", "StatusCode": 202}
_PASCAL_TO_SNAKE = {pascal: snake for snake, pascal in NESTED_NAMES.items()}
# Event fields kept under device_attributes["application"] (Pinpoint's stream names).
_APPLICATION = {
    "AppPackageName": "package_name",
    "AppTitle": "title",
    "AppVersionCode": "version_code",
}
_SDK = {"SdkName": "name", "ClientSdkVersion": "version"}
# The native field names in the ingest path's reasons, as a Pinpoint caller knows them.
_NATIVE_NAMES = [
    (re.compile(r"\bevent_name\b"), "EventType"),
    (re.compile(r"\bevent_time\b"), "Timestamp"),
    (re.compile(r"\buid\b"), "User.UserId"),
    (re.compile(r"\bevent_attributes\b"), "Attributes and Metrics"),
    (re.compile(r"\buser_attributes\b"), "User.UserAttributes"),
    (re.compile(r"\bdevice_attributes\b"), "the endpoint, session and app fields"),
]


def event_uuid(app_id: str, endpoint_id: str, event_id: str) -> str:
    """The stored uuid of a Pinpoint event: the same ids always give the same uuid."""
    name = orjson.dumps([app_id, endpoint_id, event_id]).decode()
    return str(uuid.uuid5(EVENT_NAMESPACE, name))


@dataclass
class _Batch:
    """A PutEvents request on its way to the store."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: list[dict[str, Any]] = field(default_factory=list)  # native events to judge
    slots: list[tuple[str, str]] = field(default_factory=list)  # (endpoint id, event id) of raw
    received: int = 0
    judged: Judged | None = None


@router.post("/apps/{app}/events", status_code=202, response_class=JSON)
async def put_events(
    body: Annotated[dict[str, Any], Body()], context: ContextDep, found: AppIngest
) -> JSON:
    """PutEvents."""
    project, _principal = found
    items = body.get("BatchItem")
    if not isinstance(items, Mapping):
        raise Invalid("BatchItem", "send a map of endpoint id to {Endpoint, Events}")
    batch = await run_in_threadpool(_prepare, context, project, items)
    existing: set[str] = set()
    if batch.judged is not None and batch.judged.rows:
        future = context.writer.submit(project.id, batch.received, batch.judged.rows)
        try:
            existing = await asyncio.wrap_future(future)
        except SQLAlchemyError as exc:
            raise TransientError(
                f"the database could not store the events ({exc.__class__.__name__}); the "
                "endpoints were updated, no event was stored: send the request again"
            ) from exc
    _settle(batch, existing)
    return JSON({"Results": batch.results}, 202)


def _prepare(context: Context, project: Project, items: Mapping[str, Any]) -> _Batch:
    """Upsert the batch's endpoints and judge its events (database and CPU work, off the loop)."""
    batch = _Batch()
    upserts: list[tuple[str, EndpointIn]] = []
    events: dict[str, Mapping[str, Any]] = {}
    for endpoint_id, item in items.items():
        try:
            update = _endpoint(endpoint_id, item)
            events[endpoint_id] = _events_of(item)
            upserts.append((endpoint_id, update))
        except InputError as exc:
            _refuse_endpoint(batch, endpoint_id, item, str(exc))
    records = profiles.upsert(context.engine, project.id, upserts) if upserts else []
    batch.received = now_ms()
    for (endpoint_id, _item), record in zip(upserts, records, strict=True):
        batch.results[endpoint_id] = {"EndpointItemResponse": dict(_ACCEPTED)}
        shown = to_pinpoint(record, project.app_id)
        for event_id, event in events[endpoint_id].items():
            try:
                native = _native(project.app_id, endpoint_id, event_id, event, shown)
            except ValueError as exc:
                _event_result(batch, endpoint_id, event_id, 400, str(exc))
                continue
            batch.raw.append(native)
            batch.slots.append((endpoint_id, event_id))
    if batch.raw:
        batch.judged = judge(batch.raw, batch.received, context.limits)
    return batch


def _endpoint(endpoint_id: str, item: Any) -> EndpointIn:
    if not isinstance(item, Mapping):
        raise Invalid(None, "a BatchItem entry must be an object with Endpoint and Events")
    profiles.check_id(endpoint_id)
    return endpoint_in(endpoint_id, item.get("Endpoint") or {}, "Endpoint")


def _events_of(item: Mapping[str, Any]) -> Mapping[str, Any]:
    events = item.get("Events")
    if events is None:
        return {}
    if not isinstance(events, Mapping):
        raise Invalid("Events", "send a map of event id to event")
    return events


def _refuse_endpoint(batch: _Batch, endpoint_id: str, item: Any, message: str) -> None:
    """An endpoint that cannot be stored: 400 in its slot, and its events are not stored."""
    batch.results[endpoint_id] = {"EndpointItemResponse": {"Message": message, "StatusCode": 400}}
    events = item.get("Events") if isinstance(item, Mapping) else None
    if isinstance(events, Mapping):
        for event_id in events:
            _event_result(
                batch,
                endpoint_id,
                event_id,
                400,
                f"not stored: endpoint {endpoint_id!r} is invalid ({message})",
            )


def _event_result(
    batch: _Batch, endpoint_id: str, event_id: str, status: int, message: str
) -> None:
    slot = batch.results[endpoint_id].setdefault("EventsItemResponse", {})
    slot[event_id] = {"Message": message, "StatusCode": status}


def _settle(batch: _Batch, existing: set[str]) -> None:
    """Each judged event's answer: 202 stored or already stored (a retry), 400 refused."""
    judged = batch.judged
    if judged is None:
        return
    refused = {item["index"]: item["reason"] for item in judged.rejected}
    for index, (endpoint_id, event_id) in enumerate(batch.slots):
        reason = refused.get(index)
        if reason is None:
            _event_result(batch, endpoint_id, event_id, 202, "Accepted")
        else:
            _event_result(batch, endpoint_id, event_id, 400, _pinpoint_reason(reason))
    metrics.EVENTS_ACCEPTED.inc(len(judged.rows) - len(existing))
    metrics.EVENTS_DUPLICATE.inc(len(existing) + len(judged.duplicates))
    if refused:
        metrics.EVENTS_REJECTED.inc(len(refused))


def _pinpoint_reason(reason: str) -> str:
    for pattern, name in _NATIVE_NAMES:
        reason = pattern.sub(name, reason)
    return reason


# --- one Pinpoint event as a native event ---------------------------------------------------


def _native(
    app_id: str, endpoint_id: str, event_id: str, event: Any, shown: Mapping[str, Any]
) -> dict[str, Any]:
    """The native event for a Pinpoint Event of an endpoint (``shown``: the stored endpoint in
    Pinpoint's shape), or ValueError saying what is wrong with it."""
    if not isinstance(event, Mapping):
        raise ValueError("an event must be a JSON object")
    event_type = event.get("EventType")
    if not isinstance(event_type, str) or not event_type:
        raise ValueError("EventType is required (a non-empty string, e.g. _session.start)")
    timestamp = event.get("Timestamp")
    if not isinstance(timestamp, str):
        raise ValueError("Timestamp is required: an ISO 8601 date, e.g. 2026-11-29T10:15:00.000Z")
    attributes = _attributes(event.get("Attributes"))
    numbers = _metrics(event.get("Metrics"))
    both = sorted(attributes.keys() & numbers.keys())
    if both:
        raise ValueError(
            f"Attributes and Metrics both name {', '.join(map(repr, both))}: Spillway keeps "
            "them in one map of event attributes; rename one"
        )
    user = shown.get("User") or {}
    device: dict[str, Any] = {"device_id": endpoint_id}
    for pascal, value in (shown.get("Demographic") or {}).items():
        device[_PASCAL_TO_SNAKE.get(pascal, pascal)] = value
    application = _application(event)
    if application:
        device["application"] = application
    session = _session(event.get("Session"))
    if session is not None:
        device["session"] = session
    device["endpoint"] = _endpoint_snapshot(shown)
    return {
        "event_uuid": event_uuid(app_id, endpoint_id, event_id),
        "event_name": event_type,
        "uid": user.get("UserId") or endpoint_id,
        "event_time": _seconds(timestamp, "Timestamp"),
        "event_source": SOURCE,
        "event_attributes": {**attributes, **numbers},
        "user_attributes": dict(user.get("UserAttributes") or {}),
        "device_attributes": device,
    }


def _seconds(value: str, name: str) -> float:
    """An ISO 8601 date as epoch seconds (no zone means UTC)."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{name} {value!r} is not an ISO 8601 date (e.g. 2026-11-29T10:15:00.000Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("Attributes must be a map of names to strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValueError(f"Attributes.{key} must be a string")
    return dict(value)


def _metrics(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("Metrics must be a map of names to numbers")
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise ValueError(f"Metrics.{key} must be a finite number")
    return dict(value)


def _application(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's app fields, named as Pinpoint's event stream names them."""
    out: dict[str, Any] = {}
    sdk: dict[str, str] = {}
    for names, into in ((_APPLICATION, out), (_SDK, sdk)):
        for pascal, snake in names.items():
            value = event.get(pascal)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"{pascal} must be a string")
            into[snake] = value
    if sdk:
        out["sdk"] = sdk
    return out


def _session(value: Any) -> dict[str, Any] | None:
    """Session {Id, StartTimestamp, StopTimestamp, Duration} in the event stream's names."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("Session must be an object with Id and StartTimestamp")
    session_id = value.get("Id")
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("Session.Id is required (a non-empty string)")
    out: dict[str, Any] = {"session_id": session_id}
    for pascal, snake, required in (
        ("StartTimestamp", "start_timestamp", True),
        ("StopTimestamp", "stop_timestamp", False),
    ):
        stamp = value.get(pascal)
        if stamp is None and not required:
            continue
        if not isinstance(stamp, str):
            raise ValueError(f"Session.{pascal} must be an ISO 8601 date")
        out[snake] = round(_seconds(stamp, f"Session.{pascal}") * 1000)
    duration = value.get("Duration")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int):
            raise ValueError("Session.Duration must be a whole number of milliseconds")
        out["duration"] = duration
    return out


def _endpoint_snapshot(shown: Mapping[str, Any]) -> dict[str, Any]:
    """The endpoint as the event saw it, minus what the event keeps elsewhere."""
    snapshot = {
        key: value
        for key, value in shown.items()
        if key not in ("ApplicationId", "CreationDate", "User")
    }
    user_id = (shown.get("User") or {}).get("UserId")
    if user_id is not None:
        snapshot["User"] = {"UserId": user_id}
    return snapshot
