"""Endpoints: UpdateEndpoint, UpdateEndpointsBatch, GetEndpoint, DeleteEndpoint,
GetUserEndpoints, DeleteUserEndpoints — over the native endpoint profiles.

Pinpoint's PascalCase endpoint is translated with the mapping export and import jobs use
(``engine/jobs/shapes.py``), then upserted by ``services/profiles`` with the native merge rules
(scalars replace, maps merge key by key). Scopes are the native API's: upserts need ``ingest``,
reads ``read``, deletes ``write``. Ids arrive percent-encoded, ``/`` included, so the routes take
the rest of the path.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from spillway.api.deps import Context, ContextDep
from spillway.api.models import MAX_BATCH, EndpointIn
from spillway.api.pinpoint.auth import AppIngest, AppRead, AppWrite
from spillway.api.responses import JSON
from spillway.engine.jobs.shapes import from_pinpoint, to_pinpoint
from spillway.errors import Invalid, Malformed, NotFound, TooLarge
from spillway.model import Endpoint, Project
from spillway.services import profiles
from spillway.store import endpoints as endpoint_store

router = APIRouter()

# Endpoints of one user read per query when listing them (a user has few; no cap on how many).
_PAGE = 1000


def endpoint_in(endpoint_id: str, item: Any, where: str) -> EndpointIn:
    """A Pinpoint EndpointRequest (or PublicEndpoint) as a native upsert, or Invalid saying
    what is wrong; ``where`` names the item in the message."""
    if not isinstance(item, Mapping):
        raise Invalid(where, "an endpoint must be a JSON object")
    try:
        # The id is the path's (or the batch item's): any Id in the body is the same one.
        _, fields = from_pinpoint({**item, "Id": endpoint_id})
        return EndpointIn.model_validate(fields)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise Invalid(where, _reason(exc)) from None


def _reason(exc: ValueError) -> str:
    """A validation error in Pinpoint's field names where they differ from the native ones."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        location = ".".join(_pinpoint_name(part) for part in error["loc"])
        parts.append(f"{location}: {error['msg']}" if location else str(error["msg"]))
    return "; ".join(parts)


_NAMES = {
    "user_id": "User.UserId",
    "user_attributes": "User.UserAttributes",
    "channel_type": "ChannelType",
    "address": "Address",
    "endpoint_status": "EndpointStatus",
    "opt_out": "OptOut",
    "attributes": "Attributes",
    "demographic": "Demographic",
    "location": "Location",
    "metrics": "Metrics",
    "effective_date": "EffectiveDate",
}


def _pinpoint_name(part: str | int) -> str:
    if isinstance(part, int):
        return str(part)
    return _NAMES.get(part, "".join(word.capitalize() for word in part.split("_")))


def cohort(endpoint_id: str) -> str:
    """Pinpoint's CohortId, "0" to "99": a stable hash of the endpoint id (for A/B splits)."""
    digest = hashlib.sha256(endpoint_id.encode("utf-8", "surrogatepass")).digest()
    return str(int.from_bytes(digest[:8], "big") % 100)


def shown(record: Endpoint, project: Project) -> dict[str, Any]:
    """EndpointResponse of a stored endpoint."""
    out = to_pinpoint(record, project.app_id)
    out["CohortId"] = cohort(out["Id"])
    return out


def accepted() -> dict[str, str]:
    """MessageBody of an accepted write."""
    return {"Message": "Accepted", "RequestID": str(uuid.uuid4())}


@router.put("/apps/{app}/endpoints/{endpoint_id:path}", status_code=202, response_class=JSON)
async def update_endpoint(
    endpoint_id: str,
    body: Annotated[dict[str, Any], Body()],
    context: ContextDep,
    found: AppIngest,
) -> JSON:
    """UpdateEndpoint: create or update one endpoint (maps merge with what is stored)."""
    project, _principal = found
    item = endpoint_in(profiles.check_id(endpoint_id), body, "EndpointRequest")
    await run_in_threadpool(profiles.upsert, context.engine, project.id, [(endpoint_id, item)])
    return JSON(accepted(), 202)


@router.put("/apps/{app}/endpoints", status_code=202, response_class=JSON)
async def update_endpoints_batch(
    body: Annotated[dict[str, Any], Body()], context: ContextDep, found: AppIngest
) -> JSON:
    """UpdateEndpointsBatch: up to 100 endpoints, each with its Id, stored together or not at
    all (one invalid item refuses the batch, saying which)."""
    project, _principal = found
    items = body.get("Item")
    if not isinstance(items, list) or not items:
        raise Invalid("Item", "send a list of 1 to 100 endpoints, each with its Id")
    if len(items) > MAX_BATCH:
        raise Invalid("Item", f"{len(items)} endpoints; one batch holds at most {MAX_BATCH}")
    upserts = [_batch_item(context, index, item) for index, item in enumerate(items)]
    await run_in_threadpool(profiles.upsert, context.engine, project.id, upserts)
    return JSON(accepted(), 202)


def _batch_item(context: Context, index: int, item: Any) -> tuple[str, EndpointIn]:
    where = f"Item[{index}]"
    if not isinstance(item, Mapping):
        raise Invalid(where, "an endpoint must be a JSON object")
    endpoint_id = item.get("Id")
    if not isinstance(endpoint_id, str) or not endpoint_id:
        raise Invalid(f"{where}.Id", "every endpoint of a batch needs its Id (a string)")
    # The batch was held to SPILLWAY_MAX_REQUEST_BYTES; each endpoint to the limit of one.
    size = len(orjson.dumps(item))
    limit = context.settings.max_endpoint_bytes
    if size > limit:
        raise TooLarge(
            f"{where} is {size:,} bytes as JSON; one endpoint may be at most {limit:,} bytes "
            "(SPILLWAY_MAX_ENDPOINT_BYTES)"
        )
    return profiles.check_id(endpoint_id), endpoint_in(endpoint_id, item, where)


@router.get("/apps/{app}/endpoints/{endpoint_id:path}", response_class=JSON)
def get_endpoint(endpoint_id: str, context: ContextDep, found: AppRead) -> dict[str, Any]:
    """GetEndpoint."""
    project, _principal = found
    with context.engine.connect() as conn:
        record = endpoint_store.get_endpoint(conn, project.id, profiles.check_id(endpoint_id))
    if record is None:
        raise NotFound(f"Endpoint {endpoint_id} not found in application {project.app_id}")
    return shown(record, project)


@router.delete("/apps/{app}/endpoints/{endpoint_id:path}", status_code=202, response_class=JSON)
def delete_endpoint(endpoint_id: str, context: ContextDep, found: AppWrite) -> JSON:
    """DeleteEndpoint: answers with the endpoint as it was."""
    project, _principal = found
    profiles.check_id(endpoint_id)
    with context.engine.connect().execution_options(write=True) as conn, conn.begin():
        record = endpoint_store.get_endpoint(conn, project.id, endpoint_id)
        if record is None:
            raise NotFound(f"Endpoint {endpoint_id} not found in application {project.app_id}")
        endpoint_store.delete_endpoint(conn, project.id, endpoint_id)
    return JSON(shown(record, project), 202)


def _user_id(user_id: str) -> str:
    if not 0 < len(user_id) <= 256 or "\x00" in user_id:
        raise Malformed("a user id is 1 to 256 characters, without NUL")
    return user_id


def _user_endpoints(context: Context, project: Project, user_id: str) -> list[dict[str, Any]]:
    """Every endpoint of a user as EndpointResponse, or NotFound when there is none."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    with context.engine.connect() as conn:
        while True:
            page = endpoint_store.list_endpoints(
                conn, project.id, user_id=_user_id(user_id), limit=_PAGE, after=after
            )
            found.extend(shown(record, project) for record in page)
            if len(page) < _PAGE:
                break
            after = found[-1]["Id"]
    if not found:
        raise NotFound(f"User {user_id} has no endpoints in application {project.app_id}")
    return found


@router.get("/apps/{app}/users/{user_id:path}", response_class=JSON)
def get_user_endpoints(user_id: str, context: ContextDep, found: AppRead) -> dict[str, Any]:
    """GetUserEndpoints: EndpointsResponse (404 when the user has no endpoint)."""
    project, _principal = found
    return {"Item": _user_endpoints(context, project, user_id)}


@router.delete("/apps/{app}/users/{user_id:path}", status_code=202, response_class=JSON)
def delete_user_endpoints(user_id: str, context: ContextDep, found: AppWrite) -> JSON:
    """DeleteUserEndpoints: every endpoint of a user; answers with what was deleted."""
    project, _principal = found
    items = _user_endpoints(context, project, user_id)
    with context.engine.connect().execution_options(write=True) as conn, conn.begin():
        for item in items:
            endpoint_store.delete_endpoint(conn, project.id, item["Id"])
    return JSON({"Item": items}, 202)
