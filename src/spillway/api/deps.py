"""Shared request dependencies: the service context and authentication."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from spillway.ingest import Limits
from spillway.secrets import SecretBox
from spillway.services.projects import Principal, Scope, authenticate, require
from spillway.settings import Settings
from spillway.store.writer import GroupWriter


@dataclass(frozen=True, slots=True)
class Context:
    """What every request handler may need, built once per app."""

    settings: Settings
    engine: Engine
    box: SecretBox
    limits: Limits
    writer: GroupWriter
    # Set by `serve` when a worker runs in this process: wakes it for work queued by the API.
    waker: list[Callable[[], None]] = field(default_factory=list)

    def wake(self) -> None:
        """Tell an in-process worker there is work now (no-op without one)."""
        for wake in self.waker:
            wake()


async def get_context(request: Request) -> Context:
    """The app's context (async: a sync dependency would cost a thread hop per request)."""
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]


async def _principal(request: Request, context: ContextDep) -> Principal:
    # The guard middleware authenticated the key before the body was read and left the
    # principal in the request state; look it up here only when it did not run.
    found = getattr(request.state, "principal", None)
    if isinstance(found, Principal):
        return found
    return await run_in_threadpool(
        authenticate, context.engine, request.headers.get("authorization")
    )


def _needs(scope: Scope) -> object:
    async def dependency(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        require(principal, scope)
        return principal

    return Depends(dependency)


# What a route needs, by capability (services.projects.GRANTS says which scopes have it).
IngestKey = Annotated[Principal, _needs(Scope.INGEST)]
ReadKey = Annotated[Principal, _needs(Scope.READ)]
WriteKey = Annotated[Principal, _needs(Scope.WRITE)]
AdminKey = Annotated[Principal, _needs(Scope.ADMIN)]
