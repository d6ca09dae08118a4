"""Destinations: connect, validate, update, rotate credentials, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from spillway.api import schemas, views
from spillway.api.deps import ContextDep, ReadKey, WriteKey
from spillway.api.docs import documented
from spillway.api.models import DestinationIn, DestinationPatch
from spillway.api.responses import JSON
from spillway.model import Actor
from spillway.services import destinations as destination_service
from spillway.services.projects import Principal
from spillway.store import catalog

router = APIRouter(prefix="/api/v1/destinations", tags=["destinations"])


def _actor(principal: Principal) -> Actor:
    return Actor(f"key:{principal.key_id}", principal.project_id)


def _checks(checks: list[Any]) -> list[dict[str, str]]:
    return [check.as_dict() for check in checks]


@router.post("/validate", response_class=JSON, responses=documented(schemas.Checks, 409, 422, 429))
async def validate_new(body: DestinationIn, context: ContextDep, principal: WriteKey) -> JSON:
    """Run the checks without storing anything (the form's "Validate" button)."""
    checks = await run_in_threadpool(
        destination_service.check,
        context.engine,
        principal.project_id,
        body.kind,
        body.config,
        body.credentials,
        body.features,
    )
    ok = all(c.status.value != "failed" for c in checks)
    return JSON({"ok": ok, "checks": _checks(checks)})


@router.post(
    "",
    status_code=201,
    response_class=JSON,
    responses=documented(schemas.Destination, 409, 422, 429, status=201),
)
async def create(body: DestinationIn, context: ContextDep, principal: WriteKey) -> JSON:
    """Validate, then store. With ``force`` the checks are skipped."""
    row, checks = await run_in_threadpool(
        destination_service.create,
        context.engine,
        context.box,
        _actor(principal),
        body.model_dump(),
    )
    return JSON({**views.destination(row), "checks": _checks(checks)}, 201)


@router.get("", response_class=JSON, responses=documented(schemas.DestinationList))
def list_all(context: ContextDep, principal: ReadKey) -> dict[str, Any]:
    """Every destination of the project."""
    with context.engine.connect() as conn:
        rows = catalog.list_destinations(conn, principal.project_id)
    return {"destinations": [views.destination(row) for row in rows]}


@router.get(
    "/{destination_id}", response_class=JSON, responses=documented(schemas.Destination, 404)
)
def get_one(destination_id: str, context: ContextDep, principal: ReadKey) -> dict[str, Any]:
    """One destination, credentials masked."""
    return views.destination(
        destination_service.get(context.engine, principal.project_id, destination_id)
    )


@router.patch(
    "/{destination_id}",
    response_class=JSON,
    responses=documented(schemas.Destination, 404, 409, 422, 429),
)
async def update(
    destination_id: str, body: DestinationPatch, context: ContextDep, principal: WriteKey
) -> JSON:
    """Change bucket, folder, region, endpoint or encryption; re-validates before saving."""
    row, checks = await run_in_threadpool(
        destination_service.update,
        context.engine,
        context.box,
        _actor(principal),
        destination_id,
        body.model_dump(exclude_none=True),
    )
    return JSON({**views.destination(row), "checks": _checks(checks)})


@router.post(
    "/{destination_id}/validate",
    response_class=JSON,
    responses=documented(schemas.Checks, 404, 409, 429),
)
async def validate_stored(destination_id: str, context: ContextDep, principal: WriteKey) -> JSON:
    """Re-run the checks of a stored destination (e.g. after fixing a policy)."""
    checks = await run_in_threadpool(
        destination_service.validate_stored,
        context.engine,
        context.box,
        _actor(principal),
        destination_id,
    )
    ok = all(c.status.value != "failed" for c in checks)
    return JSON({"ok": ok, "checks": _checks(checks)})


@router.put(
    "/{destination_id}/credentials",
    response_class=JSON,
    responses=documented(schemas.Destination, 404, 409, 422, 429),
)
async def rotate(
    destination_id: str, body: dict[str, Any], context: ContextDep, principal: WriteKey
) -> JSON:
    """Replace the credentials once the new ones pass validation (write scope)."""
    row, checks = await run_in_threadpool(
        destination_service.rotate,
        context.engine,
        context.box,
        _actor(principal),
        destination_id,
        body,
    )
    return JSON({**views.destination(row), "checks": _checks(checks)})


@router.delete(
    "/{destination_id}", response_class=JSON, responses=documented(schemas.DestinationDeleted, 404)
)
def delete(destination_id: str, context: ContextDep, principal: WriteKey) -> dict[str, Any]:
    """Delete; every export using it is disabled, and listed here."""
    _, disabled = destination_service.delete(context.engine, _actor(principal), destination_id)
    return {
        "deleted": True,
        "id": destination_id,
        "disabled_exports": views.disabled_exports(disabled),
    }
