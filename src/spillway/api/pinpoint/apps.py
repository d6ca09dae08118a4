"""Apps: CreateApp, GetApps, GetApp, DeleteApp. An app is a Spillway project."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from spillway.api.deps import ContextDep
from spillway.api.pinpoint.auth import AppRead, Caller, app_of
from spillway.api.pinpoint.shapes import application
from spillway.api.responses import JSON
from spillway.errors import Forbidden, Invalid
from spillway.services import projects as project_service
from spillway.services.projects import Principal, Scope
from spillway.store.projects import list_projects

router = APIRouter()


def _region(request: Request) -> str:
    found = request.scope.get("state", {}).get("pinpoint")
    return found[0].region if found else "us-east-1"


def _operator(principal: Principal, operation: str) -> None:
    if not principal.operator:
        raise Forbidden(
            f"{operation} is an account-level call: it needs an operator key "
            "(spillway admin create-operator-key); a project's key acts on its own app"
        )


class CreateApplicationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Name: str = Field(min_length=1, max_length=200)
    tags: dict[str, str] | None = None


@router.post("/apps", status_code=201, response_class=JSON)
async def create_app(
    body: CreateApplicationRequest, request: Request, context: ContextDep, principal: Caller
) -> JSON:
    """CreateApp: a new project (operator key)."""
    _operator(principal, "CreateApp")
    project = await run_in_threadpool(
        project_service.create_project, context.engine, body.Name, tags=body.tags
    )
    return JSON(application(project, _region(request)), 201)


@router.get("/apps", response_class=JSON)
def get_apps(
    request: Request,
    context: ContextDep,
    principal: Caller,
    page_size: Annotated[str | None, Query(alias="page-size")] = None,
    token: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """GetApps: every app for an operator key, a project key's own app otherwise."""
    size = 100
    if page_size is not None:
        if not page_size.isdigit() or not 1 <= int(page_size) <= 1000:
            raise Invalid("page-size", "must be a number from 1 to 1000")
        size = int(page_size)
    with context.engine.connect() as conn:
        found = list_projects(conn)
    if not principal.operator:
        app_ids = [p.app_id for p in found if p.id == principal.project_id]
        found = [p for p in found if p.app_id in app_ids]
    found.sort(key=lambda p: p.app_id)
    if token:
        found = [p for p in found if p.app_id > token]
    page = found[:size]
    region = _region(request)
    answer: dict[str, Any] = {"Item": [application(p, region) for p in page]}
    if len(found) > size:
        answer["NextToken"] = page[-1].app_id
    return answer


@router.get("/apps/{app}", response_class=JSON)
def get_app(request: Request, found: AppRead) -> dict[str, Any]:
    """GetApp."""
    project, _principal = found
    return application(project, _region(request))


@router.delete("/apps/{app}", response_class=JSON)
async def delete_app(
    app: str, request: Request, context: ContextDep, principal: Caller
) -> dict[str, Any]:
    """DeleteApp: the project and everything it holds (operator key)."""
    _operator(principal, "DeleteApp")
    project = app_of(context, principal, app, Scope.OPERATOR)
    await run_in_threadpool(
        project_service.delete_project, context.engine, f"key:{principal.key_id}", project.id
    )
    return application(project, _region(request))
