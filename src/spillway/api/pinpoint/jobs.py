"""Export and import jobs: CreateExportJob, GetExportJob(s), GetSegmentExportJobs,
CreateImportJob, GetImportJob(s), on Spillway's own jobs (``services/jobs.py``).

Pinpoint's jobs reach S3 by assuming ``RoleArn``; Spillway does the same with the app's External
ID, through the operator's STS and S3 (botocore's AWS_ENDPOINT_URL_STS / _S3 point them
elsewhere). The bucket is taken to be in the region the request was signed for. The request's
members are kept with the job and answered as its ``Definition``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from spillway.api.deps import ContextDep
from spillway.api.pinpoint.auth import AppRead, AppWrite, actor
from spillway.api.pinpoint.shapes import job as job_shape
from spillway.api.responses import JSON
from spillway.errors import Invalid
from spillway.model import Job
from spillway.services import jobs as service

router = APIRouter()

DEFAULT_PAGE = 100
MAX_PAGE = 1000
PageSize = Annotated[str | None, Query(alias="page-size")]
Token = Annotated[str | None, Query(max_length=64)]


class ExportJobRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    RoleArn: str = Field(min_length=1, max_length=2048)
    S3UrlPrefix: str = Field(min_length=1, max_length=2048)
    SegmentId: str | None = None
    SegmentVersion: int | None = None


class ImportJobRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Format: Literal["CSV", "JSON"]
    S3Url: str = Field(min_length=1, max_length=2048)
    RoleArn: str = Field(min_length=1, max_length=2048)
    DefineSegment: bool | None = None
    ExternalId: str | None = None
    RegisterEndpoints: bool | None = None
    SegmentId: str | None = None
    SegmentName: str | None = Field(default=None, min_length=1, max_length=200)


def _region(request: Request) -> str:
    """The region the request was signed for (where the bucket is taken to be)."""
    found = request.scope.get("state", {}).get("pinpoint")
    return found[0].region if found else "us-east-1"


def _definition(found: Job) -> dict[str, Any]:
    """The job's request as Pinpoint's Definition: as sent to these routes, or (for a job
    started with Spillway's own API) what its definition says."""
    kept = found.definition.get("pinpoint")
    if isinstance(kept, dict):
        return dict(kept)
    where = str(
        found.definition.get("s3_url") or f"destination:{found.definition.get('destination_id')}"
    )
    role = str(found.definition.get("role_arn") or "")
    if found.type == "export":
        shown: dict[str, Any] = {"S3UrlPrefix": where, "RoleArn": role}
        if found.definition.get("segment_id"):
            shown["SegmentId"] = found.definition["segment_id"]
        return shown
    return {
        "Format": str(found.definition.get("format", "json")).upper(),
        "S3Url": where,
        "RoleArn": role,
    }


def _shown(app_id: str, found: Job) -> dict[str, Any]:
    return job_shape(app_id, found, found.type.upper(), _definition(found))


def _page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise Invalid("page-size", f"must be a number from 1 to {MAX_PAGE}")
    return int(value)


def _page(
    engine: Engine,
    project_id: int,
    job_type: str,
    size: int,
    token: str | None,
    keep: Callable[[Job], bool] = lambda _job: True,
) -> tuple[list[Job], str | None]:
    """A page of the project's jobs (newest first) that ``keep`` accepts, and the token of the
    next page (the last job's id) when there is more."""
    chosen: list[Job] = []
    after = token
    while True:
        batch = service.list_jobs(engine, project_id, job_type, MAX_PAGE, after)
        for found in batch:
            if keep(found):
                if len(chosen) == size:
                    return chosen, chosen[-1].id
                chosen.append(found)
        if len(batch) < MAX_PAGE:
            return chosen, None
        after = batch[-1].id


def _listing(app_id: str, jobs: list[Job], token: str | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"Item": [_shown(app_id, j) for j in jobs]}
    if token:
        answer["NextToken"] = token
    return answer


@router.post("/apps/{app}/jobs/export", response_class=JSON)
async def create_export_job(
    body: ExportJobRequest, request: Request, context: ContextDep, found: AppWrite
) -> JSON:
    """CreateExportJob: every endpoint (or a segment's) as gzipped JSON lines under the prefix."""
    project, principal = found
    spec = service.ExportJobSpec(
        what="endpoints",
        target=service.Target(
            s3_url=body.S3UrlPrefix, role_arn=body.RoleArn, region=_region(request)
        ),
        segment_id=body.SegmentId,
        extra={"pinpoint": body.model_dump(exclude_none=True)},
    )
    created = await run_in_threadpool(
        service.create_export, context.engine, actor(principal, project), spec
    )
    context.wake()
    return JSON(_shown(project.app_id, created), 202)


@router.post("/apps/{app}/jobs/import", response_class=JSON)
async def create_import_job(
    body: ImportJobRequest, request: Request, context: ContextDep, found: AppWrite
) -> JSON:
    """CreateImportJob: endpoint definitions (Pinpoint's JSON lines or CSV) read from S3."""
    project, principal = found
    if body.SegmentId:
        raise Invalid(
            "SegmentId",
            "importing into an existing segment is not supported; use DefineSegment with "
            "SegmentName to make a segment of the imported endpoints",
        )
    if body.DefineSegment and not body.SegmentName:
        raise Invalid("SegmentName", "DefineSegment needs the name of the segment to create")
    spec = service.ImportJobSpec(
        target=service.Target(s3_url=body.S3Url, role_arn=body.RoleArn, region=_region(request)),
        format=body.Format.lower(),
        define_segment=body.SegmentName if body.DefineSegment else None,
        extra={"pinpoint": body.model_dump(exclude_none=True)},
    )
    created = await run_in_threadpool(
        service.create_import, context.engine, actor(principal, project), spec
    )
    context.wake()
    return JSON(_shown(project.app_id, created), 201)


def _job_routes(job_type: Literal["export", "import"]) -> None:
    path = f"/apps/{{app}}/jobs/{job_type}"

    @router.get(path, response_class=JSON, name=f"pinpoint_get_{job_type}_jobs")
    def list_jobs(
        context: ContextDep, found: AppRead, page_size: PageSize = None, token: Token = None
    ) -> dict[str, Any]:
        """GetExportJobs / GetImportJobs: newest first, ``token`` from the previous page."""
        project, _principal = found
        jobs, next_token = _page(context.engine, project.id, job_type, _page_size(page_size), token)
        return _listing(project.app_id, jobs, next_token)

    @router.get(path + "/{job_id}", response_class=JSON, name=f"pinpoint_get_{job_type}_job")
    def get_job(job_id: str, context: ContextDep, found: AppRead) -> dict[str, Any]:
        """GetExportJob / GetImportJob."""
        project, _principal = found
        job, _pieces = service.get(context.engine, project.id, job_id, job_type)
        return _shown(project.app_id, job)


_job_routes("export")
_job_routes("import")


@router.get("/apps/{app}/segments/{segment_id}/jobs/export", response_class=JSON)
def get_segment_export_jobs(
    segment_id: str,
    context: ContextDep,
    found: AppRead,
    page_size: PageSize = None,
    token: Token = None,
) -> dict[str, Any]:
    """GetSegmentExportJobs: the export jobs of one segment."""
    project, _principal = found
    jobs, next_token = _page(
        context.engine,
        project.id,
        "export",
        _page_size(page_size),
        token,
        keep=lambda j: j.definition.get("segment_id") == segment_id,
    )
    return _listing(project.app_id, jobs, next_token)
