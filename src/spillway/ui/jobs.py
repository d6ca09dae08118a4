"""Jobs: start an export job (endpoints, users or event counts) or an import job, watch its
progress until it ends, list past jobs, cancel one.

Every change goes through ``services.jobs`` as the API's does; a job is shown with
``api.jobs.public``, so the page and ``GET /api/v1/jobs/...`` say the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from spillway import destinations as registry
from spillway.api import views
from spillway.api.jobs import public
from spillway.errors import Forbidden, InputError, NotFound
from spillway.model import Destination, Job
from spillway.services import jobs as service
from spillway.services import segments
from spillway.store import catalog
from spillway.ui import render, session
from spillway.ui.data_sync import location
from spillway.ui.guard import posted, ui_page, viewer_of
from spillway.ui.kinds import Field
from spillway.ui.render import FormState
from spillway.ui.session import Viewer

router = APIRouter(prefix="/jobs", include_in_schema=False)

TYPES = ("export", "import")
DONE = {
    "started": "Job started. This page follows its progress until it ends.",
    "cancelled": "Job cancelled: it stops at its next piece; pieces already written stay.",
}
WHAT = Field(
    "what",
    "What to export",
    widget="select",
    options=(
        ("endpoints", "Endpoints (every field of each endpoint)"),
        ("users", "Users (one line per user id, with their endpoints)"),
        ("event_counts", "Event counts (per event name and day, last 30 days)"),
    ),
    default="endpoints",
)
FOLDER = Field(
    "folder",
    "Folder (optional)",
    help="A folder under the destination's own, e.g. jobs. The files go to <destination "
    "folder>/<this folder>/<job id>/, one file a piece (endpoints-00001.csv.gz, …).",
    placeholder="jobs",
)
PREFIX = Field(
    "prefix",
    "Files to read (prefix)",
    help="Under the destination's folder: every file whose key starts with this is read, e.g. "
    "imports/ or imports/endpoints-. Leave empty to read the whole folder.",
    placeholder="imports/",
)
EXPORT_FORMAT = Field(
    "format",
    "File format",
    widget="select",
    options=(("jsonl", "JSON Lines"), ("csv", "CSV")),
    default="jsonl",
)
IMPORT_FORMAT = Field(
    "format",
    "File format",
    widget="select",
    options=(("json", "JSON (Pinpoint's endpoint export, one per line)"), ("csv", "CSV")),
    default="json",
)
COMPRESSION = Field(
    "compression",
    "Compression",
    widget="select",
    options=(("gzip", "gzip (.gz)"), ("none", "None")),
    default="gzip",
)


def _engine(request: Request) -> Any:
    return session.context_of(request).engine


def _type(job_type: str) -> str:
    if job_type not in TYPES:
        raise NotFound(f"no job type {job_type!r}: export or import")
    return job_type


def shown(job: Job, pieces: list[Any] | None = None) -> dict[str, Any]:
    """A job as the API shows it, with what the page adds: progress in percent, a title."""
    out = public(job, pieces)
    total, done = job.total_pieces, job.completed_pieces + job.failed_pieces
    out["percent"] = round(done / total * 100) if total else (100 if job.ended else 0)
    out["ended"] = job.ended
    out["title"] = (
        f"Export of {job.what.replace('_', ' ')}" if job.type == "export" else "Import of endpoints"
    )
    return out


def _object_stores(request: Request, viewer: Viewer) -> list[dict[str, str]]:
    """Destinations a job can write to or read from (object stores, not streams)."""
    with _engine(request).connect() as conn:
        rows: list[Destination] = catalog.list_destinations(conn, viewer.principal.project_id)
    return [
        {"id": d.id, "label": f"{d.name} — {location(views.destination(d))}"}
        for d in rows
        if not registry.capabilities(d.kind).stream
    ]


@router.get("")
@ui_page
async def overview(request: Request, done: str = "") -> Response:
    """Past and running jobs of both types, newest first."""
    viewer = await viewer_of(request)
    engine = _engine(request)

    def load() -> list[dict[str, Any]]:
        found = [
            job
            for job_type in TYPES
            for job in service.list_jobs(engine, viewer.principal.project_id, job_type, 50)
        ]
        return [shown(j) for j in sorted(found, key=lambda j: j.created_at, reverse=True)]

    jobs = await run_in_threadpool(load)
    return render.page(request, "jobs.html", viewer, jobs=jobs, done=DONE.get(done))


def _new_page(
    request: Request, viewer: Viewer, job_type: str, state: FormState, *, status: int = 200
) -> Response:
    destinations = _object_stores(request, viewer)
    seg = (
        [(s.id, s.name) for s in segments.list_all(_engine(request), viewer.principal.project_id)]
        if job_type == "export"
        else []
    )
    return render.page(
        request,
        "job_new.html",
        viewer,
        status=status,
        job_type=job_type,
        state=state,
        destinations=destinations,
        segments=seg,
        fields={
            "what": WHAT,
            "folder": FOLDER,
            "prefix": PREFIX,
            "format": EXPORT_FORMAT if job_type == "export" else IMPORT_FORMAT,
            "compression": COMPRESSION,
        },
    )


@router.get("/{job_type}/new")
@ui_page
async def new(request: Request, job_type: str) -> Response:
    """The form that starts an export or import job."""
    viewer = await viewer_of(request)
    job_type = _type(job_type)
    defaults = {"what": "endpoints", "format": "jsonl" if job_type == "export" else "json"}
    return await run_in_threadpool(_new_page, request, viewer, job_type, FormState(values=defaults))


def _spec(job_type: str, values: dict[str, str]) -> Any:
    target = service.Target(
        destination_id=values.get("destination_id") or None,
        folder=values.get("folder", "").strip(),
    )
    if job_type == "export":
        return service.ExportJobSpec(
            what=values.get("what", "endpoints"),
            target=target,
            segment_id=values.get("segment_id") or None,
            format="csv" if values.get("format") == "csv" else "jsonl",
            compression="none" if values.get("compression") == "none" else "gzip",
        )
    return service.ImportJobSpec(
        target=target,
        prefix=values.get("prefix", "").strip(),
        format="csv" if values.get("format") == "csv" else "json",
    )


@router.post("/{job_type}/new")
@ui_page
async def start(request: Request, job_type: str) -> Response:
    """Queue the job and wake the in-process worker; then follow it on its page."""
    viewer, values = await posted(request)
    viewer.require("write")
    job_type = _type(job_type)
    context = session.context_of(request)
    state = FormState(values={k: v for k, v in values.items() if k != "csrf"})
    if not values.get("destination_id"):
        state.errors["destination_id"] = "Choose the destination the job writes to or reads from."
    else:
        create = service.create_export if job_type == "export" else service.create_import
        try:
            job = await run_in_threadpool(
                create, context.engine, viewer.actor, _spec(job_type, values)
            )
        except InputError as exc:
            if isinstance(exc, Forbidden):
                raise
            field = getattr(exc, "field", None)
            if isinstance(exc, NotFound):
                field = "segment_id" if "segment" in str(exc) else "destination_id"
            if field in ("destination_id", "folder", "segment_id", "what", "prefix"):
                state.errors[field] = getattr(exc, "reason", None) or str(exc)
            else:
                state.error = str(exc)
        else:
            context.wake()
            return RedirectResponse(f"/jobs/{job_type}/{job.id}?done=started", 303)
    state.error = state.error or "Not started: fix what is marked below."
    return await run_in_threadpool(_new_page, request, viewer, job_type, state, status=422)


@router.get("/{job_type}/{job_id}")
@ui_page
async def show(request: Request, job_type: str, job_id: str, done: str = "") -> Response:
    """One job: its progress (the page refreshes it while the job runs), then its result."""
    viewer = await viewer_of(request)
    job_type = _type(job_type)
    job, pieces = await run_in_threadpool(
        service.get, _engine(request), viewer.principal.project_id, job_id, job_type
    )
    return render.page(
        request,
        "job.html",
        viewer,
        job=shown(job, pieces),
        destination=await run_in_threadpool(_place, request, viewer, job),
        done=DONE.get(done),
    )


def _place(request: Request, viewer: Viewer, job: Job) -> str | None:
    """The job's destination as a person reads it (name and location), when it still exists."""
    target = job.definition.get("destination_id")
    if not target:
        return None
    with _engine(request).connect() as conn:
        found = catalog.destination(conn, viewer.principal.project_id, str(target))
    return f"{found.name} — {location(views.destination(found))}" if found else None


@router.post("/{job_type}/{job_id}/cancel")
@ui_page
async def cancel(request: Request, job_type: str, job_id: str) -> Response:
    """Cancel an unfinished job."""
    viewer, _ = await posted(request)
    viewer.require("write")
    job_type = _type(job_type)
    engine = _engine(request)
    try:
        await run_in_threadpool(service.cancel, engine, viewer.actor, job_id, job_type)
    except InputError as exc:
        if isinstance(exc, (Forbidden, NotFound)):
            raise
        job, pieces = await run_in_threadpool(
            service.get, engine, viewer.principal.project_id, job_id, job_type
        )
        return render.page(
            request, "job.html", viewer, status=409, job=shown(job, pieces), problem=str(exc)
        )
    return RedirectResponse(f"/jobs/{job_type}/{job_id}?done=cancelled", 303)
