"""``spillway destinations …``: the destination lifecycle from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from spillway.destinations.base import Check
    from spillway.secrets import SecretBox

app = typer.Typer(help="Connect, validate and delete destinations.", no_args_is_help=True)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]


def _open(project: str) -> tuple[Engine, SecretBox, int]:
    from spillway.cli_common import find_project, open_database, settings
    from spillway.secrets import SecretBox

    current = settings()
    engine = open_database(current)
    row = find_project(engine, project, current)  # or exit 1 naming the database looked in
    return engine, SecretBox(current.service_key()), row.id


def _json_arg(value: str | None, what: str) -> dict[str, Any]:
    """Inline JSON, or @path to a JSON file."""
    if not value:
        return {}
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        typer.secho(f"error: {what} is not valid JSON: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    if not isinstance(parsed, dict):
        typer.secho(f"error: {what} must be a JSON object", fg="red", err=True)
        raise typer.Exit(2)
    return parsed


def print_checks(checks: list[Check]) -> None:
    """The check list as a readable table, failures in red."""
    colours = {"passed": "green", "failed": "red", "skipped": "yellow"}
    width = max((len(c.name) for c in checks), default=5)
    for check in checks:
        status = check.status.value
        typer.echo(
            f"  {check.name:<{width}}  "
            + typer.style(f"{status:<7}", fg=colours[status])
            + f"  {check.message}"
        )


def _run(action: Any) -> Any:
    from spillway.errors import InputError, NotFound
    from spillway.services.destinations import ValidationFailed

    try:
        return action()
    except ValidationFailed as exc:
        print_checks(exc.checks)
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except InputError as exc:
        message = str(exc)
        if isinstance(exc, NotFound):  # say where it looked: the usual cause is another data dir
            from spillway.cli_common import settings, where

            message += f" (looked in {where(settings())})"
        typer.secho(f"error: {message}", fg="red", err=True)
        raise typer.Exit(1) from None


@app.command("list")
def list_destinations(project: ProjectOpt, json: bool = typer.Option(False, "--json")) -> None:
    """List the project's destinations."""
    from spillway import destinations as registry
    from spillway.api.views import destination as shown
    from spillway.store.catalog import list_destinations as rows

    engine, _, project_id = _open(project)
    with engine.connect() as conn:
        found = [shown(row) for row in rows(conn, project_id)]
    if json:
        typer.echo(orjson.dumps(found).decode())
        return
    if not found:
        typer.echo("no destinations")
    for item in found:
        where = registry.capabilities(item["kind"]).location(item["config"])
        typer.echo(
            f"{item['id']}  {item['kind']:<10} {item['status']:<8} {item['name']}  ({where})"
        )


@app.command()
def create(
    project: ProjectOpt,
    name: Annotated[str, typer.Option(help="A name for the destination.")],
    kind: Annotated[str, typer.Option(help="s3, gcs, azure_blob, local, kinesis or firehose.")],
    config: Annotated[str, typer.Option(help="Config JSON, or @file.json.")],
    credentials: Annotated[
        str | None, typer.Option(help="Credentials JSON, or @file.json.")
    ] = None,
    credentials_csv: Annotated[
        Path | None, typer.Option(help="The AWS console's credentials .csv (S3 only).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Create without validating.")] = False,
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Validate, then create a destination."""
    from spillway.api.views import destination as shown
    from spillway.model import Actor
    from spillway.services import destinations as destination_service

    engine, box, project_id = _open(project)
    creds = _json_arg(credentials, "--credentials")
    if credentials_csv is not None:
        creds = {"mode": "credentials_csv", "csv": credentials_csv.read_text()}
    body = {
        "name": name,
        "kind": kind,
        "config": _json_arg(config, "--config"),
        "credentials": creds,
        "force": force,
    }
    actor = Actor("cli", project_id)
    row, checks = _run(lambda: destination_service.create(engine, box, actor, body))
    if json:
        out = {**shown(row), "checks": [c.as_dict() for c in checks]}
        typer.echo(orjson.dumps(out).decode())
        return
    print_checks(checks)
    typer.echo(f"destination {row.name!r} created: {row.id}")


@app.command()
def validate(
    project: ProjectOpt,
    destination_id: Annotated[str, typer.Argument(help="Destination id.")],
) -> None:
    """Re-run the checks of a stored destination."""
    from spillway.destinations.base import all_passed
    from spillway.model import Actor
    from spillway.services import destinations as destination_service

    engine, box, project_id = _open(project)
    actor = Actor("cli", project_id)
    checks = _run(lambda: destination_service.validate_stored(engine, box, actor, destination_id))
    print_checks(checks)
    if not all_passed(checks):
        raise typer.Exit(1)


@app.command()
def delete(
    project: ProjectOpt,
    destination_id: Annotated[str, typer.Argument(help="Destination id.")],
) -> None:
    """Delete a destination; exports using it are disabled."""
    from spillway.model import Actor
    from spillway.services import destinations as destination_service

    engine, _, project_id = _open(project)
    actor = Actor("cli", project_id)
    _, disabled = _run(lambda: destination_service.delete(engine, actor, destination_id))
    typer.echo(f"destination {destination_id} deleted")
    for export in disabled:
        typer.echo(f"  export {export.name} ({export.id}) disabled")
