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

# Every kind of the registry (spillway.destinations.KINDS; a test keeps the two in step),
# written out so that --help does not import the registry.
KINDS_HELP = (
    "s3, gcs, azure_blob or local (object stores, for file exports), kinesis or firehose "
    "(record streams, for stream exports)"
)
FEATURES = ("read_back", "cleanup", "test_record")

app = typer.Typer(
    help="Connect, validate, change, rotate and delete destinations: " + KINDS_HELP + ".",
    no_args_is_help=True,
)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the result as the API would answer it (JSON), for scripts."),
]
DestinationArg = Annotated[str, typer.Argument(help="Destination id (see `destinations list`).")]
CredentialsOpt = Annotated[
    str | None,
    typer.Option(
        help='Credentials JSON, or @file.json; its "mode" says how to authenticate '
        "(docs/destinations/KIND.md)."
    ),
]
CredentialsCsvOpt = Annotated[
    Path | None,
    typer.Option(
        help="The AWS console's credentials .csv of an access key (s3, kinesis, firehose), "
        "instead of --credentials."
    ),
]
FeaturesOpt = Annotated[
    str | None,
    typer.Option(
        help="Features to turn on, comma-separated: read_back (read each file back after "
        "writing it), cleanup (list and delete what failed attempts left), test_record "
        "(streams: send one test record when validating). Prefix one with no- to turn it "
        "off, e.g. read_back,no-cleanup. Each needs its permission; validation checks it."
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(help="Store it without validating (the checks can run later: `validate`)."),
]


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


def _features(value: str | None) -> dict[str, bool]:
    """``read_back,no-cleanup`` → ``{"read_back": True, "cleanup": False}``; exit 2 on a name
    that is not a feature."""
    features: dict[str, bool] = {}
    for item in (value or "").split(","):
        name = item.strip()
        if not name:
            continue
        on = not name.startswith("no-")
        name = name.removeprefix("no-").replace("-", "_")
        if name not in FEATURES:
            typer.secho(
                f"error: --features: unknown feature {item.strip()!r}; use "
                f"{', '.join(FEATURES)} (or no-<feature> to turn one off)",
                fg="red",
                err=True,
            )
            raise typer.Exit(2)
        features[name] = on
    return features


def _credentials(credentials: str | None, credentials_csv: Path | None) -> dict[str, Any]:
    """The credentials given as JSON, or read from the AWS console's .csv."""
    if credentials_csv is not None:
        if credentials:
            typer.secho(
                "error: give --credentials or --credentials-csv, not both", fg="red", err=True
            )
            raise typer.Exit(2)
        return {"mode": "credentials_csv", "csv": credentials_csv.read_text()}
    return _json_arg(credentials, "--credentials")


def _show(row: Any, checks: list[Check], json: bool, done: str) -> None:
    """What create, update and rotate print: the API's answer, or the checks and a line."""
    from spillway.api.views import destination as shown

    if json:
        out = {**shown(row), "checks": [c.as_dict() for c in checks]}
        typer.echo(orjson.dumps(out).decode())
        return
    print_checks(checks)
    typer.echo(done)


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
    """Run a service call; exit 1 when checks fail or the thing is not there, 2 when the input
    is wrong (the message names the field), as every ``spillway`` command does."""
    from spillway.errors import InputError, Invalid, Malformed, NotFound
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
        raise typer.Exit(2 if isinstance(exc, Invalid | Malformed) else 1) from None


@app.command("list")
def list_destinations(project: ProjectOpt, json: JsonOpt = False) -> None:
    """List the project's destinations: id, kind, status, name and where each writes."""
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
    kind: Annotated[str, typer.Option(help="One of " + KINDS_HELP + ".")],
    config: Annotated[
        str, typer.Option(help="Config JSON, or @file.json (fields: docs/destinations/KIND.md).")
    ],
    credentials: CredentialsOpt = None,
    credentials_csv: CredentialsCsvOpt = None,
    features: FeaturesOpt = None,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Validate, then create a destination (nothing is stored if a check fails)."""
    from spillway.model import Actor
    from spillway.services import destinations as destination_service

    engine, box, project_id = _open(project)
    body = {
        "name": name,
        "kind": kind,
        "config": _json_arg(config, "--config"),
        "credentials": _credentials(credentials, credentials_csv),
        "features": _features(features),
        "force": force,
    }
    actor = Actor("cli", project_id)
    row, checks = _run(lambda: destination_service.create(engine, box, actor, body))
    _show(row, checks, json, f"destination {row.name!r} created: {row.id}")


@app.command()
def update(
    project: ProjectOpt,
    destination_id: DestinationArg,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    config: Annotated[
        str | None,
        typer.Option(
            help="Config fields to change, JSON or @file.json (e.g. a new folder); the kind "
            "says which may change."
        ),
    ] = None,
    features: FeaturesOpt = None,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Change a destination's name, config or features; re-validates before saving."""
    from spillway.model import Actor
    from spillway.services import destinations as destination_service

    engine, box, project_id = _open(project)
    body: dict[str, Any] = {
        "config": _json_arg(config, "--config"),
        "features": _features(features),
        "force": force,
    }
    if name is not None:
        body["name"] = name
    actor = Actor("cli", project_id)
    row, checks = _run(lambda: destination_service.update(engine, box, actor, destination_id, body))
    _show(row, checks, json, f"destination {row.name!r} updated: {row.id}")


@app.command()
def rotate(
    project: ProjectOpt,
    destination_id: DestinationArg,
    credentials: CredentialsOpt = None,
    credentials_csv: CredentialsCsvOpt = None,
    json: JsonOpt = False,
) -> None:
    """Replace a destination's credentials, validated first (the old ones stay if a check
    fails)."""
    from spillway.model import Actor
    from spillway.services import destinations as destination_service

    if credentials is None and credentials_csv is None:
        typer.secho(
            "error: give the new credentials: --credentials JSON|@file.json or "
            "--credentials-csv FILE",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    engine, box, project_id = _open(project)
    new = _credentials(credentials, credentials_csv)
    actor = Actor("cli", project_id)
    row, checks = _run(lambda: destination_service.rotate(engine, box, actor, destination_id, new))
    _show(
        row,
        checks,
        json,
        f"destination {row.name!r}: new credentials in use (version {row.credentials_version})",
    )


@app.command()
def validate(project: ProjectOpt, destination_id: DestinationArg) -> None:
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
def delete(project: ProjectOpt, destination_id: DestinationArg) -> None:
    """Delete a destination; exports using it are disabled."""
    from spillway.model import Actor
    from spillway.services import destinations as destination_service

    engine, _, project_id = _open(project)
    actor = Actor("cli", project_id)
    _, disabled = _run(lambda: destination_service.delete(engine, actor, destination_id))
    typer.echo(f"destination {destination_id} deleted")
    for export in disabled:
        typer.echo(f"  export {export.name} ({export.id}) disabled")
