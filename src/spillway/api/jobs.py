"""Export and import jobs: start one, read it, list them, cancel."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from spillway.api import schemas
from spillway.api.deps import ContextDep, ReadKey, WriteKey
from spillway.api.docs import documented
from spillway.api.responses import JSON
from spillway.api.segments import FilterIn
from spillway.model import Actor, Job, JobPiece
from spillway.services import jobs as service
from spillway.services.projects import Principal

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

MAX_EPOCH_S = 253_402_300_799


def _actor(principal: Principal) -> Actor:
    return Actor(f"key:{principal.key_id}", principal.project_id)


def _instant_ms(value: int | str | None, field: str) -> int | None:
    """Epoch seconds or ISO 8601 (a date alone is its UTC midnight) as epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, int):
        return value * 1000
    text = value.strip()
    if text.isdigit():
        return int(text) * 1000
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{field}: {value!r} is neither epoch seconds nor ISO 8601 (2026-11-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


Instant = int | str | None
EpochOrIso = Annotated[Instant, Field(default=None, description="Epoch seconds or ISO 8601.")]


class _Where(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination_id: str | None = Field(
        default=None, description="A stored object-store destination of the project."
    )
    folder: str = Field(
        default="", max_length=512, description="A folder under the destination's own."
    )
    role_arn: str | None = Field(
        default=None,
        description="With an S3 URL instead of a destination: the role Spillway assumes, "
        "with the project's External ID, to reach the bucket.",
    )
    region: str | None = Field(default=None, description="The bucket's region (us-east-1).")


class ExportJobIn(_Where):
    """``POST /api/v1/jobs/export``."""

    what: Literal["endpoints", "users", "event_counts"] = "endpoints"
    s3_url_prefix: str | None = Field(default=None, description="s3://bucket/prefix")
    segment_id: str | None = None
    filter: FilterIn | None = None
    format: Literal["jsonl", "csv"] = "jsonl"
    compression: Literal["gzip", "none"] = "gzip"
    max_records_per_piece: int = Field(default=100_000, ge=1, le=10_000_000)
    start: EpochOrIso = None
    end: EpochOrIso = None

    @field_validator("start", "end")
    @classmethod
    def _instant(cls, value: Instant, info: Any) -> Instant:
        _instant_ms(value, info.field_name)  # refuse what cannot be read, naming the field
        if isinstance(value, int) and not 0 <= value <= MAX_EPOCH_S:
            raise ValueError(f"{info.field_name}: epoch seconds between 0 and {MAX_EPOCH_S}")
        return value

    def to_spec(self) -> service.ExportJobSpec:
        return service.ExportJobSpec(
            what=self.what,
            target=service.Target(
                self.destination_id, self.folder, self.s3_url_prefix, self.role_arn, self.region
            ),
            segment_id=self.segment_id,
            filter=None if self.filter is None else self.filter.to_filter().to_json(),
            format=self.format,
            compression=self.compression,
            max_records_per_piece=self.max_records_per_piece,
            start_ms=_instant_ms(self.start, "start"),
            end_ms=_instant_ms(self.end, "end"),
        )


class ImportJobIn(_Where):
    """``POST /api/v1/jobs/import``."""

    s3_url: str | None = Field(default=None, description="s3://bucket/prefix to read")
    prefix: str = Field(
        default="", max_length=1024, description="With a destination: the objects to read."
    )
    format: Literal["json", "csv"] = "json"
    define_segment: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Name of a segment to create holding the imported endpoints.",
    )

    def to_spec(self) -> service.ImportJobSpec:
        return service.ImportJobSpec(
            target=service.Target(
                self.destination_id, self.folder, self.s3_url, self.role_arn, self.region
            ),
            prefix=self.prefix,
            format=self.format,
            define_segment=self.define_segment,
        )


def public(job: Job, pieces: list[JobPiece] | None = None) -> dict[str, Any]:
    """A job as the API shows it; with its pieces, the keys written (or read)."""
    shown: dict[str, Any] = {
        "id": job.id,
        "type": job.type,
        "what": job.what,
        "status": job.status,
        "definition": dict(job.definition),
        "total_pieces": job.total_pieces,
        "completed_pieces": job.completed_pieces,
        "failed_pieces": job.failed_pieces,
        "total_processed": job.total_processed,
        "total_failures": job.total_failures,
        "failures": list(job.failures),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "snapshot_at": job.snapshot_at,
    }
    if pieces is not None:
        shown["keys"] = [p.key for p in pieces if p.status == "done"]
    return shown


def _job_routes(job_type: Literal["export", "import"]) -> None:
    path = f"/{job_type}"

    @router.get(
        path,
        response_class=JSON,
        responses=documented(schemas.JobList),
        name=f"list_{job_type}_jobs",
    )
    def list_jobs(
        context: ContextDep,
        principal: ReadKey,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """The project's jobs, newest first; ``after`` is the last id of the previous page."""
        jobs = service.list_jobs(context.engine, principal.project_id, job_type, limit, after)
        return {
            "jobs": [public(j) for j in jobs],
            "next": jobs[-1].id if len(jobs) == limit else None,
        }

    @router.get(
        path + "/{job_id}",
        response_class=JSON,
        name=f"get_{job_type}_job",
        responses=documented(schemas.Job, 404),
    )
    def get_one(job_id: str, context: ContextDep, principal: ReadKey) -> dict[str, Any]:
        """One job, with its progress and the keys written so far."""
        job, pieces = service.get(context.engine, principal.project_id, job_id, job_type)
        return public(job, pieces)

    @router.post(
        path + "/{job_id}/cancel",
        response_class=JSON,
        name=f"cancel_{job_type}_job",
        responses=documented(schemas.Job, 404, 409),
    )
    def cancel(job_id: str, context: ContextDep, principal: WriteKey) -> dict[str, Any]:
        """Stop an unfinished job at its next piece; what it wrote stays."""
        return public(service.cancel(context.engine, _actor(principal), job_id, job_type))


@router.post(
    "/export",
    status_code=202,
    response_class=JSON,
    responses=documented(schemas.Job, 404, 422, 429, status=202),
)
async def create_export(body: ExportJobIn, context: ContextDep, principal: WriteKey) -> JSON:
    """Start an export job: endpoints, users or event counts, written in pieces."""
    job = await run_in_threadpool(
        service.create_export, context.engine, _actor(principal), body.to_spec()
    )
    context.wake()
    return JSON(public(job, []), 202)


@router.post(
    "/import",
    status_code=202,
    response_class=JSON,
    responses=documented(schemas.Job, 404, 422, 429, status=202),
)
async def create_import(body: ImportJobIn, context: ContextDep, principal: WriteKey) -> JSON:
    """Start an import job of endpoint definitions (Pinpoint's export JSON or CSV)."""
    job = await run_in_threadpool(
        service.create_import, context.engine, _actor(principal), body.to_spec()
    )
    context.wake()
    return JSON(public(job, []), 202)


_job_routes("export")
_job_routes("import")
