"""Scheduled exports: their settings, and creating, changing, running and backfilling them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from sqlalchemy.engine import Connection, Engine

from spillway import destinations as registry
from spillway import text
from spillway.engine.encode import FileSpec
from spillway.engine.pgp import inspect_public_key, precheck_public_key
from spillway.engine.runner import DEFAULT_MAX_FILE_BYTES, RANGE_KEYS, file_base
from spillway.engine.windows import Frequency, next_end
from spillway.errors import Conflict, Invalid, NotApplicable, NotFound
from spillway.services.destinations import Actor
from spillway.store import catalog, export_status
from spillway.store import runs as q
from spillway.store.db import now_ms, write
from spillway.store.projects import record_audit

DAY_MS = 86_400_000
# Largest file size an export may ask for: S3's (and most stores') object limit, 5 TiB.
MAX_FILE_BYTES = 5 * 1024**4
# Backfill bounds, epoch seconds: 9999-12-31T23:59:59Z is the last second dates can show.
MAX_EPOCH_S = 253_402_300_799


# --- one set of field definitions for creating and changing an export ----------------------
#
# ExportIn (POST) and ExportPatch (PATCH) are built from the same annotated types below, so a
# constraint or a check written once holds for both. A PATCH is applied over the stored
# settings and the result is validated again as a whole (ExportSettings), the way POST is.


def _stored(info: ValidationInfo, field: str, value: Any) -> bool:
    """True when ``value`` is the one already stored (a PATCH re-validating stored settings):
    it was judged when it was set, maybe under other limits, and is not judged again."""
    stored = (info.context or {}).get("stored")
    return isinstance(stored, dict) and field in stored and stored[field] == value


def _event_names(value: Any) -> Any:
    if isinstance(value, list) and not value:
        raise ValueError('list at least one event name, or use "all"')
    return value


def _pgp_precheck(value: str | None, info: ValidationInfo) -> str | None:
    """Only the cheap checks of a PGP key: models are parsed on the event loop. gpg reads the
    key in :func:`check_pgp_key`, which the service calls (off the loop) before storing it."""
    if value and not _stored(info, "pgp_public_key", value):
        precheck_public_key(value)  # raises ValueError with what to fix
    return value or None


def _webhook(value: str | None, info: ValidationInfo) -> str | None:
    if value is None or not value.strip():
        return None
    if _stored(info, "webhook_url", value):
        return value
    from spillway import netpolicy

    # https to public addresses, or an origin the operator lists (a netpolicy.Refused, a
    # ValueError: a 422 naming webhook_url). Only what needs no DNS lookup here: models are
    # parsed on the event loop, where a slow name server would stall every request. The host's
    # addresses are checked by check_webhook_host (off the loop), and again when it is called.
    return netpolicy.current().check_webhook(value.strip(), resolve=False)


EventNames = Annotated[Literal["all"] | list[str], AfterValidator(_event_names)]
UserAttributes = Literal["all", "none"] | list[str]
FileFormat = Literal["jsonl", "csv", "parquet"]
Compression = Literal["gzip", "zstd", "none"]
PgpPublicKey = Annotated[str | None, AfterValidator(_pgp_precheck)]
MaxFileBytes = Annotated[int, Field(ge=1024, le=MAX_FILE_BYTES)]
WebhookUrl = Annotated[str | None, AfterValidator(_webhook)]
# Streams only: the seed-001 record, or the JSON Pinpoint's event stream emitted.
RecordFormat = Literal["spillway", "pinpoint"]
FrequencyName = Literal["every_15_minutes", "daily", "weekly", "stream"]
ExportStatus = Literal["active", "disabled"]


def _describe(exc: ValidationError, changed: set[str] | frozenset[str] = frozenset()) -> str:
    parts = []
    for err in exc.errors()[:8]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["loc"] and err["loc"][0] not in changed:
            message += " (the stored value: send a new one in this request)"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # No lone surrogate (no UTF-8 form) and no NUL anywhere, keys included; the field is named.
    _text = model_validator(mode="before")(text.checked)


class ExportSettings(_Body):
    """What goes into the files and how they are encoded (SPEC R13-R15): the ``settings`` an
    export stores, with the defaults of a new export."""

    events: EventNames = "all"
    user_attributes: UserAttributes = "all"
    device_attributes: bool = True
    format: FileFormat = "jsonl"
    compression: Compression = "gzip"
    pgp_public_key: PgpPublicKey = None
    max_file_bytes: MaxFileBytes = DEFAULT_MAX_FILE_BYTES
    webhook_url: WebhookUrl = None
    record_format: RecordFormat = "spillway"


# Where a new export starts: "now", "retention" or epoch seconds (checked against the clock and
# the retention period by create()).
Start = Literal["now", "retention"] | Annotated[int, Field(strict=True, ge=0, le=MAX_EPOCH_S)]


class ExportIn(ExportSettings):
    """``POST /api/v1/exports``."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    destination_id: str
    frequency: FrequencyName = "every_15_minutes"
    # Creation only (a PATCH cannot move an export's start: its cursor has moved on).
    start: Start = Field(
        default="now",
        description='What the export covers: "now" (events received from its creation on), '
        '"retention" (every event still kept) or epoch seconds (events received from then '
        "on, within the retention period). Its first run delivers that history.",
    )


def _keep_schema(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # an omitted field keeps its value: there is no default


def _keep() -> Any:
    """A PATCH field: omitted keeps the stored value; ``null`` only where the type allows it."""
    return Field(
        default=None,
        description="Omit to keep the current value.",
        json_schema_extra=_keep_schema,
    )


class ExportPatch(_Body):
    """``PATCH /api/v1/exports/{id}``: the fields of :class:`ExportIn` but ``name`` and
    ``destination_id``, each optional, plus ``status``. Takes effect at the next window.

    The types (and so the checks) are ExportIn's own; :func:`update` applies the change over the
    stored settings and validates the result as a whole, so what POST refuses PATCH refuses.
    """

    frequency: FrequencyName = _keep()
    events: EventNames = _keep()
    user_attributes: UserAttributes = _keep()
    device_attributes: bool = _keep()
    format: FileFormat = _keep()
    compression: Compression = _keep()
    pgp_public_key: PgpPublicKey = _keep()
    max_file_bytes: MaxFileBytes = _keep()
    webhook_url: WebhookUrl = _keep()
    record_format: RecordFormat = _keep()
    status: ExportStatus = _keep()


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
            f"not {kind}; use every_15_minutes, daily or weekly for files",
        )


def prefix(folder: str, name: str) -> str:
    """``<folder>_<name>``, or just ``<name>`` without a folder (SPEC R13)."""
    return f"{folder}_{name}" if folder else name


def _snapshot(row: dict[str, Any], folder: str) -> dict[str, Any]:
    settings = dict(row["settings"])
    settings["prefix"] = prefix(folder, row["name"])
    return settings


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
        first = q.first_seq_since(conn, project_id, start_at)
        if first is not None:
            return first - 1
    return q.high_water_now(conn)


def create(
    engine: Engine,
    actor: Actor,
    body: ExportIn,
    now: int | None = None,
    *,
    retention_days: int | None = None,
) -> dict[str, Any]:
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
        check_frequency(destination["kind"], body.frequency)
        for existing in catalog.list_exports(conn, actor.project_id):
            if existing["name"] == body.name and existing["destination_id"] == body.destination_id:
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
        row = catalog.export(conn, actor.project_id, export_id)
    assert row is not None
    return row


def get(engine: Engine, project_id: int, export_id: str) -> dict[str, Any]:
    """An export, or 404."""
    with engine.connect() as conn:
        row = catalog.export(conn, project_id, export_id)
    if row is None:
        raise NotFound(_missing(engine, project_id, export_id))
    return row


def _missing(engine: Engine, project_id: int, export_id: str) -> str:
    with engine.connect() as conn:
        row = catalog.export_with_history(conn, project_id, export_id)
    if row is not None and row["deleted_at"] is not None:
        return (
            f"export {export_id!r} was deleted; its run history stays readable at "
            f"/api/v1/exports/{export_id}/runs"
        )
    return f"no export {export_id!r} in this project"


def get_with_history(engine: Engine, project_id: int, export_id: str) -> dict[str, Any]:
    """An export of the project, live or deleted (for its run history), or 404."""
    with engine.connect() as conn:
        row = catalog.export_with_history(conn, project_id, export_id)
    if row is None:
        raise NotFound(f"no export {export_id!r} in this project")
    return row


def update(engine: Engine, actor: Actor, export_id: str, body: ExportPatch) -> dict[str, Any]:
    """Apply a change over the stored settings and validate the result as a whole, as
    :func:`create` does: every invalid change is a 422 naming the field. Runs already queued
    keep the settings they were queued with."""
    row = get(engine, actor.project_id, export_id)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return row  # nothing to change, nothing to record
    fields = sorted(changes)
    status = changes.pop("status", None)
    frequency = changes.pop("frequency", row["frequency"])
    values: dict[str, Any] = {}
    if changes or frequency != row["frequency"] or status == "active":
        # Stored settings, minus keys an older version kept that are no settings any more.
        stored = {k: v for k, v in row["settings"].items() if k in ExportSettings.model_fields}
        try:
            merged = ExportSettings.model_validate(
                {**stored, **changes}, context={"stored": stored}
            )
        except ValidationError as exc:
            raise BadExportSettings(None, _describe(exc, set(changes))) from None
        with engine.connect() as conn:
            destination = catalog.destination_by_id(conn, row["destination_id"])
        if destination is not None:
            check_frequency(destination["kind"], frequency)
        elif status == "active" or frequency != row["frequency"]:
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
        if frequency != row["frequency"]:
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


def _folder(engine: Engine, row: dict[str, Any]) -> str:
    with engine.connect() as conn:
        destination = catalog.destination_by_id(conn, row["destination_id"])
    return str((destination or {}).get("config", {}).get("folder", ""))


def run_now(engine: Engine, actor: Actor, export_id: str, now: int | None = None) -> str:
    """Queue a run delivering everything received so far that the export has not delivered
    yet; returns the id of that run (always a new one).

    Its files are named by the current second and the run's sequence range
    (``event_exports_<now>_manual_<after>-<through>``), so they never overwrite a window's
    file closing in the same second, nor another run now's.
    """
    row = get(engine, actor.project_id, export_id)
    if row["status"] == "disabled":
        raise Conflict("the export is disabled; enable it first")
    if row["frequency"] == "stream":
        raise NotApplicable("a stream export delivers continuously; there is nothing to run")
    run_id = uuid.uuid4().hex
    settings = {**_snapshot(row, _folder(engine, row)), RANGE_KEYS: True}
    with write(engine) as conn:
        q.insert_run(
            conn,
            {
                "id": run_id,
                "export_id": export_id,
                "kind": "manual",
                "window_end": (now or now_ms()) // 1000,
                "settings": settings,
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
    """Queue a backfill of events received in [start, end) before the export's start (its
    creation, unless it was created with an earlier ``start``).

    Regular files cover everything after the export's start sequence; a backfill covers only
    what came before it, under ``<prefix>_backfill/``: the two can never overlap.
    """
    row = get(engine, actor.project_id, export_id)
    if row["frequency"] == "stream":
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
    covered_from = min(row["created_at"], row["start_at"] or row["created_at"])
    if body.end * 1000 > covered_from:
        # Up to the end of that second: what came after the start is left out by its sequence
        # (a backfill covers only sequences up to the start's), what came before it in the same
        # second is not (cut at the second's beginning, it would go to no file at all).
        body = BackfillIn(start=body.start, end=max(body.start + 1, -(-covered_from // 1000)))
    with engine.connect() as conn:
        for run in q.list_runs(conn, export_id, limit=10_000):
            if (
                run["kind"] == "backfill"
                and run["range_start_ms"] < body.end * 1000
                and body.start * 1000 < run["range_end_ms"]
            ):
                raise Conflict(f"this range overlaps backfill {run['id']}")
    settings = _snapshot(row, _folder(engine, row))
    run_id = uuid.uuid4().hex
    settings["prefix"] = f"{settings['prefix']}_backfill/{run_id}"
    with write(engine) as conn:
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


def shown_start(row: dict[str, Any]) -> dict[str, Any]:
    """``start`` as the export was created with (``"now"``, ``"retention"`` or epoch seconds),
    ``start_at`` the receive time (ms) it covers from, ``start_seq`` the ingest sequence after
    which it delivers (its first cursor)."""
    start: str | int = row.get("start") or "now"
    if isinstance(start, str) and start.isdigit():
        start = int(start)
    return {
        "start": start,
        "start_at": row.get("start_at") or row["created_at"],
        "start_seq": row["start_seq"],
    }


@dataclass(frozen=True, slots=True)
class Glance:
    """What the answers for a set of exports need beyond their rows, read in a fixed number
    of statements however many exports there are (``GET /exports`` lists them all)."""

    folders: dict[str, str]  # destination id -> folder
    progress: dict[str, export_status.Progress]  # file export id -> last run, last success

    @classmethod
    def of(cls, engine: Engine, rows: Sequence[dict[str, Any]]) -> Glance:
        """Read it for ``rows``."""
        files = [row["id"] for row in rows if row["frequency"] != "stream"]
        with engine.connect() as conn:
            return cls(
                export_status.folders(conn, [row["destination_id"] for row in rows]),
                export_status.progress(conn, files),
            )


def public_all(engine: Engine, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exports as the API lists them: their last runs read in one statement for all."""
    glance = Glance.of(engine, rows)
    return [public(engine, row, glance) for row in rows]


def next_run_at(row: dict[str, Any], progress: export_status.Progress, upcoming: int) -> int | None:
    """When the worker next delivers for a file export (epoch ms); None while disabled.

    The end of the next window (``upcoming``, epoch seconds); sooner when a run is waiting (a
    run now, a window not delivered yet): the time it was queued, so a time in the past means
    "due now", and one far in the past that no worker is running; later while a failed run
    waits for its retry (``next_attempt_at``).
    """
    if row["status"] == "disabled":
        return None
    due = upcoming * 1000
    if progress.waiting_since is not None:
        due = min(due, progress.waiting_since)
    retry = row["next_attempt_at"]
    return max(due, retry) if retry else due


def _last_run(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {key: run[key] for key in ("id", "kind", "status", "finished_at", "events", "error")}


def public(engine: Engine, row: dict[str, Any], glance: Glance | None = None) -> dict[str, Any]:
    """An export as the API shows it, with the exact path its files get and how it is doing:
    ``last_run``, ``last_success_at`` and ``next_run_at``. ``glance``: read for many exports
    at once by :func:`public_all`; read for this one when missing."""
    if row["frequency"] == "stream":
        return public_stream(engine, row)
    glance = glance or Glance.of(engine, [row])
    settings = row["settings"]
    folder = glance.folders.get(row["destination_id"], "")
    progress = glance.progress.get(row["id"]) or export_status.Progress(None, None, None)
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
        **shown_start(row),
        "last_run": _last_run(progress.last_run),
        "last_success_at": progress.last_success_at,
        "next_run_at": next_run_at(row, progress, upcoming),
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
        names = None if settings["events"] == "all" else list(settings["events"])
        lag = streams.lag(conn, row["project_id"], int(row["cursor_seq"]), now_ms(), names)
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
        **shown_start(row),
        # A stream has no runs and no schedule: it delivers each event as it arrives. Its
        # last success is its last acknowledged batch; `lag` says how far behind it is.
        "last_run": None,
        "last_success_at": state["last_sent_at"],
        "next_run_at": None,
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
