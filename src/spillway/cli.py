"""The ``spillway`` command: serve, worker, admin, demo, destinations, exports."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import orjson
import typer

from spillway.cli_common import missing_project, where
from spillway.cli_destinations import app as destinations_app
from spillway.cli_exports import app as exports_app
from spillway.cli_jobs import app as jobs_app
from spillway.settings import Settings

if TYPE_CHECKING:  # the CLI imports heavy modules lazily so `spillway --help` stays fast
    from sqlalchemy.engine import Engine

    from spillway.api.deps import Context
    from spillway.engine.jobs.runner import JobRunner
    from spillway.engine.streamer import StreamDelivery
    from spillway.engine.worker import Worker

app = typer.Typer(
    help="Spillway: deliver engagement data into your own cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
admin = typer.Typer(help="Projects, integration keys and the database.", no_args_is_help=True)
app.add_typer(admin, name="admin")
app.add_typer(destinations_app, name="destinations")
app.add_typer(exports_app, name="exports")
app.add_typer(jobs_app, name="jobs")


def _settings() -> Settings:
    return Settings()


def _logging(settings: Settings) -> None:
    from spillway.logs import configure

    # Other libraries stay at WARNING and every line is redacted (docs/operations.md).
    configure(settings.log_level, settings.log_level_third_party)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="API only, no worker.")] = False,
) -> None:
    """Run the API (and, unless --no-worker, the worker) in this process."""
    import uvicorn

    from spillway.api.app import create_app
    from spillway.cli_serve import PortUnavailable, listen
    from spillway.engine.jobs.runner import JobThread
    from spillway.engine.streamer import StreamThread
    from spillway.engine.worker import WorkerThread
    from spillway.store.notify import (
        WORK_CHANNEL,
        EventListener,
        Notifier,
        listener_for,
        notifier_for,
    )

    settings = _settings()
    _logging(settings)
    try:  # the port first: if it is taken, say so before anything else happens
        sock = listen(host, port)
    except PortUnavailable as exc:
        raise _fail(str(exc)) from None
    holder: list[WorkerThread | StreamThread | JobThread | Notifier | EventListener] = []

    def start(context: Context) -> None:
        # On PostgreSQL, workers in other processes hear of each ingest commit at once.
        notifier = notifier_for(context.engine)
        if notifier is not None:
            context.writer.listeners.append(notifier)
            holder.append(notifier)
        # ...and of work queued through the API (run now, backfills, jobs), which a serve
        # without a worker cannot do itself.
        work = notifier_for(context.engine, WORK_CHANNEL)
        if work is not None:
            context.waker.append(work)
            holder.append(work)
        if no_worker:
            return
        thread = WorkerThread(_worker(context.settings, context.engine))
        context.waker.append(thread.worker.wake)
        thread.start()
        streams = StreamThread(_streams(context.settings, context.engine))
        context.writer.listeners.append(streams.delivery.nudge)  # new events go out at once
        streams.start()
        # ...and so do the events other serve processes commit.
        jobs = JobThread(_jobs(context.settings, context.engine))
        context.waker.append(jobs.runner.wake)
        listener = listener_for(
            context.engine, streams.delivery.nudge, on_work=_both(thread.worker, jobs.runner)
        )
        if listener is not None:
            holder.append(listener)
        jobs.start()
        holder.extend([thread, streams, jobs])

    def stop() -> None:
        for thread in holder:
            thread.stop()

    application = create_app(settings, on_startup=start, on_shutdown=stop)
    # Ingest allocates many short-lived objects: move everything loaded so far out of the
    # collector's way and collect the young generation less often (fewer, cheaper passes).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    typer.echo(_start_message(application.state.context, host, port))
    # log_config=None: uvicorn's loggers go through the root handler and its redacting filter.
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])  # serves on the socket taken above
    if not server.started:  # the application failed to start (uvicorn logged why)
        raise typer.Exit(code=3)


def _start_message(context: Context, host: str, port: int) -> str:
    """The start-up block (spillway.cli_serve.next_steps) for this server's database."""
    from spillway.cli_serve import command_name, next_steps
    from spillway.store import projects

    with context.engine.connect() as conn:
        has_project = bool(projects.list_projects(conn))
    return next_steps(context.settings, host, port, has_project=has_project, command=command_name())


def _streams(settings: Settings, engine: Engine) -> StreamDelivery:
    from spillway.engine.streamer import StreamDelivery
    from spillway.engine.webhooks import notify
    from spillway.secrets import SecretBox

    return StreamDelivery(
        engine,
        SecretBox(settings.service_key()),
        linger_ms=settings.stream_linger_ms,
        poll_seconds=settings.stream_poll_seconds,
        notify=notify,
    )


def _jobs(settings: Settings, engine: Engine) -> JobRunner:
    from spillway.secrets import SecretBox
    from spillway.services import jobs

    return jobs.runner(engine, SecretBox(settings.service_key()))


class _Wakeable(Protocol):
    def wake(self) -> None: ...


def _both(*loops: _Wakeable) -> Callable[[], None]:
    """One callback that wakes every loop given (a worker's scheduler and its job loop)."""

    def wake() -> None:
        for loop in loops:
            loop.wake()

    return wake


def _worker(settings: Settings, engine: Engine) -> Worker:
    from spillway.engine.worker import Worker
    from spillway.secrets import SecretBox

    return Worker(
        engine,
        settings.retention_days,
        settings.retention_batch_size,
        settings.worker_interval_seconds,
        box=SecretBox(settings.service_key()),
        lease_ttl_ms=int(settings.export_lease_seconds * 1000),
    )


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Do all due work once, then exit.")] = False,
) -> None:
    """Run only the worker: scheduled exports, streams and retention."""
    import signal
    import threading

    from spillway.store.db import create_engine, migrate
    from spillway.store.notify import listener_for

    settings = _settings()
    _logging(settings)
    engine = create_engine(settings.resolved_database_url, settings.db_pool_size)
    migrate(engine)
    runner = _worker(settings, engine)
    delivery = _streams(settings, engine)
    job_runner = _jobs(settings, engine)
    if once:
        done = runner.run_once()
        done["streamed"] = delivery.pass_once()
        done.update(job_runner.tick())
        runner.close()
        typer.echo(orjson.dumps(done).decode())
        from spillway.engine import webhooks

        # Webhook calls go out from a background thread: give the ones this pass queued a
        # bounded moment before the process exits.
        webhooks.flush(2 * settings.webhook_timeout_seconds)
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    streams = threading.Thread(target=delivery.run_forever, args=(stop,), name="spillway-streams")
    streams.start()
    # On PostgreSQL, the serve processes' NOTIFY after each ingest commit wakes the streams
    # here at once instead of at their next poll, and work queued through their API (run now,
    # backfills, jobs) wakes the worker and the job loop.
    listener = listener_for(engine, delivery.nudge, on_work=_both(runner, job_runner))
    jobs = threading.Thread(target=job_runner.run_forever, args=(stop,), name="spillway-jobs")
    jobs.start()
    runner.run_forever(stop)
    if listener is not None:
        listener.stop()
    delivery.nudge()
    job_runner.wake()
    streams.join(timeout=30)
    jobs.join(timeout=30)


@admin.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema."""
    from spillway.store.db import create_engine, migrate

    migrate(create_engine(_settings().resolved_database_url))
    typer.echo("database is up to date")


@admin.command("create-project")
def create_project(
    name: Annotated[str, typer.Argument(help="A unique project name.")],
    app_id: Annotated[
        str | None,
        typer.Option(
            "--app-id",
            help="Its id, 32 lower-case hex characters: keep a Pinpoint ApplicationId.",
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a project (an app whose events Spillway collects)."""
    from spillway.errors import InputError
    from spillway.services.projects import create_project as create
    from spillway.store.db import create_engine, migrate

    engine = create_engine(_settings().resolved_database_url)
    migrate(engine)
    try:
        row = create(engine, name, app_id=app_id)
    except InputError as exc:
        raise _fail(str(exc)) from None
    out = {"project_id": row.app_id, "name": row.name, "external_id": row.external_id}
    if json:
        typer.echo(orjson.dumps(out).decode())
    else:
        typer.echo(f"project {row.name!r} created: id {row.app_id}, External ID {row.external_id}")


@admin.command("create-key")
def create_key(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    scope: Annotated[
        str,
        typer.Option(
            help="ingest (send events and endpoints only: the key an app embeds), read, write "
            "or admin."
        ),
    ] = "write",
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Issue an integration key. The secret is printed once and never again."""
    from spillway.errors import InputError, NotFound
    from spillway.secrets import SecretBox
    from spillway.services.projects import Scope
    from spillway.services.projects import create_key as create
    from spillway.store.db import create_engine, migrate

    try:
        wanted = Scope(scope)
    except ValueError:
        raise _fail(f"--scope must be ingest, read, write or admin, not {scope!r}") from None
    settings = _settings()
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    try:
        issued = create(engine, SecretBox(settings.service_key()), project, wanted, name)
    except InputError as exc:
        if isinstance(exc, NotFound):  # say which database has no such project
            raise _fail(missing_project(project, settings)) from None
        raise _fail(str(exc)) from None
    out = {
        "project_id": issued.project_id,
        "key_id": issued.key_id,
        "secret": issued.secret,
        "scope": issued.scope.value,
        "token": issued.token,
    }
    if json:
        typer.echo(orjson.dumps(out).decode())
    else:
        typer.echo(f"key {issued.key_id} ({issued.scope}) for project {issued.project_name!r}")
        typer.echo(f"secret (shown only now): {issued.secret}")
        typer.echo(f"use it as: Authorization: Bearer {issued.token}")


@admin.command("create-operator-key")
def create_operator_key(
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Issue an operator key: bound to no project, for the Pinpoint-compatible API's
    account-level calls (CreateApp, GetApps, DeleteApp) and every app's. Printed once."""
    from spillway.secrets import SecretBox
    from spillway.services.projects import create_operator_key as create
    from spillway.store.db import create_engine, migrate

    settings = _settings()
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    issued = create(engine, SecretBox(settings.service_key()), name)
    out = {"key_id": issued.key_id, "secret": issued.secret, "scope": "operator"}
    if json:
        typer.echo(orjson.dumps(out).decode())
    else:
        typer.echo(f"operator key {issued.key_id}")
        typer.echo(f"secret (shown only now): {issued.secret}")
        typer.echo("use it as the AWS access key id and secret access key (SigV4) on /v1/apps")


@admin.command("revoke-key")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key id to revoke.")]) -> None:
    """Revoke an integration key; requests with it get 401 from now on."""
    from spillway.store import projects
    from spillway.store.db import create_engine, migrate

    settings = _settings()
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if not projects.revoke_key(conn, key_id):
            raise _fail(f"no live key {key_id!r} in {where(settings)}")
        projects.record_audit(conn, actor="cli", action="key.revoke", target=key_id)
    typer.echo(f"key {key_id} revoked")


@admin.command("list-projects")
def list_projects(
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every project: id, name, External ID, when it was created."""
    from spillway.cli_common import when
    from spillway.store import projects
    from spillway.store.db import create_engine, migrate

    settings = _settings()
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    with engine.connect() as conn:
        rows = projects.list_projects(conn)
    found: list[dict[str, Any]] = [
        {
            "project_id": row.app_id,
            "name": row.name,
            "external_id": row.external_id,
            "created_at": row.created_at,
        }
        for row in rows
    ]
    if json:
        typer.echo(orjson.dumps({"projects": found}).decode())
        return
    if not found:
        typer.echo(f"no projects in {where(settings)}")
    for item in found:
        typer.echo(
            f"{item['project_id']}  {item['name']}  {item['external_id']}  "
            f"created {when(item['created_at'])}"
        )


@admin.command("list-keys")
def list_keys(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A project's integration keys: id, scope, label, created, revoked. Never a secret."""
    from spillway.cli_common import when
    from spillway.store import projects
    from spillway.store.db import create_engine, migrate

    settings = _settings()
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    with engine.connect() as conn:
        row = projects.project_by_ref(conn, project)
        keys = [] if row is None else projects.list_keys(conn, row.id)
    if row is None:
        raise _fail(missing_project(project, settings))
    if json:
        shown = [
            {
                "key_id": key.key_id,
                "scope": key.scope,
                "name": key.name,
                "created_at": key.created_at,
                "revoked_at": key.revoked_at,
            }
            for key in keys
        ]
        typer.echo(orjson.dumps({"project_id": row.app_id, "keys": shown}).decode())
        return
    if not keys:
        typer.echo(f"no keys for project {row.name!r}")
    for key in keys:
        state = f"revoked {when(key.revoked_at)}" if key.revoked_at else "live"
        label = f"  {key.name}" if key.name else ""
        typer.echo(
            f"{key.key_id}  {key.scope:<6} {state:<30} created {when(key.created_at)}{label}"
        )


@app.command()
def demo(
    events: Annotated[int, typer.Option("--events", min=1, help="How many events.")] = 10_000,
    project: Annotated[str, typer.Option("--project", help="Project name.")] = "demo",
    users: Annotated[int, typer.Option(min=1, help="How many distinct users.")] = 1_000,
) -> None:
    """Ingest N realistic synthetic events into a project (created when missing)."""
    from spillway.demo import synthetic_events
    from spillway.ingest import Limits, ingest
    from spillway.services.projects import create_project as create
    from spillway.store import projects
    from spillway.store.db import create_engine, migrate

    settings = _settings()
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    with engine.connect() as conn:
        row = projects.project_by_ref(conn, project)
    if row is None:
        row = create(engine, project)
        typer.echo(f"created project {project!r} (id {row.app_id})")
    limits = Limits(settings.max_request_bytes, 500, settings.max_event_bytes)
    stored = 0
    batch: list[object] = []
    with typer.progressbar(length=events, label="ingesting") as bar:
        for number, event in enumerate(synthetic_events(events, users=users), start=1):
            batch.append(event)
            if len(batch) == 500 or number == events:
                stored += ingest(engine, row.id, batch, limits).accepted
                bar.update(len(batch))
                batch = []
    typer.echo(f"stored {stored:,} events in project {row.name!r} ({row.app_id})")


if __name__ == "__main__":
    app()
