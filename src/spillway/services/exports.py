"""Scheduled exports: their settings, and creating, changing, running and backfilling them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import (
    ValidationError,
)
from sqlalchemy.engine import Connection, Engine

from spillway import destinations as registry
from spillway.api.models import BackfillIn, ExportIn, ExportPatch, ExportSettingsIn
from spillway.engine import naming
from spillway.engine.pgp import inspect_public_key
from spillway.errors import Conflict, Invalid, NotApplicable, NotFound
from spillway.model import Actor, Destination, Export, Project
from spillway.store import catalog, export_status, runs
from spillway.store.db import now_ms, write
from spillway.store.projects import record_audit

if TYPE_CHECKING:
    from spillway.engine.ddl import Ddl

DAY_MS = 86_400_000


def _describe(exc: ValidationError, changed: set[str] | frozenset[str] = frozenset()) -> str:
    parts = []
    for err in exc.errors()[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["loc"] and err["loc"][0] not in changed:
            message += " (the stored value: send a new one in this request)"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


class BadExportSettings(Invalid):
    """An export's settings break a rule of the export model, as a request that fails its schema
    does (the field checks that need gpg, DNS or the destination's kind)."""


def check_pgp_key(key: str | None) -> None:
    """Have gpg read a new PGP public key (seconds of work: call it off the event loop)."""
    if not key:
        return
    try:
        inspect_public_key(key)
    except ValueError as exc:
        raise BadExportSettings("pgp_public_key", str(exc)) from None


def check_webhook_host(url: str | None) -> None:
    """Look a new webhook's host up: public addresses only, unless the operator lists it (a DNS
    lookup may take seconds: call it off the event loop)."""
    if not url:
        return
    from spillway import netpolicy

    try:
        netpolicy.current().check_webhook(url)
    except netpolicy.Refused as exc:
        raise BadExportSettings("webhook_url", str(exc)) from None


def check_frequency(kind: str, frequency: str) -> None:
    """Streams go to stream destinations, files to object stores: say which fits."""
    stream = registry.capabilities(kind).stream
    if stream and frequency != "stream":
        raise BadExportSettings(
            "frequency", f'a {kind} destination takes stream exports: set frequency to "stream"'
        )
    if not stream and frequency == "stream":
        raise BadExportSettings(
            "frequency",
            f'"stream" needs a {" or ".join(registry.stream_kinds())} destination, '
            f"not {kind}; use every_15_minutes, hourly, daily or weekly for files",
        )


# The key prefix of an export's files (``<folder>_<name>``): named where runs are named.
prefix = naming.prefix


def check_start(start: int | str, now: int, retention_days: int) -> int:
    """The receive time (epoch ms) an export asking for ``start`` covers from; a start in the
    future or before the retention period is a 422 saying what is allowed."""
    oldest = now - retention_days * DAY_MS
    if start == "now":
        return now
    if start == "retention":
        return oldest
    assert isinstance(start, int)
    allowed = (
        f'use "now", "retention" (every event still kept) or epoch seconds from '
        f"{-(-oldest // 1000)} (the retention period, {retention_days} days) to {now // 1000} (now)"
    )
    if start * 1000 > now:
        raise Invalid("start", f"{start} is in the future; {allowed}")
    if start * 1000 < oldest:
        raise Invalid(
            "start",
            f"{start} is before the retention period: events that old are no longer "
            f"kept; {allowed}",
        )
    return start * 1000


def _start_cursor(conn: Connection, project_id: int, start: int | str, start_at: int) -> int:
    """The cursor a new export starts from: the last sequence before the first event it covers.

    The cursor goes by ingest sequence: with a past start, it stops just before the project's
    first event received at or after the start, so the first run delivers that history and
    every run after it what follows, each event once.
    """
    if start != "now":
        first = runs.first_seq_since(conn, project_id, start_at)
        if first is not None:
            return first - 1
    return runs.high_water_now(conn)


def create(
    engine: Engine,
    actor: Actor,
    body: ExportIn,
    now: int | None = None,
    *,
    retention_days: int | None = None,
) -> Export:
    """Store an export. It covers what is received from its ``start`` on (default: now)."""
    now = now or now_ms()
    if retention_days is None:
        from spillway.settings import Settings

        retention_days = Settings().retention_days
    start_at = check_start(body.start, now, retention_days)
    check_pgp_key(body.pgp_public_key)
    check_webhook_host(body.webhook_url)
    with write(engine) as conn:
        destination = catalog.destination(conn, actor.project_id, body.destination_id)
        if destination is None:
            raise NotFound(f"no destination {body.destination_id!r} in this project")
        check_frequency(destination.kind, body.frequency)
        for existing in catalog.list_exports(conn, actor.project_id):
            if existing.name == body.name and existing.destination_id == body.destination_id:
                raise Conflict(f"an export named {body.name!r} already writes there")
        export_id = uuid.uuid4().hex
        start = _start_cursor(conn, actor.project_id, body.start, start_at)
        settings = body.model_dump(exclude={"name", "destination_id", "frequency", "start"})
        catalog.insert_export(
            conn,
            {
                "id": export_id,
                "project_id": actor.project_id,
                "name": body.name,
                "destination_id": body.destination_id,
                "frequency": body.frequency,
                "settings": settings,
                "status": "active",
                "cursor_seq": start,
                "start_seq": start,
                "start": str(body.start),
                "start_at": start_at,
                "created_at": now,
                "updated_at": now,
            },
        )
        record_audit(
            conn,
            actor=actor.name,
            action="export.create",
            project_id=actor.project_id,
            target=export_id,
            detail={"name": body.name, "frequency": body.frequency, "start": body.start},
        )
        export = catalog.export(conn, actor.project_id, export_id)
    assert export is not None
    return export


def get(engine: Engine, project_id: int, export_id: str) -> Export:
    """An export, or 404."""
    with engine.connect() as conn:
        export = catalog.export(conn, project_id, export_id)
    if export is None:
        raise NotFound(_missing(engine, project_id, export_id))
    return export


def _missing(engine: Engine, project_id: int, export_id: str) -> str:
    with engine.connect() as conn:
        export = catalog.export_with_history(conn, project_id, export_id)
    if export is not None and export.deleted_at is not None:
        return (
            f"export {export_id!r} was deleted; its run history stays readable at "
            f"/api/v1/exports/{export_id}/runs"
        )
    return f"no export {export_id!r} in this project"


def get_with_history(engine: Engine, project_id: int, export_id: str) -> Export:
    """An export of the project, live or deleted (for its run history), or 404."""
    with engine.connect() as conn:
        export = catalog.export_with_history(conn, project_id, export_id)
    if export is None:
        raise NotFound(f"no export {export_id!r} in this project")
    return export


def update(engine: Engine, actor: Actor, export_id: str, body: ExportPatch) -> Export:
    """Apply a change over the stored settings and validate the result as a whole, as
    :func:`create` does: every invalid change is a 422 naming the field. Runs already queued
    keep the settings they were queued with."""
    export = get(engine, actor.project_id, export_id)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return export  # nothing to change, nothing to record
    fields = sorted(changes)
    status = changes.pop("status", None)
    frequency = changes.pop("frequency", export.frequency)
    values: dict[str, Any] = {}
    if changes or frequency != export.frequency or status == "active":
        stored = export.settings.to_json()
        try:
            merged = ExportSettingsIn.model_validate(
                {**stored, **changes}, context={"stored": stored}
            )
        except ValidationError as exc:
            raise BadExportSettings(None, _describe(exc, set(changes))) from None
        with engine.connect() as conn:
            destination = catalog.destination_by_id(conn, export.destination_id)
        if destination is not None:
            check_frequency(destination.kind, frequency)
        elif status == "active" or frequency != export.frequency:
            raise Conflict(
                "the destination of this export was deleted, so it cannot run again: create "
                "an export on another destination (and delete this one)"
            )
        # The slow checks of a new value (this runs off the event loop).
        if "pgp_public_key" in changes:
            check_pgp_key(merged.pgp_public_key)  # gpg reads it
        if "webhook_url" in changes:
            check_webhook_host(merged.webhook_url)  # its host's addresses
        if changes:
            values["settings"] = merged.model_dump()
        if frequency != export.frequency:
            values["frequency"] = frequency
    if status is not None:
        values.update(
            status=status,
            status_reason=None if status == "active" else "disabled by user",
            next_attempt_at=None,
        )
    with write(engine) as conn:
        catalog.update_export(conn, export_id, values)
        record_audit(
            conn,
            actor=actor.name,
            action="export.update",
            project_id=actor.project_id,
            target=export_id,
            detail={"fields": fields},
        )
    return get(engine, actor.project_id, export_id)


def delete(engine: Engine, actor: Actor, export_id: str) -> None:
    """Stop and remove an export for good. Its run history stays readable
    (:func:`get_with_history`); its name is free for a new export (whose runs are its own)."""
    get(engine, actor.project_id, export_id)
    with write(engine) as conn:
        catalog.update_export(conn, export_id, {"deleted_at": now_ms(), "status": "disabled"})
        record_audit(
            conn,
            actor=actor.name,
            action="export.delete",
            project_id=actor.project_id,
            target=export_id,
        )


def _folder(engine: Engine, export: Export) -> str:
    """The folder of the export's destination ("" once it was deleted)."""
    with engine.connect() as conn:
        return export_status.folders(conn, [export.destination_id]).get(export.destination_id, "")


def run_now(engine: Engine, actor: Actor, export_id: str, now: int | None = None) -> str:
    """Queue a run delivering everything received so far that the export has not delivered
    yet; returns the id of that run (always a new one).

    Its files are named by the current second and the run's sequence range
    (``event_exports_<now>_manual_<after>-<through>``), so they never overwrite a window's
    file closing in the same second, nor another run now's.
    """
    export = get(engine, actor.project_id, export_id)
    if export.status == "disabled":
        raise Conflict("the export is disabled; enable it first")
    if export.is_stream:
        raise NotApplicable("a stream export delivers continuously; there is nothing to run")
    run_id = uuid.uuid4().hex
    settings = naming.run_settings(export, _folder(engine, export), range_keys=True)
    with write(engine) as conn:
        runs.insert_run(
            conn,
            {
                "id": run_id,
                "export_id": export_id,
                "kind": "manual",
                "window_end": (now or now_ms()) // 1000,
            },
            settings,
        )
        catalog.update_export(conn, export_id, {"next_attempt_at": None})
    return run_id


@dataclass(frozen=True, slots=True)
class QueuedBackfill:
    """A backfill just queued: its run, the range it covers and where its files go."""

    run_id: str
    start: int  # epoch seconds, inclusive
    end: int  # epoch seconds, exclusive (cut at the export's start)
    prefix: str

    def public(self) -> dict[str, Any]:
        """As the API answers it."""
        return {"run_id": self.run_id, "start": self.start, "end": self.end, "prefix": self.prefix}


def backfill(
    engine: Engine,
    actor: Actor,
    export_id: str,
    body: BackfillIn,
    retention_days: int,
    now: int | None = None,
) -> QueuedBackfill:
    """Queue a backfill of events received in [start, end) before the export's start (its
    creation, unless it was created with an earlier ``start``).

    Regular files cover everything after the export's start sequence; a backfill covers only
    what came before it, under ``<prefix>_backfill/``: the two can never overlap.
    """
    export = get(engine, actor.project_id, export_id)
    if export.is_stream:
        raise NotApplicable(
            "backfills write files; a stream export cannot backfill. Create a file export "
            "on an object-store destination and backfill that"
        )
    now = now or now_ms()
    oldest = now - retention_days * DAY_MS
    if body.start * 1000 < oldest:
        raise Invalid(
            None,
            f"start is before the retention period ({retention_days} days): events that old "
            "are no longer kept",
        )
    covered_from = export.covers_from
    if body.end * 1000 > covered_from:
        # Up to the end of that second: what came after the start is left out by its sequence
        # (a backfill covers only sequences up to the start's), what came before it in the same
        # second is not (cut at the second's beginning, it would go to no file at all).
        body = BackfillIn(start=body.start, end=max(body.start + 1, -(-covered_from // 1000)))
    with engine.connect() as conn:
        for run in runs.list_runs(conn, export_id, limit=10_000):
            if (
                run.kind == "backfill"
                and run.range_start_ms is not None
                and run.range_end_ms is not None
                and run.range_start_ms < body.end * 1000
                and body.start * 1000 < run.range_end_ms
            ):
                raise Conflict(f"this range overlaps backfill {run.id}")
    run_id = uuid.uuid4().hex
    settings = naming.backfill_settings(export, _folder(engine, export), run_id)
    with write(engine) as conn:
        runs.insert_run(
            conn,
            {
                "id": run_id,
                "export_id": export_id,
                "kind": "backfill",
                "window_end": body.end,
                "range_start_ms": body.start * 1000,
                "range_end_ms": body.end * 1000,
            },
            settings,
        )
    return QueuedBackfill(run_id, body.start, body.end, settings.prefix)


def ddl(engine: Engine, project_id: int, export_id: str, engine_name: str) -> Ddl:
    """The statement that reads the export's files in ``engine_name`` (athena, duckdb or
    bigquery), with the schema its format writes and the partitions its layout gives.

    A stream (no files) is 409; files no engine can read (PGP-encrypted), or an engine that
    cannot reach the destination, is a 422 saying why.
    """
    from spillway.engine import ddl as sql
    from spillway.store.projects import project_by_id

    export = get(engine, project_id, export_id)
    if export.is_stream:
        raise NotApplicable("a stream export writes no files; there is no table to define")
    with engine.connect() as conn:
        destination = catalog.destination_by_id(conn, export.destination_id)
        project = project_by_id(conn, project_id)
    if destination is None or destination.deleted_at is not None:
        raise Conflict("the destination of this export was deleted: its files have no location")
    key_prefix = naming.prefix(destination.folder, export.name)
    try:
        where = sql.location(destination, key_prefix, _local_dir(destination, project))
        return sql.statement(
            cast(sql.EngineName, engine_name),
            export.name,
            export.settings,
            destination.kind,
            where,
            first_day=time.strftime("%Y-%m-%d", time.gmtime(export.covers_from // 1000)),
        )
    except sql.Refused as exc:
        raise Invalid(None, str(exc)) from None


def _local_dir(destination: Destination, project: Project | None) -> Path | None:
    """A local destination's directory on this machine (None for other kinds)."""
    if destination.kind != "local" or project is None:
        return None
    from spillway.destinations.base import Tenant
    from spillway.destinations.local.client import directory_of
    from spillway.destinations.local.config import LocalConfig

    config = LocalConfig.model_validate(destination.config, context={"stored": True})
    try:
        _, directory = directory_of(config, Tenant(project.app_id, project.name, ""))
    except ValueError as exc:
        raise Invalid(None, f"the destination's folder cannot be found: {exc}") from None
    return directory
