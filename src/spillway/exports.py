"""Scheduled exports: their settings, and creating, changing, running and backfilling them."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import Engine

from spillway import text
from spillway.engine.encode import FileSpec
from spillway.engine.pgp import inspect_public_key, precheck_public_key
from spillway.engine.runner import DEFAULT_MAX_FILE_BYTES, file_base
from spillway.engine.windows import Frequency, next_end
from spillway.errors import InputError, NotFound
from spillway.lifecycle import Actor
from spillway.store import catalog
from spillway.store import runs as q
from spillway.store.db import now_ms
from spillway.store.projects import record_audit

DAY_MS = 86_400_000
# Largest file size an export may ask for: S3's (and most stores') object limit, 5 TiB.
MAX_FILE_BYTES = 5 * 1024**4
# Backfill bounds, epoch seconds: 9999-12-31T23:59:59Z is the last second dates can show.
MAX_EPOCH_S = 253_402_300_799


def _pgp_precheck(value: str | None) -> str | None:
    """Only the cheap checks of a PGP key: models are parsed on the event loop. gpg reads the
    key in :func:`check_pgp_key`, which the service calls (off the loop) before storing it."""
    if value:
        precheck_public_key(value)  # raises ValueError with what to fix
    return value or None


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors()[:8]
    )


class ExportSettings(BaseModel):
    """What goes into the files and how they are encoded (SPEC R13-R15)."""

    model_config = ConfigDict(extra="forbid")
    events: Literal["all"] | list[str] = "all"
    user_attributes: Literal["all", "none"] | list[str] = "all"
    device_attributes: bool = True
    format: Literal["jsonl", "csv", "parquet"] = "jsonl"
    compression: Literal["gzip", "zstd", "none"] = "gzip"
    pgp_public_key: str | None = None
    max_file_bytes: int = Field(default=DEFAULT_MAX_FILE_BYTES, ge=1024, le=MAX_FILE_BYTES)
    webhook_url: str | None = None
    # Streams only: the seed-001 record, or the JSON Pinpoint's event stream emitted.
    record_format: Literal["spillway", "pinpoint"] = "spillway"

    # No lone surrogate (no UTF-8 form) and no NUL anywhere, keys included; the field is named.
    _text = model_validator(mode="before")(text.checked)

    @field_validator("events")
    @classmethod
    def _events(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError('list at least one event name, or use "all"')
        return value

    _pgp = field_validator("pgp_public_key")(_pgp_precheck)

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from spillway import netpolicy

        # https to public addresses, or an origin the operator lists (a netpolicy.Refused, a
        # ValueError: a 422 naming webhook_url). Checked again, address by address, when sent.
        return netpolicy.current().check_webhook(value.strip())


class ExportIn(ExportSettings):
    """``POST /api/v1/exports``."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    destination_id: str
    frequency: Literal["every_15_minutes", "daily", "weekly", "stream"] = "every_15_minutes"


class ExportPatch(BaseModel):
    """``PATCH /api/v1/exports/{id}``: every field optional; takes effect at the next window."""

    model_config = ConfigDict(extra="forbid")
    frequency: Literal["every_15_minutes", "daily", "weekly", "stream"] | None = None
    events: Literal["all"] | list[str] | None = None
    user_attributes: Literal["all", "none"] | list[str] | None = None
    device_attributes: bool | None = None
    format: Literal["jsonl", "csv", "parquet"] | None = None
    compression: Literal["gzip", "zstd", "none"] | None = None
    pgp_public_key: str | None = None
    max_file_bytes: int | None = Field(default=None, ge=1024, le=MAX_FILE_BYTES)
    webhook_url: str | None = None
    record_format: Literal["spillway", "pinpoint"] | None = None
    status: Literal["active", "disabled"] | None = None

    _text = model_validator(mode="before")(text.checked)
    _pgp = field_validator("pgp_public_key")(_pgp_precheck)


class BackfillIn(BaseModel):
    """``POST /api/v1/exports/{id}/backfill``: a past range of receive times."""

    model_config = ConfigDict(extra="forbid")
    start: int = Field(ge=0, le=MAX_EPOCH_S, description="Epoch seconds, inclusive.")
    end: int = Field(ge=0, le=MAX_EPOCH_S, description="Epoch seconds, exclusive.")

    @model_validator(mode="after")
    def _order(self) -> BackfillIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


STREAM_KINDS = ("kinesis", "firehose")


def check_pgp_key(key: str | None) -> None:
    """Have gpg read a new PGP public key (seconds of work: call it off the event loop)."""
    if not key:
        return
    try:
        inspect_public_key(key)
    except ValueError as exc:
        raise InputError(f"pgp_public_key: {exc}", status_code=422) from None


def check_frequency(kind: str, frequency: str) -> None:
    """Streams go to stream destinations, files to object stores: say which fits."""
    if kind in STREAM_KINDS and frequency != "stream":
        raise InputError(
            f'a {kind} destination takes stream exports: set frequency to "stream"',
            status_code=422,
        )
    if kind not in STREAM_KINDS and frequency == "stream":
        raise InputError(
            f'frequency "stream" needs a kinesis or firehose destination, not {kind}; '
            "use every_15_minutes, daily or weekly for files",
            status_code=422,
        )


def prefix(folder: str, name: str) -> str:
    """``<folder>_<name>``, or just ``<name>`` without a folder (SPEC R13)."""
    return f"{folder}_{name}" if folder else name


def _snapshot(row: dict[str, Any], folder: str) -> dict[str, Any]:
    settings = dict(row["settings"])
    settings["prefix"] = prefix(folder, row["name"])
    return settings


def create(engine: Engine, actor: Actor, body: ExportIn, now: int | None = None) -> dict[str, Any]:
    """Store an export. Its first window covers what is ingested from now on."""
    now = now or now_ms()
    check_pgp_key(body.pgp_public_key)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        destination = catalog.destination(conn, actor.project_id, body.destination_id)
        if destination is None:
            raise NotFound(f"no destination {body.destination_id!r} in this project")
        check_frequency(destination["kind"], body.frequency)
        for existing in catalog.list_exports(conn, actor.project_id):
            if existing["name"] == body.name and existing["destination_id"] == body.destination_id:
                raise InputError(
                    f"an export named {body.name!r} already writes there",
                    status_code=409,
                    code="conflict",
                )
        export_id = uuid.uuid4().hex
        start = q.high_water_now(conn)
        settings = body.model_dump(exclude={"name", "destination_id", "frequency"})
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
            detail={"name": body.name, "frequency": body.frequency},
        )
        row = catalog.export(conn, actor.project_id, export_id)
    assert row is not None
    return row


def get(engine: Engine, project_id: int, export_id: str) -> dict[str, Any]:
    """An export, or 404."""
    with engine.connect() as conn:
        row = catalog.export(conn, project_id, export_id)
    if row is None:
        raise NotFound(f"no export {export_id!r} in this project")
    return row


def update(engine: Engine, actor: Actor, export_id: str, body: ExportPatch) -> dict[str, Any]:
    """Change settings or frequency; runs already queued keep their settings."""
    row = get(engine, actor.project_id, export_id)
    changes = body.model_dump(exclude_unset=True)
    values: dict[str, Any] = {}
    if "frequency" in changes and changes["frequency"] is not None:
        values["frequency"] = changes.pop("frequency")
        with engine.connect() as conn:
            destination = catalog.destination_by_id(conn, row["destination_id"])
        assert destination is not None
        check_frequency(destination["kind"], values["frequency"])
    if "status" in changes and changes["status"] is not None:
        status = changes.pop("status")
        values.update(
            status=status,
            status_reason=None if status == "active" else "disabled by user",
            next_attempt_at=None,
        )
    if changes:
        # The stored key is not judged again (it was when set, maybe under older limits).
        key = changes.get("pgp_public_key", row["settings"].get("pgp_public_key")) or None
        try:
            merged = ExportSettings.model_validate(
                {**row["settings"], **changes, "pgp_public_key": None}
            )
        except ValidationError as exc:
            raise InputError(_describe(exc), status_code=422) from None
        if "pgp_public_key" in changes:
            check_pgp_key(key)
        values["settings"] = {**merged.model_dump(), "pgp_public_key": key}
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_export(conn, export_id, values)
        record_audit(
            conn,
            actor=actor.name,
            action="export.update",
            project_id=actor.project_id,
            target=export_id,
            detail={"fields": sorted(body.model_dump(exclude_unset=True))},
        )
    return get(engine, actor.project_id, export_id)


def delete(engine: Engine, actor: Actor, export_id: str) -> None:
    """Stop and remove an export (its runs stay for the record)."""
    get(engine, actor.project_id, export_id)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_export(conn, export_id, {"deleted_at": now_ms(), "status": "disabled"})
        record_audit(
            conn,
            actor=actor.name,
            action="export.delete",
            project_id=actor.project_id,
            target=export_id,
        )


def _folder(engine: Engine, row: dict[str, Any]) -> str:
    with engine.connect() as conn:
        destination = catalog.destination_by_id(conn, row["destination_id"])
    return str((destination or {}).get("config", {}).get("folder", ""))


def run_now(engine: Engine, actor: Actor, export_id: str, now: int | None = None) -> str:
    """Queue a run delivering everything ingested so far (named by the current second)."""
    row = get(engine, actor.project_id, export_id)
    if row["status"] == "disabled":
        raise InputError(
            "the export is disabled; enable it first", status_code=409, code="conflict"
        )
    if row["frequency"] == "stream":
        raise InputError(
            "a stream export delivers continuously; there is nothing to run", status_code=409
        )
    run_id = uuid.uuid4().hex
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        q.insert_run(
            conn,
            {
                "id": run_id,
                "export_id": export_id,
                "kind": "manual",
                "window_end": (now or now_ms()) // 1000,
                "settings": _snapshot(row, _folder(engine, row)),
            },
        )
        catalog.update_export(conn, export_id, {"next_attempt_at": None})
    return run_id


def backfill(
    engine: Engine,
    actor: Actor,
    export_id: str,
    body: BackfillIn,
    retention_days: int,
    now: int | None = None,
) -> dict[str, Any]:
    """Queue a backfill of events received in [start, end) before the export existed.

    Regular files cover everything after the export's start sequence; a backfill covers only
    what came before it, under ``<prefix>_backfill/``: the two can never overlap.
    """
    row = get(engine, actor.project_id, export_id)
    if row["frequency"] == "stream":
        raise InputError(
            "backfills write files; a stream export cannot backfill. Create a file export "
            "on an object-store destination and backfill that",
            status_code=409,
        )
    now = now or now_ms()
    oldest = now - retention_days * DAY_MS
    if body.start * 1000 < oldest:
        raise InputError(
            f"start is before the retention period ({retention_days} days): events that old "
            "are no longer kept",
            status_code=422,
        )
    if body.end * 1000 > row["created_at"]:
        body = BackfillIn(start=body.start, end=max(body.start + 1, row["created_at"] // 1000))
    with engine.connect() as conn:
        for run in q.list_runs(conn, export_id, limit=10_000):
            if (
                run["kind"] == "backfill"
                and run["range_start_ms"] < body.end * 1000
                and body.start * 1000 < run["range_end_ms"]
            ):
                raise InputError(
                    f"this range overlaps backfill {run['id']}", status_code=409, code="conflict"
                )
    settings = _snapshot(row, _folder(engine, row))
    run_id = uuid.uuid4().hex
    settings["prefix"] = f"{settings['prefix']}_backfill/{run_id}"
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        q.insert_run(
            conn,
            {
                "id": run_id,
                "export_id": export_id,
                "kind": "backfill",
                "window_end": body.end,
                "settings": settings,
                "range_start_ms": body.start * 1000,
                "range_end_ms": body.end * 1000,
            },
        )
    return {"run_id": run_id, "start": body.start, "end": body.end, "prefix": settings["prefix"]}


def queue_settings(engine: Engine, row: dict[str, Any]) -> dict[str, Any]:
    """The settings snapshot a new scheduled run takes (with its key prefix)."""
    return _snapshot(row, _folder(engine, row))


def public(engine: Engine, row: dict[str, Any]) -> dict[str, Any]:
    """An export as the API shows it, with the exact path its files get."""
    if row["frequency"] == "stream":
        return public_stream(engine, row)
    settings = row["settings"]
    folder = _folder(engine, row)
    spec = FileSpec(settings["format"], settings["compression"], settings.get("pgp_public_key"))
    frequency = Frequency(row["frequency"])
    upcoming = next_end(frequency, row["last_window_end"] or row["created_at"] // 1000)
    example = file_base({"prefix": prefix(folder, row["name"])}, upcoming) + spec.suffix
    shown = {k: v for k, v in settings.items() if k != "pgp_public_key"}
    shown["pgp"] = bool(settings.get("pgp_public_key"))
    return {
        "id": row["id"],
        "name": row["name"],
        "destination_id": row["destination_id"],
        "frequency": row["frequency"],
        **shown,
        "status": row["status"],
        "status_reason": row["status_reason"],
        "path": f"{prefix(folder, row['name'])}/export_day=<DD-MM-YYYY>/event_exports_<epoch>"
        + spec.suffix,
        "next_file": example,
        "cursor_seq": row["cursor_seq"],
        "last_window_end": row["last_window_end"],
        "next_attempt_at": row["next_attempt_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def public_stream(engine: Engine, row: dict[str, Any]) -> dict[str, Any]:
    """A stream export as the API shows it, with its delivery counters and lag."""
    from spillway.store import streams

    settings = row["settings"]
    with engine.connect() as conn:
        state = streams.state(conn, row["id"])
        lag = streams.lag(conn, row["project_id"], int(row["cursor_seq"]), now_ms())
    return {
        "id": row["id"],
        "name": row["name"],
        "destination_id": row["destination_id"],
        "frequency": "stream",
        "events": settings["events"],
        "user_attributes": settings["user_attributes"],
        "device_attributes": settings["device_attributes"],
        "record_format": settings.get("record_format", "spillway"),
        "webhook_url": settings.get("webhook_url"),
        "status": row["status"],
        "status_reason": row["status_reason"],
        "cursor_seq": row["cursor_seq"],
        "lag": lag,
        "delivery": {
            "records_sent": state["records_sent"],
            "records_retried": state["records_retried"],
            "dead_lettered": state["dead_lettered"],
            "redelivered": state["redelivered"],
            "last_sent_at": state["last_sent_at"],
        },
        "next_attempt_at": row["next_attempt_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def public_run(run: dict[str, Any]) -> dict[str, Any]:
    """A run as the API shows it."""
    return {
        "id": run["id"],
        "kind": run["kind"],
        "window_end": run["window_end"],
        "sequence_range": {"after": run["seq_from"], "through": run["seq_to"]},
        "status": run["status"],
        "attempts": run["attempts"],
        "events": run["events"],
        "bytes": run["bytes"],
        "files": run["files"],
        "duration_ms": run["duration_ms"],
        "error": run["error"],
        "created_at": run["created_at"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
    }
