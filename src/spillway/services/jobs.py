"""Export and import jobs: what the API, the CLI and the Pinpoint routes call to start one, read
it, list and cancel them. The worker runs them (``engine/jobs``); this module checks a request
before anything is queued, so a job that cannot run is refused with the field to fix instead of
failing later.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway.engine.jobs.plan import Matches
from spillway.engine.jobs.runner import JobRunner, split_s3_url
from spillway.engine.targets import tenant_of
from spillway.errors import Conflict, Invalid, NotFound, RateLimited
from spillway.filters import EndpointFilter
from spillway.model import Actor, Job, JobPiece
from spillway.secrets import SecretBox
from spillway.services import segments
from spillway.store import catalog
from spillway.store import jobs as job_store
from spillway.store.db import now_ms, write
from spillway.store.projects import record_audit

WHATS = ("endpoints", "users", "event_counts")
# Jobs of one project that may be queued or running at once.
MAX_UNFINISHED = 5
DAY_MS = 86_400_000
_S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a job writes or reads: a stored destination (and a folder in it), or an S3 URL
    reached by assuming a role with the project's External ID (as Pinpoint's jobs do)."""

    destination_id: str | None = None
    folder: str = ""
    s3_url: str | None = None
    role_arn: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class ExportJobSpec:
    """A checked export job request."""

    what: str
    target: Target
    segment_id: str | None = None
    filter: Mapping[str, Any] | None = None
    format: str = "jsonl"
    compression: str = "gzip"
    max_records_per_piece: int = 100_000
    start_ms: int | None = None
    end_ms: int | None = None
    # Kept in the job's definition as given (the Pinpoint routes keep the request's members).
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportJobSpec:
    """A checked import job request."""

    target: Target
    prefix: str = ""
    format: str = "json"
    define_segment: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _check_target(engine: Engine, project_id: int, target: Target) -> dict[str, Any]:
    """The target as the job's definition keeps it; refused now when it cannot work."""
    if target.destination_id:
        if target.s3_url or target.role_arn:
            raise Invalid(None, "give destination_id, or s3_url_prefix with role_arn, not both")
        with engine.connect() as conn:
            destination = catalog.destination(conn, project_id, target.destination_id)
        if destination is None:
            raise NotFound(f"destination {target.destination_id} not found")
        if registry.capabilities(destination.kind).stream:
            raise Invalid(
                "destination_id",
                f"a {destination.kind} destination is a stream; jobs write files to an "
                "object store (S3, Cloud Storage, Azure Blob, a local folder)",
            )
        return {"destination_id": destination.id, "folder": target.folder.strip("/")}
    if not (target.s3_url and target.role_arn):
        raise Invalid(
            None,
            "say where: destination_id (a stored object-store destination), or s3_url_prefix "
            "with role_arn (a role Spillway assumes with the project's External ID)",
        )
    if not _S3_URL.match(target.s3_url):
        raise Invalid("s3_url_prefix", "expected s3://bucket/optional/prefix")
    bucket, prefix = split_s3_url(target.s3_url)
    region = target.region or "us-east-1"
    # What a new S3 destination would be refused for (role ARN shape, the operator's policy)
    # is refused here too.
    registry.parse(
        "s3",
        {"bucket": bucket, "region": region},
        {"mode": "role", "role_arn": target.role_arn},
        tenant_of(engine, project_id),
    )
    return {
        "s3_url": f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
        "role_arn": target.role_arn,
        "region": region,
    }


def _segment_filter(engine: Engine, project_id: int, segment_id: str) -> dict[str, Any]:
    """The segment's filter as it is now: the job keeps it, so a later change of the segment
    does not change what a job that already started selects."""
    return segments.get(engine, project_id, segment_id).filter.to_json()


def create_export(engine: Engine, actor: Actor, spec: ExportJobSpec) -> Job:
    """Queue an export job; the worker picks it up at once."""
    if spec.what not in WHATS:
        raise Invalid("what", f"expected one of {', '.join(WHATS)}")
    definition: dict[str, Any] = {
        **_check_target(engine, actor.project_id, spec.target),
        "format": spec.format,
        "compression": spec.compression,
        "max_records_per_piece": spec.max_records_per_piece,
    }
    if spec.what == "event_counts":
        if spec.segment_id or spec.filter:
            raise Invalid(
                None,
                "event_counts counts every event of the project; segment_id and filter select "
                "endpoints (use them with endpoints or users)",
            )
        end = spec.end_ms if spec.end_ms is not None else now_ms()
        start = spec.start_ms if spec.start_ms is not None else end - 30 * DAY_MS
        if end <= start:
            raise Invalid("end", "must be after start")
        definition |= {"start_ms": start, "end_ms": end}
    elif spec.start_ms is not None or spec.end_ms is not None:
        raise Invalid(None, "start and end apply to event_counts only")
    if spec.segment_id and spec.filter:
        raise Invalid(None, "give segment_id or filter, not both")
    if spec.segment_id:
        definition |= {
            "segment_id": spec.segment_id,
            "filter": _segment_filter(engine, actor.project_id, spec.segment_id),
        }
    elif spec.filter:
        definition["filter"] = dict(spec.filter)
    return _insert(engine, actor, "export", spec.what, {**spec.extra, **definition})


def create_import(engine: Engine, actor: Actor, spec: ImportJobSpec) -> Job:
    """Queue an import job of endpoint definitions."""
    definition: dict[str, Any] = {
        **_check_target(engine, actor.project_id, spec.target),
        "prefix": spec.prefix.strip("/"),
        "format": spec.format,
    }
    if spec.define_segment:
        definition["define_segment"] = spec.define_segment
    return _insert(engine, actor, "import", "endpoints", {**spec.extra, **definition})


class TooManyJobs(RateLimited):
    """The project already has as many unfinished jobs as it may."""


def _insert(
    engine: Engine, actor: Actor, job_type: str, what: str, definition: dict[str, Any]
) -> Job:
    with write(engine) as conn:
        waiting = job_store.unfinished_count(conn, actor.project_id)
        if waiting >= MAX_UNFINISHED:
            # One job thread serves every project: a project queueing without end would hold
            # everyone else's jobs behind its own.
            raise TooManyJobs(
                f"{waiting} jobs of this project have not finished; the limit is "
                f"{MAX_UNFINISHED}: wait for one to end, or cancel one",
                retry_after=30,
            )
        job = job_store.insert_job(
            conn,
            {
                "id": uuid.uuid4().hex,
                "project_id": actor.project_id,
                "type": job_type,
                "what": what,
                "definition": definition,
            },
        )
        record_audit(
            conn,
            actor=actor.name,
            action=f"job.{job_type}",
            project_id=actor.project_id,
            target=job.id,
            detail={"what": what},
        )
    return job


def get(engine: Engine, project_id: int, job_id: str, job_type: str) -> tuple[Job, list[JobPiece]]:
    """A job of the project with its pieces."""
    with engine.connect() as conn:
        job = job_store.job(conn, project_id, job_id, job_type)
        if job is None:
            raise NotFound(f"{job_type} job {job_id} not found")
        return job, job_store.pieces(conn, job_id)


def list_jobs(
    engine: Engine, project_id: int, job_type: str, limit: int = 50, after: str | None = None
) -> list[Job]:
    """The project's jobs of a type, newest first."""
    with engine.connect() as conn:
        return job_store.list_jobs(conn, project_id, job_type, limit, after)


def cancel(engine: Engine, actor: Actor, job_id: str, job_type: str) -> Job:
    """Cancel an unfinished job: the worker stops at the next piece; pieces written stay."""
    with write(engine) as conn:
        job = job_store.job(conn, actor.project_id, job_id, job_type)
        if job is None:
            raise NotFound(f"{job_type} job {job_id} not found")
        if not job_store.cancel(conn, job_id):
            raise Conflict(f"the job has ended ({job.status}); there is nothing to cancel")
        record_audit(
            conn,
            actor=actor.name,
            action=f"job.{job_type}.cancel",
            project_id=actor.project_id,
            target=job_id,
        )
        found = job_store.job(conn, actor.project_id, job_id, job_type)
    assert found is not None
    return found


def import_endpoints(
    engine: Engine, project_id: int, items: list[dict[str, Any]]
) -> list[str | None]:
    """Upsert endpoint definitions in Pinpoint's shape with the endpoint API's merge rules (one
    transaction for the valid ones); per item, why it was refused, or None when stored."""
    from pydantic import ValidationError

    from spillway.api.models import EndpointIn
    from spillway.engine.jobs.shapes import from_pinpoint
    from spillway.services import profiles

    errors: list[str | None] = []
    valid: list[tuple[str, EndpointIn]] = []
    for item in items:
        try:
            endpoint_id, fields = from_pinpoint(item)
            profiles.check_id(endpoint_id)
            valid.append((endpoint_id, EndpointIn.model_validate(fields)))
            errors.append(None)
        except ValidationError as exc:
            errors.append(_first_problem(exc))
        except (ValueError, Invalid) as exc:
            errors.append(str(exc))
    if valid:
        profiles.upsert_many(engine, project_id, valid)
    return errors


def _first_problem(exc: Any) -> str:
    """A pydantic error as ``field: message`` (the first few)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'input'}: "
        + str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors()[:3]
    )


def runner(engine: Engine, box: SecretBox, **options: Any) -> JobRunner:
    """The job loop with the services it needs (merge rules, segment filters) plugged in."""

    def matches_for(value: Mapping[str, Any] | None) -> Matches | None:
        return None if not value else EndpointFilter.from_json(value).matches

    return JobRunner(
        engine,
        box,
        import_endpoints,
        matches_for=matches_for,
        define_segment=define_import_segment,
        **options,
    )


def define_import_segment(
    engine: Engine, project_id: int, name: str, endpoint_ids: list[str]
) -> str | None:
    """The segment an import job's ``define_segment`` asks for: its endpoints, by id."""
    from spillway.errors import InputError

    try:
        segments.create(
            engine,
            Actor("import", project_id),
            name,
            EndpointFilter(endpoint_ids=tuple(endpoint_ids)),
        )
    except InputError as exc:
        return f"segment {name!r} not defined: {exc}"
    return None
