"""``spillway exports …``: scheduled exports and streams from the command line.

Every command calls the same service functions as ``/api/v1/exports`` and, with ``--json``,
prints the same JSON the API answers. Exit status: 0 done, 1 not found or refused (a name
taken, a disabled export), 2 invalid input (the message names the field).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from spillway.cli_common import (
    call,
    fail,
    find_project,
    open_database,
    settings,
    when,
    where,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from spillway.model import Actor, Export, Project
    from spillway.settings import Settings

app = typer.Typer(
    help="Create, run and watch exports (scheduled files and streams).", no_args_is_help=True
)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]
ExportArg = Annotated[str, typer.Argument(help="Export id, or its name when unique.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


class _Session:
    """One command's settings, database and project."""

    def __init__(self, project: str) -> None:
        from spillway.model import Actor

        self.settings: Settings = settings()
        self.engine: Engine = open_database(self.settings)
        self.project: Project = find_project(self.engine, project, self.settings)
        self.actor: Actor = Actor("cli", self.project.id)

    def where(self) -> str:
        return f"project {self.project.name!r} ({self.project.app_id}) in {where(self.settings)}"

    def export(self, ref: str, *, deleted: bool = False) -> Export:
        """An export of the project by id, or by name when one live export has it; with
        ``deleted``, a deleted one by id too (its run history stays readable)."""
        from spillway.store import catalog

        with self.engine.connect() as conn:
            row = catalog.export(conn, self.project.id, ref)
            if row is not None:
                return row
            named = [e for e in catalog.list_exports(conn, self.project.id) if e.name == ref]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            ids = ", ".join(e.id for e in named)
            fail(
                f"{len(named)} exports are named {ref!r} (on different destinations): "
                f"use an id ({ids})"
            )
        from spillway.errors import NotFound
        from spillway.services import exports as service

        try:
            gone = service.get_with_history(self.engine, self.project.id, ref)
        except NotFound:
            pass
        else:
            if deleted:
                return gone
            fail(
                f"export {ref!r} of {self.where()} was deleted; `spillway exports runs "
                f"--project {self.project.name} {ref}` shows its run history"
            )
        fail(
            f"no export {ref!r} in {self.where()}; `spillway exports list --project "
            f"{self.project.name}` lists them"
        )

    def destination_id(self, ref: str) -> str:
        """A live destination of the project by id or name."""
        from spillway.store import catalog

        with self.engine.connect() as conn:
            row = catalog.destination(conn, self.project.id, ref) or catalog.destination_by_name(
                conn, self.project.id, ref
            )
        if row is None:
            fail(
                f"no destination {ref!r} in {self.where()}; `spillway destinations list "
                f"--project {self.project.name}` lists them"
            )
        return row.id


def _print(value: Any) -> None:
    typer.echo(orjson.dumps(value).decode())


def _last_run(item: dict[str, Any]) -> str:
    run = item.get("last_run")
    if item["frequency"] == "stream":
        sent = item.get("last_success_at")
        return f"streaming, last batch {when(sent)}" if sent else "streaming, nothing sent yet"
    if run is None:
        return "no run yet"
    if run["status"] == "succeeded":
        return f"succeeded {when(run['finished_at'])} ({run['events']} events)"
    return str(run["status"])


def _next_run(item: dict[str, Any]) -> str:
    if item["frequency"] == "stream":
        return "continuous" if item["status"] != "disabled" else "-"
    return when(item.get("next_run_at"))


@app.command("list")
def list_exports(project: ProjectOpt, json: JsonOpt = False) -> None:
    """The project's exports: status, last run and next run of each."""
    from spillway.api import views
    from spillway.store import catalog

    session = _Session(project)
    with session.engine.connect() as conn:
        rows = catalog.list_exports(conn, session.project.id)
    found = views.exports(session.engine, rows)
    if json:
        _print({"exports": found})
        return
    if not found:
        typer.echo(f"no exports in {session.where()}")
        return
    for item in found:
        typer.echo(
            f"{item['id']}  {item['frequency']:<16} {item['status']:<8} {item['name']}  "
            f"last: {_last_run(item)}  next: {_next_run(item)}"
        )
        if item["status_reason"]:
            typer.echo(f"    {item['status_reason']}")


def _show(item: dict[str, Any]) -> None:
    typer.echo(f"export {item['name']!r} ({item['id']})")
    typer.echo(f"  status:        {item['status']}")
    if item["status_reason"]:
        typer.echo(f"  reason:        {item['status_reason']}")
    typer.echo(f"  frequency:     {item['frequency']}")
    typer.echo(f"  destination:   {item['destination_id']}")
    if "path" in item:
        typer.echo(f"  layout:        {item.get('layout', 'moengage')}")
        typer.echo(f"  path:          {item['path']}")
    typer.echo(f"  last run:      {_last_run(item)}")
    run = item.get("last_run")
    if run and run.get("error"):
        typer.echo(f"  last error:    {run['error']}")
    typer.echo(f"  last success:  {when(item.get('last_success_at'))}")
    typer.echo(f"  next run:      {_next_run(item)}")


@app.command()
def show(project: ProjectOpt, export: ExportArg, json: JsonOpt = False) -> None:
    """One export: its settings, status, last run, last success and next run."""
    from spillway.api import views

    session = _Session(project)
    item = views.export(session.engine, session.export(export))
    if json:
        _print(item)
        return
    _show(item)


def _json_option(value: str | None) -> dict[str, Any]:
    """Inline JSON, or @path to a JSON file."""
    if not value:
        return {}
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        parsed = orjson.loads(text)
    except (OSError, orjson.JSONDecodeError) as exc:
        fail(f"--settings is not readable JSON: {exc}", 2)
    if not isinstance(parsed, dict):
        fail("--settings must be a JSON object", 2)
    return parsed


@app.command()
def create(
    project: ProjectOpt,
    name: Annotated[str, typer.Option(help="Name; part of every file's key.")],
    destination: Annotated[str, typer.Option(help="Destination id or name.")],
    frequency: Annotated[
        str,
        typer.Option(help="every_15_minutes, hourly, daily, weekly, or stream (Kinesis/Firehose)."),
    ] = "every_15_minutes",
    events: Annotated[
        str | None, typer.Option(help='"all", or event names separated by commas.')
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="jsonl, csv or parquet.")
    ] = None,
    compression: Annotated[str | None, typer.Option(help="gzip, zstd or none.")] = None,
    layout: Annotated[
        str | None,
        typer.Option(
            help="moengage (default: <prefix>/export_day=DD-MM-YYYY/) or hive "
            "(<prefix>/dt=YYYY-MM-DD/hour=HH/, typed partitions for query engines)."
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help='"now" (default), "retention" (every event still kept) or epoch seconds.'
        ),
    ] = None,
    more: Annotated[
        str | None,
        typer.Option(
            "--settings",
            help="Any other field of POST /api/v1/exports as JSON, or @file.json "
            '(e.g. {"user_attributes": "none", "max_file_bytes": 104857600}).',
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create an export (checked exactly as the API checks it)."""
    from spillway.api import models, views
    from spillway.services import exports as service

    session = _Session(project)
    body: dict[str, Any] = {
        **_json_option(more),
        "name": name,
        "destination_id": session.destination_id(destination),
        "frequency": frequency,
    }
    if events is not None:
        names = [e.strip() for e in events.split(",") if e.strip()]
        body["events"] = "all" if names == ["all"] else names
    if file_format is not None:
        body["format"] = file_format
    if compression is not None:
        body["compression"] = compression
    if layout is not None:
        body["layout"] = layout
    if start is not None:
        body["start"] = int(start) if start.isdigit() else start
    model = call(lambda: models.ExportIn.model_validate(body))
    created = call(
        lambda: service.create(
            session.engine, session.actor, model, retention_days=session.settings.retention_days
        )
    )
    item = views.export(session.engine, created)
    if json:
        _print(item)
        return
    typer.echo(f"export {item['name']!r} created: {item['id']}")
    if "path" in item:
        typer.echo(f"  files go to {item['path']}")
    typer.echo(f"  next run: {_next_run(item)}")


@app.command()
def ddl(
    project: ProjectOpt,
    export: ExportArg,
    engine: Annotated[str, typer.Option("--engine", help="duckdb, athena or bigquery.")] = "duckdb",
    json: JsonOpt = False,
) -> None:
    """The SQL that reads the export's files in a query engine (a DuckDB view, an Athena or
    BigQuery external table), as GET /api/v1/exports/{id}/ddl answers it."""
    from spillway.api import views
    from spillway.engine.ddl import ENGINES
    from spillway.services import exports as service

    if engine not in ENGINES:
        fail(f"--engine {engine!r}: use {', '.join(ENGINES)}", 2)
    session = _Session(project)
    row = session.export(export)
    found = call(lambda: service.ddl(session.engine, session.project.id, row.id, engine))
    if json:
        _print(views.ddl(row.id, found))
        return
    typer.echo(found.statement)
    for note in found.notes:
        typer.echo(f"-- {note}", err=True)


@app.command()
def run(project: ProjectOpt, export: ExportArg, json: JsonOpt = False) -> None:
    """Deliver everything received so far, now (a running worker picks it up at once)."""
    from spillway.services import exports as service

    session = _Session(project)
    row = session.export(export)
    run_id: str = call(lambda: service.run_now(session.engine, session.actor, row.id))
    if json:
        _print({"run_id": run_id})
        return
    typer.echo(f"run {run_id} queued for export {row.name!r}")
    typer.echo(f"  follow it with: spillway exports runs --project {session.project.name} {row.id}")


@app.command()
def backfill(
    project: ProjectOpt,
    export: ExportArg,
    start: Annotated[int, typer.Option(help="Epoch seconds, inclusive.")],
    end: Annotated[int, typer.Option(help="Epoch seconds, exclusive.")],
    json: JsonOpt = False,
) -> None:
    """Export events received in [start, end) before the export's start, into their own path."""
    from spillway.api import models
    from spillway.services import exports as service

    session = _Session(project)
    row = session.export(export)
    body = call(lambda: models.BackfillIn(start=start, end=end))
    queued = call(
        lambda: service.backfill(
            session.engine, session.actor, row.id, body, session.settings.retention_days
        )
    )
    if json:
        _print(queued.public())
        return
    typer.echo(f"backfill {queued.run_id} queued: {queued.start} to {queued.end}")
    typer.echo(f"  files go to {queued.prefix}/")


@app.command()
def runs(
    project: ProjectOpt,
    export: ExportArg,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    json: JsonOpt = False,
) -> None:
    """Run history, newest first (a deleted export's too, by id)."""
    from spillway.api import views
    from spillway.store import runs

    session = _Session(project)
    row = session.export(export, deleted=True)
    with session.engine.connect() as conn:
        found = [views.run(r) for r in runs.list_runs(conn, row.id, limit)]
    if json:
        _print({"runs": found})
        return
    if not found:
        typer.echo(f"no runs of export {row.name!r} yet")
    for item in found:
        typer.echo(
            f"{item['id']}  {item['kind']:<9} {item['status']:<9} {when(item['created_at'])}  "
            f"{item['events']} events, {item['bytes']} bytes, {len(item['files'])} file(s)"
        )
        if item["error"]:
            typer.echo(f"    {item['error']}")


def _set_status(project: str, export: str, status: str, json: bool) -> None:
    from spillway.api import models, views
    from spillway.services import exports as service

    session = _Session(project)
    row = session.export(export)
    patch = call(lambda: models.ExportPatch.model_validate({"status": status}))
    updated = call(lambda: service.update(session.engine, session.actor, row.id, patch))
    item = views.export(session.engine, updated)
    if json:
        _print(item)
        return
    typer.echo(f"export {item['name']!r} ({item['id']}) is {item['status']}")


@app.command()
def disable(project: ProjectOpt, export: ExportArg, json: JsonOpt = False) -> None:
    """Pause an export; it keeps its cursor, so enabling it catches up."""
    _set_status(project, export, "disabled", json)


@app.command()
def enable(project: ProjectOpt, export: ExportArg, json: JsonOpt = False) -> None:
    """Resume an export, catching up on the windows it missed."""
    _set_status(project, export, "active", json)


@app.command()
def delete(project: ProjectOpt, export: ExportArg, json: JsonOpt = False) -> None:
    """Stop an export for good (its run history stays readable)."""
    from spillway.services import exports as service

    session = _Session(project)
    row = session.export(export)
    call(lambda: service.delete(session.engine, session.actor, row.id))
    if json:
        _print({"deleted": True, "id": row.id})
        return
    typer.echo(f"export {row.name!r} ({row.id}) deleted")
