"""Who calls a Pinpoint-compatible route, and on which app.

The guard (``api/guard.py``) has already parsed the SigV4 ``Authorization`` header, found the
key and its secret, and held the body to the route's limit before reading it; here the body is
read and the signature verified over the request as received. An app is a project: a project's
keys act on their own app only (another app is "not found", never "forbidden", so ids cannot be
probed); an operator key acts on every app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from spillway.api.deps import ContextDep
from spillway.api.pinpoint import sigv4
from spillway.errors import Forbidden, NotFound
from spillway.model import Actor, Project
from spillway.services.projects import Principal, Scope
from spillway.store.projects import project_by_app_id


async def _caller(request: Request) -> Principal:
    state = request.scope.get("state", {})
    found: tuple[sigv4.Signed, Principal, str] | None = state.get("pinpoint")
    if found is None:  # the guard did not run (it always does in `serve`): refuse
        raise Forbidden("Missing Authentication Token")
    signed, principal, secret = found
    body = await request.body()
    headers: dict[str, list[str]] = {}
    for name, value in request.scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    sigv4.verify(
        method=request.method,
        host=request.headers.get("host", ""),
        raw_path=request.scope.get("raw_path") or request.scope["path"].encode(),
        query_string=request.scope.get("query_string", b""),
        headers=headers,
        body=body,
        signed=signed,
        secret=secret,
    )
    return principal


Caller = Annotated[Principal, Depends(_caller)]


def allowed(principal: Principal, needed: Scope) -> None:
    """Forbidden unless the key's scope grants ``needed`` (an operator key grants all)."""
    if not principal.scope.allows(needed):
        raise Forbidden(
            f"integration key {principal.key_id} has scope '{principal.scope}'; this call "
            f"needs '{needed}'"
        )


def app_of(context: Any, principal: Principal, app_id: str, needed: Scope) -> Project:
    """The project an app id names, if this caller may act on it with ``needed``."""
    with context.engine.connect() as conn:
        project = project_by_app_id(conn, app_id)
    if project is None or (not principal.operator and project.id != principal.project_id):
        raise NotFound(f"Application {app_id} not found")
    allowed(principal, needed)
    return project


def actor(principal: Principal, project: Project) -> Actor:
    """Who acts, for the audit log."""
    return Actor(f"key:{principal.key_id}", project.id)


def app_dependency(needed: Scope) -> Callable[..., Any]:
    """A route dependency: the app of the path's ``app`` for a caller with ``needed``."""

    async def dependency(
        app: str, context: ContextDep, principal: Caller
    ) -> tuple[Project, Principal]:
        return app_of(context, principal, app, needed), principal

    return dependency


AppRead = Annotated[tuple[Project, Principal], Depends(app_dependency(Scope.READ))]
AppIngest = Annotated[tuple[Project, Principal], Depends(app_dependency(Scope.INGEST))]
AppWrite = Annotated[tuple[Project, Principal], Depends(app_dependency(Scope.WRITE))]
