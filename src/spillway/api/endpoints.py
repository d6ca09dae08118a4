"""Endpoint profiles: ``PUT|GET|DELETE /api/v1/endpoints/{id}`` and batch ``PUT``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from spillway.api import schemas, views
from spillway.api.deps import ContextDep, IngestKey, ReadKey, WriteKey
from spillway.api.docs import documented
from spillway.api.models import EndpointBatch, EndpointIn
from spillway.api.responses import JSON
from spillway.errors import InputError, NotFound, TooLarge
from spillway.services import profiles as domain
from spillway.store import endpoints as endpoint_store

router = APIRouter(prefix="/api/v1/endpoints", tags=["endpoints"])


@router.put("/{endpoint_id:path}", response_class=JSON, responses=documented(schemas.Endpoint, 422))
async def put_endpoint(
    endpoint_id: str, body: EndpointIn, context: ContextDep, principal: IngestKey
) -> dict[str, Any]:
    """Create or update one endpoint; attribute maps merge with what is stored."""
    records = await run_in_threadpool(
        domain.upsert, context.engine, principal.project_id, [(domain.check_id(endpoint_id), body)]
    )
    return views.endpoint(records[0])


@router.put("", response_class=JSON, responses=documented(schemas.EndpointList, 422))
async def put_endpoints(
    body: EndpointBatch, context: ContextDep, principal: IngestKey
) -> dict[str, Any]:
    """Create or update up to 100 endpoints at once; each must carry its ``endpoint_id``."""
    limit = context.settings.max_endpoint_bytes
    items = []
    for index, item in enumerate(body.endpoints):
        if not item.endpoint_id:
            raise InputError(f"endpoints[{index}] has no endpoint_id")
        # The whole batch was held to SPILLWAY_MAX_REQUEST_BYTES before it was read; each
        # document is held to the limit of a single PUT, measured as compact JSON.
        size = len(orjson.dumps(item.model_dump(mode="json", exclude_unset=True)))
        if size > limit:
            raise TooLarge(
                f"endpoints[{index}] is {size:,} bytes as JSON; one endpoint may be at most "
                f"{limit:,} bytes (SPILLWAY_MAX_ENDPOINT_BYTES)"
            )
        items.append((item.endpoint_id, item))
    records = await run_in_threadpool(domain.upsert, context.engine, principal.project_id, items)
    return {"endpoints": [views.endpoint(r) for r in records]}


@router.get("/{endpoint_id:path}", response_class=JSON, responses=documented(schemas.Endpoint, 404))
def get_endpoint(endpoint_id: str, context: ContextDep, principal: ReadKey) -> dict[str, Any]:
    """One endpoint."""
    with context.engine.connect() as conn:
        record = endpoint_store.get_endpoint(
            conn, principal.project_id, domain.check_id(endpoint_id)
        )
    if record is None:
        raise NotFound(f"no endpoint {endpoint_id!r} in this project")
    return views.endpoint(record)


@router.get("", response_class=JSON, responses=documented(schemas.EndpointList))
def list_endpoints(
    context: ContextDep,
    principal: ReadKey,
    user_id: str | None = None,
    after: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Endpoints in id order; page with ``after`` = the last id of the previous page."""
    with context.engine.connect() as conn:
        records = endpoint_store.list_endpoints(
            conn, principal.project_id, user_id=user_id, limit=limit, after=after
        )
    return {"endpoints": [views.endpoint(r) for r in records]}


@router.delete(
    "/{endpoint_id:path}", response_class=JSON, responses=documented(schemas.EndpointDeleted, 404)
)
def delete_endpoint(endpoint_id: str, context: ContextDep, principal: WriteKey) -> dict[str, Any]:
    """Remove one endpoint."""
    with context.engine.connect().execution_options(write=True) as conn, conn.begin():
        record = endpoint_store.get_endpoint(
            conn, principal.project_id, domain.check_id(endpoint_id)
        )
        if record is None:
            raise NotFound(f"no endpoint {endpoint_id!r} in this project")
        endpoint_store.delete_endpoint(conn, principal.project_id, endpoint_id)
    return {"deleted": True, "endpoint": views.endpoint(record)}
