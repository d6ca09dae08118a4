"""What every ``spillway`` command shares: opening the database, finding a project, and
saying which database it looked in when something is not there."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic import ValidationError
    from sqlalchemy.engine import Engine

    from spillway.model import Project
    from spillway.settings import Settings

T = TypeVar("T")


def settings() -> Settings:
    """The settings from the environment (``SPILLWAY_*``)."""
    from spillway.settings import Settings

    return Settings()


def where(current: Settings) -> str:
    """The database a command uses and where that choice comes from, e.g. ``the database at
    sqlite:////srv/spillway/spillway.db (SPILLWAY_DATA_DIR=/srv/spillway)``; never a password."""
    from sqlalchemy.engine import make_url

    url = make_url(current.resolved_database_url).render_as_string(hide_password=True)
    if current.database_url:
        return f"the database at {url} (SPILLWAY_DATABASE_URL)"
    return f"the database at {url} (SPILLWAY_DATA_DIR={current.data_dir.resolve()})"


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def open_database(current: Settings) -> Engine:
    """An engine on the configured database, migrated to the current schema."""
    from spillway.store.db import create_engine, migrate

    engine = create_engine(current.resolved_database_url)
    migrate(engine)
    return engine


def missing_project(ref: str, current: Settings) -> str:
    """The message for a project that is not there, naming the database looked in."""
    return (
        f"no project named or with id {ref!r} in {where(current)}; "
        "`spillway admin list-projects` lists the projects there"
    )


def find_project(engine: Engine, ref: str, current: Settings) -> Project:
    """The project with this name or public id, or exit 1 saying which database has none."""
    from spillway.store.projects import project_by_ref

    with engine.connect() as conn:
        row = project_by_ref(conn, ref)
    if row is None:
        fail(missing_project(ref, current))
    return row


def when(epoch_ms: int | None) -> str:
    """An epoch-ms time as ``2026-11-29 14:45:51Z`` (UTC), or ``-``."""
    if epoch_ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch_ms / 1000))


def call(action: Callable[[], T]) -> T:
    """Run a service call; its refusals become messages and exit statuses: 1 not found or
    refused (a name taken, a state that forbids it), 2 invalid input (the message names the
    field)."""
    from pydantic import ValidationError

    from spillway.errors import InputError, Invalid, Malformed, NotFound

    try:
        return action()
    except ValidationError as exc:
        fail(describe(exc), 2)
    except NotFound as exc:
        fail(str(exc))
    except InputError as exc:
        fail(str(exc), 2 if isinstance(exc, Invalid | Malformed) else 1)  # the caller's to fix


def describe(exc: ValidationError) -> str:
    """A pydantic error as ``field: what is expected; …`` (the first few), in the API's words."""
    from spillway import fielderrors

    return fielderrors.describe(exc.errors()) or "invalid input"
