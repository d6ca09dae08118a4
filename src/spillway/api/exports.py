"""Exports: create, read, change, delete, run now, backfill, their runs and dead letters."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from spillway.api import models, schemas, views
from spillway.api.deps import ContextDep, ReadKey, WriteKey
from spillway.api.docs import documented, error_answers
from spillway.api.responses import JSON
from spillway.errors import NotFound
from spillway.model import Actor
from spillway.services import exports as service
from spillway.services.projects import Principal
from spillway.store import catalog
from spillway.store import runs as run_store

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])


def _actor(principal: Principal) -> Actor:
    return Actor(f"key:{principal.key_id}", principal.project_id)


@router.post(
    "",
    status_code=201,
    response_class=JSON,
    responses=documented(schemas.Export, 404, 409, 422, status=201),
)
async def create(body: models.ExportIn, context: ContextDep, principal: WriteKey) -> JSON:
    """Create an export; the answer shows the exact path its files will get."""
    export = await run_in_threadpool(
        service.create,
        context.engine,
        _actor(principal),
        body,
        retention_days=context.settings.retention_days,
    )
    return JSON(views.export(context.engine, export), 201)


@router.get("", response_class=JSON, responses=documented(schemas.ExportList))
def list_all(context: ContextDep, principal: ReadKey) -> dict[str, Any]:
    """Every export of the project, each with its last run, last success and next run (read
    in one statement for all of them)."""
    with context.engine.connect() as conn:
        exports = catalog.list_exports(conn, principal.project_id)
    return {"exports": views.exports(context.engine, exports)}


@router.get("/{export_id}", response_class=JSON, responses=documented(schemas.Export, 404))
def get_one(export_id: str, context: ContextDep, principal: ReadKey) -> dict[str, Any]:
    """One export, with its status and, when failing, why."""
    export = service.get(context.engine, principal.project_id, export_id)
    return views.export(context.engine, export)


@router.patch(
    "/{export_id}", response_class=JSON, responses=documented(schemas.Export, 404, 409, 422)
)
def update(
    export_id: str, body: models.ExportPatch, context: ContextDep, principal: WriteKey
) -> dict[str, Any]:
    """Change settings or frequency (from the next window on), or disable/enable."""
    export = service.update(context.engine, _actor(principal), export_id, body)
    return views.export(context.engine, export)


@router.delete("/{export_id}", response_class=JSON, responses=documented(schemas.Deleted, 404))
def delete(export_id: str, context: ContextDep, principal: WriteKey) -> dict[str, Any]:
    """Remove an export."""
    service.delete(context.engine, _actor(principal), export_id)
    return {"deleted": True, "id": export_id}


@router.post(
    "/{export_id}/run",
    status_code=202,
    response_class=JSON,
    responses=documented(schemas.RunQueued, 404, 409, status=202),
)
def run_now(export_id: str, context: ContextDep, principal: WriteKey) -> JSON:
    """Deliver everything ingested so far, now (the worker picks it up at once)."""
    run_id = service.run_now(context.engine, _actor(principal), export_id)
    context.wake()
    return JSON({"run_id": run_id}, 202)


@router.post(
    "/{export_id}/backfill",
    status_code=202,
    response_class=JSON,
    responses=documented(schemas.BackfillQueued, 404, 409, 422, status=202),
)
def backfill(
    export_id: str, body: models.BackfillIn, context: ContextDep, principal: WriteKey
) -> JSON:
    """Export a past range (within retention) into its own path."""
    queued = service.backfill(
        context.engine, _actor(principal), export_id, body, context.settings.retention_days
    )
    context.wake()
    return JSON(queued.public(), 202)


@router.get("/{export_id}/runs", response_class=JSON, responses=documented(schemas.RunList, 404))
def runs(
    export_id: str,
    context: ContextDep,
    principal: ReadKey,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Run history, newest first (a deleted export's too)."""
    service.get_with_history(context.engine, principal.project_id, export_id)
    with context.engine.connect() as conn:
        found = run_store.list_runs(conn, export_id, limit)
    return {"runs": [views.run(run) for run in found]}


@router.get(
    "/{export_id}/runs/{run_id}", response_class=JSON, responses=documented(schemas.Run, 404)
)
def run(export_id: str, run_id: str, context: ContextDep, principal: ReadKey) -> dict[str, Any]:
    """One run (of a deleted export too)."""
    service.get_with_history(context.engine, principal.project_id, export_id)
    with context.engine.connect() as conn:
        found = run_store.get_run(conn, run_id)
    if found is None or found.export_id != export_id:
        raise NotFound(f"no run {run_id!r} of this export")
    return views.run(found)


@router.get(
    "/{export_id}/dead-letters", response_class=JSON, responses=documented(schemas.DeadLetters, 404)
)
def dead_letters(
    export_id: str,
    context: ContextDep,
    principal: ReadKey,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Records a stream could never accept (too large), with the reason, newest first."""
    from spillway.store import streams

    service.get(context.engine, principal.project_id, export_id)
    with context.engine.connect() as conn:
        letters = streams.list_dead_letters(conn, export_id, limit)
    return {
        "dead_letters": [
            {
                "seq": letter.seq,
                "event_uuid": letter.event_uuid,
                "bytes": letter.bytes,
                "reason": letter.reason,
                "created_at": letter.created_at,
            }
            for letter in letters
        ]
    }


@router.get("/{export_id}/ddl", response_class=JSON, responses=error_answers(404, 409, 422))
def ddl(
    export_id: str,
    context: ContextDep,
    principal: ReadKey,
    engine: Literal["athena", "duckdb", "bigquery"] = Query(
        default="duckdb", description="The query engine the statement is for."
    ),
) -> dict[str, Any]:
    """The CREATE EXTERNAL TABLE (Athena, BigQuery) or CREATE VIEW (DuckDB) statement that
    reads the export's files, with the columns its format writes and its layout's partitions."""
    found = service.ddl(context.engine, principal.project_id, export_id, engine)
    return views.ddl(export_id, found)
