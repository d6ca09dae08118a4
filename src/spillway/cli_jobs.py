"""``spillway jobs …``: export and import jobs from the command line.

The commands call the same services as ``/api/v1/jobs`` and, with ``--json``, print the API's
JSON. ``--wait`` follows the job with a progress bar until it ends, running it in this process
when no worker has taken it (so a job finishes even where no server runs).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from spillway.cli_common import call, fail, find_project, open_database, settings, when

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from spillway.model import Job

app = typer.Typer(help="Export and import endpoints, users and event counts.", no_args_is_help=True)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", help="Follow the job with a progress bar until it ends.")
]
DestinationOpt = Annotated[
    str | None, typer.Option("--destination", "-d", help="A stored object-store destination id.")
]
S3UrlOpt = Annotated[str | None, typer.Option("--s3-url", help="s3://bucket/prefix instead.")]
RoleOpt = Annotated[
    str | None, typer.Option("--role-arn", help="With --s3-url: the role to assume.")
]
RegionOpt = Annotated[str | None, typer.Option("--region", help="With --s3-url: its region.")]


def _open(project: str) -> tuple[Engine, Any, Any]:
    from spillway.model import Actor

    current = settings()
    engine = open_database(current)
    found = find_project(engine, project, current)
    return engine, found, Actor("cli", found.id)


def _box() -> Any:
    from spillway.secrets import SecretBox

    return SecretBox(settings().service_key())


def _show(job: Job, pieces: list[Any] | None, as_json: bool) -> None:
    from spillway.api.jobs import public

    shown = public(job, pieces)
    if as_json:
        typer.echo(orjson.dumps(shown).decode())
        return
    typer.echo(
        f"{job.type} job {job.id} ({job.what}): {job.status}, "
        f"{job.completed_pieces}/{job.total_pieces} pieces, {job.total_processed} records"
        + (f", {job.total_failures} failed" if job.total_failures else "")
    )
    typer.echo(f"  created {when(job.created_at)}, ended {when(job.completed_at)}")
    for message in job.failures[:10]:
        typer.echo(f"  ! {message}")
    for key in shown.get("keys", []):
        typer.echo(f"  {key}")


def _follow(engine: Engine, project_id: int, job: Job, job_type: str) -> Job:
    """Show progress until the job ends; run it here when no worker holds it."""
    from spillway.services import jobs as service

    runner = service.runner(engine, _box())
    worker = threading.Thread(target=runner.serve_one, args=(job.id,), daemon=True)
    worker.start()
    shown = 0
    # On stderr: stdout carries the answer alone (``--json`` output is parsed by scripts; a
    # progress bar writing to a non-terminal still prints its label there).
    with typer.progressbar(
        length=max(job.total_pieces, 1), label=f"{job.what}", file=sys.stderr
    ) as bar:
        while True:
            job, _ = service.get(engine, project_id, job.id, job_type)
            if job.total_pieces:
                bar.length = job.total_pieces
            done = job.completed_pieces + job.failed_pieces
            bar.update(done - shown)
            shown = done
            if job.ended:
                break
            if not worker.is_alive():  # another worker has it, or it is backing off: retry
                worker = threading.Thread(target=runner.serve_one, args=(job.id,), daemon=True)
                time.sleep(1.0)
                worker.start()
            time.sleep(0.2)
    return job


def _finish(
    engine: Engine, project_id: int, job: Job, job_type: str, wait: bool, as_json: bool
) -> None:
    from spillway.services import jobs as service

    if wait:
        job = _follow(engine, project_id, job, job_type)
    found, pieces = service.get(engine, project_id, job.id, job_type)
    _show(found, pieces, as_json)
    if found.status in ("FAILED", "CANCELLED"):
        raise typer.Exit(1)


@app.command("export")
def export_job(
    project: ProjectOpt,
    what: Annotated[str, typer.Option(help="endpoints, users or event_counts.")] = "endpoints",
    destination: DestinationOpt = None,
    folder: Annotated[str, typer.Option(help="A folder under the destination's own.")] = "",
    s3_url: S3UrlOpt = None,
    role_arn: RoleOpt = None,
    region: RegionOpt = None,
    segment: Annotated[str | None, typer.Option(help="A segment id: its endpoints only.")] = None,
    file_format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    compression: Annotated[str, typer.Option(help="gzip or none.")] = "gzip",
    per_piece: Annotated[int, typer.Option(help="Records per piece, at most.")] = 100_000,
    start: Annotated[
        str | None, typer.Option(help="event_counts: from (ISO 8601 or epoch s).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="event_counts: until (exclusive).")] = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Start an export job (endpoints as Pinpoint's export files, users, or event counts)."""
    from spillway.api.jobs import ExportJobIn
    from spillway.services import jobs as service

    engine, found, actor = _open(project)
    body = call(
        lambda: ExportJobIn.model_validate(
            {
                "what": what,
                "destination_id": destination,
                "folder": folder,
                "s3_url_prefix": s3_url,
                "role_arn": role_arn,
                "region": region,
                "segment_id": segment,
                "format": file_format,
                "compression": compression,
                "max_records_per_piece": per_piece,
                "start": start,
                "end": end,
            }
        )
    )
    job = call(lambda: service.create_export(engine, actor, body.to_spec()))
    _finish(engine, found.id, job, "export", wait, as_json)


@app.command("import")
def import_job(
    project: ProjectOpt,
    destination: DestinationOpt = None,
    prefix: Annotated[str, typer.Option(help="With a destination: the objects to read.")] = "",
    s3_url: S3UrlOpt = None,
    role_arn: RoleOpt = None,
    region: RegionOpt = None,
    file_format: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    define_segment: Annotated[
        str | None, typer.Option(help="Create a segment of the imported endpoints.")
    ] = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Start an import of endpoint definitions (Pinpoint's export files, JSON or CSV)."""
    from spillway.api.jobs import ImportJobIn
    from spillway.services import jobs as service

    engine, found, actor = _open(project)
    body = call(
        lambda: ImportJobIn.model_validate(
            {
                "destination_id": destination,
                "prefix": prefix,
                "s3_url": s3_url,
                "role_arn": role_arn,
                "region": region,
                "format": file_format,
                "define_segment": define_segment,
            }
        )
    )
    job = call(lambda: service.create_import(engine, actor, body.to_spec()))
    _finish(engine, found.id, job, "import", wait, as_json)


def _type_of(engine: Engine, project_id: int, job_id: str) -> str:
    from spillway.errors import NotFound
    from spillway.services import jobs as service

    for job_type in ("export", "import"):
        try:
            service.get(engine, project_id, job_id, job_type)
        except NotFound:
            continue
        return job_type
    fail(f"no job {job_id!r} in this project; `spillway jobs list` lists them")


@app.command("show")
def show(
    project: ProjectOpt,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """A job's status, progress, failures and the keys it wrote."""
    from spillway.services import jobs as service

    engine, found, _actor = _open(project)
    job_type = _type_of(engine, found.id, job_id)
    job, _ = service.get(engine, found.id, job_id, job_type)
    if wait:
        job = _follow(engine, found.id, job, job_type)
    job, pieces = service.get(engine, found.id, job_id, job_type)
    _show(job, pieces, as_json)


@app.command("list")
def list_jobs(
    project: ProjectOpt,
    job_type: Annotated[str, typer.Option("--type", help="export or import.")] = "export",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The project's jobs, newest first."""
    from spillway.api.jobs import public
    from spillway.services import jobs as service

    if job_type not in ("export", "import"):
        fail("--type must be export or import", 2)
    engine, found, _actor = _open(project)
    jobs = service.list_jobs(engine, found.id, job_type, limit)
    if as_json:
        typer.echo(orjson.dumps({"jobs": [public(j) for j in jobs]}).decode())
        return
    if not jobs:
        typer.echo(f"no {job_type} jobs yet")
    for job in jobs:
        typer.echo(
            f"{job.id}  {job.what:<12} {job.status:<12} {job.completed_pieces}/{job.total_pieces} "
            f"pieces  {job.total_processed} records  {when(job.created_at)}"
        )


@app.command("cancel")
def cancel(
    project: ProjectOpt,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: JsonOpt = False,
) -> None:
    """Stop an unfinished job at its next piece (what it wrote stays)."""
    from spillway.services import jobs as service

    engine, found, actor = _open(project)
    job_type = _type_of(engine, found.id, job_id)
    job = call(lambda: service.cancel(engine, actor, job_id, job_type))
    _show(job, None, as_json)
