"""The event stream: PutEventStream, GetEventStream, DeleteEventStream.

An app's event stream is one Kinesis or Firehose destination and one stream export with the
``pinpoint`` record format, both named ``pinpoint-event-stream``. The role is assumed with the
project's External ID through the operator's STS; the ARN carries no endpoint, so the stream's
calls go where botocore's AWS_ENDPOINT_URL_KINESIS / _FIREHOSE (or AWS's own) send them.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from spillway.api.deps import ContextDep
from spillway.api.models import ExportIn
from spillway.api.pinpoint.auth import AppRead, AppWrite, actor
from spillway.api.pinpoint.shapes import event_stream
from spillway.api.responses import JSON
from spillway.destinations.base import all_passed
from spillway.errors import Invalid, NotFound
from spillway.model import Actor, Destination, Export
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.store import catalog
from spillway.store.projects import last_actor

router = APIRouter()

# The name of the destination and of the export that make an app's event stream.
EVENT_STREAM = "pinpoint-event-stream"

# ARN service → (resource type, destination kind, the kind's config field for the stream).
_KINDS = {
    "kinesis": ("stream", "kinesis", "stream"),
    "firehose": ("deliverystream", "firehose", "delivery_stream"),
}
_ARN = re.compile(
    r"^arn:aws[a-z-]*:(?P<service>kinesis|firehose):(?P<region>[a-z0-9-]+):\d{12}:"
    r"(?P<resource>[a-z]+)/(?P<name>[^/]+)$"
)


class WriteEventStream(BaseModel):
    model_config = ConfigDict(extra="ignore")
    DestinationStreamArn: str = Field(min_length=1, max_length=2048)
    RoleArn: str = Field(min_length=1, max_length=2048)


def _target(arn: str) -> tuple[str, str]:
    """The destination kind and config field for a stream ARN, or 400 saying what fits."""
    found = _ARN.match(arn)
    if found is None or _KINDS[found["service"]][0] != found["resource"]:
        raise Invalid(
            "DestinationStreamArn",
            f"{arn!r} is neither a Kinesis stream ARN "
            "(arn:aws:kinesis:<region>:<account-id>:stream/<name>) nor a Firehose delivery "
            "stream ARN (arn:aws:firehose:<region>:<account-id>:deliverystream/<name>)",
        )
    _resource, kind, field = _KINDS[found["service"]]
    return kind, field


def _current(engine: Engine, project_id: int) -> tuple[Destination, Export | None] | None:
    """The app's event stream destination and its export, if it has one."""
    with engine.connect() as conn:
        destination = catalog.destination_by_name(conn, project_id, EVENT_STREAM)
        if destination is None:
            return None
        using = catalog.exports_using(conn, destination.id)
    return destination, next((e for e in using if e.name == EVENT_STREAM), None)


def _shown(engine: Engine, app_id: str, destination: Destination) -> dict[str, Any]:
    kind_field = _KINDS[destination.kind][2] if destination.kind in _KINDS else "stream"
    with engine.connect() as conn:
        by = last_actor(conn, destination.project_id, destination.id)
    return event_stream(
        app_id,
        str(destination.config.get(kind_field, "")),
        str(destination.credentials_public.get("role_arn", "")),
        destination.updated_at,
        by,
    )


def _unchanged(found: tuple[Destination, Export | None] | None, arn: str, role: str) -> bool:
    """Whether the stored stream already is this one, delivering (a repeated put keeps it, and
    its place in the stream, untouched)."""
    if found is None or found[1] is None or found[1].status != "active":
        return False
    destination = found[0]
    kind, field = _target(arn)
    return (
        destination.kind == kind
        and destination.config.get(field) == arn
        and destination.credentials_public.get("role_arn") == role
    )


def _remove(engine: Engine, who: Actor, found: tuple[Destination, Export | None]) -> None:
    destination, export = found
    if export is not None:
        export_service.delete(engine, who, export.id)
    destination_service.delete(engine, who, destination.id)


def put(engine: Engine, box: SecretBox, who: Actor, arn: str, role: str) -> Destination:
    """Make the app's event stream deliver to ``arn`` as ``role``, replacing the one it had.

    The new stream is checked (role assumed with the External ID, stream found and active)
    before the old one goes, so a put that fails leaves the old stream delivering. A different
    stream starts with events received from now on.
    """
    kind, field = _target(arn)
    config = {field: arn}
    credentials = {"mode": "role", "role_arn": role}
    found = _current(engine, who.project_id)
    if _unchanged(found, arn, role):
        assert found is not None
        return found[0]
    checks = destination_service.check(engine, who.project_id, kind, config, credentials)
    if not all_passed(checks):
        failed = "; ".join(f"{c.name}: {c.message}" for c in checks if c.status.value == "failed")
        raise Invalid(None, f"the event stream was not changed: {failed}")
    if found is not None:
        _remove(engine, who, found)
    destination, _checks = destination_service.create(
        engine,
        box,
        who,
        {
            "name": EVENT_STREAM,
            "kind": kind,
            "config": config,
            "credentials": credentials,
            "force": True,  # checked just above
        },
    )
    export_service.create(
        engine,
        who,
        ExportIn(
            name=EVENT_STREAM,
            destination_id=destination.id,
            frequency="stream",
            record_format="pinpoint",
        ),
    )
    return destination


@router.post("/apps/{app}/eventstream", response_class=JSON)
async def put_event_stream(body: WriteEventStream, context: ContextDep, found: AppWrite) -> JSON:
    """PutEventStream."""
    project, principal = found
    destination = await run_in_threadpool(
        put,
        context.engine,
        context.box,
        actor(principal, project),
        body.DestinationStreamArn,
        body.RoleArn,
    )
    context.wake()
    return JSON(_shown(context.engine, project.app_id, destination))


def _stream_of(engine: Engine, project_id: int, app_id: str) -> tuple[Destination, Export | None]:
    found = _current(engine, project_id)
    if found is None:
        raise NotFound(f"Application {app_id} has no event stream")
    return found


@router.get("/apps/{app}/eventstream", response_class=JSON)
def get_event_stream(context: ContextDep, found: AppRead) -> dict[str, Any]:
    """GetEventStream: 404 NotFoundException when the app has none."""
    project, _principal = found
    destination, _export = _stream_of(context.engine, project.id, project.app_id)
    return _shown(context.engine, project.app_id, destination)


@router.delete("/apps/{app}/eventstream", response_class=JSON)
def delete_event_stream(context: ContextDep, found: AppWrite) -> dict[str, Any]:
    """DeleteEventStream: answers the stream as it was."""
    project, principal = found
    current = _stream_of(context.engine, project.id, project.app_id)
    shown = _shown(context.engine, project.app_id, current[0])
    _remove(context.engine, actor(principal, project), current)
    return shown
