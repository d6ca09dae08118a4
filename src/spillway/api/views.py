"""The JSON the API (and the CLI's ``--json``) shows for what Spillway keeps: one function per
resource, from the typed objects (``spillway.model``) or the stored records the services
return. Never a secret: credentials appear only in their masked form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from spillway import text
from spillway.engine import naming
from spillway.engine.ddl import Ddl
from spillway.engine.encode import FileSpec
from spillway.engine.windows import Frequency, next_end
from spillway.model import Destination, Endpoint, Export, Run
from spillway.store import export_status, streams
from spillway.store.db import now_ms

# --- Destinations --------------------------------------------------------------------------


def status_reason(destination: Destination) -> str | None:
    """Why a destination is ``failing``: the failed checks of its last validation, or what an
    export found (credentials refused), recorded the same way. None when it is not failing."""
    if destination.status != "failing":
        return None
    checks = (destination.last_validation or {}).get("checks") or []
    failed = [c for c in checks if c.get("status") == "failed"]
    return "; ".join(f"{c['name']}: {c['message']}" for c in failed) or None


def destination(row: Destination) -> dict[str, Any]:
    """A destination as the API shows it: masked credentials, never a secret."""
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "config": row.config,
        "credentials": row.credentials_public,
        "features": row.features,
        "status": row.status,
        "status_reason": status_reason(row),
        "credentials_version": row.credentials_version,
        "last_validation": row.last_validation,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def disabled_exports(exports: Iterable[Export]) -> list[dict[str, str]]:
    """The exports a deleted destination took down with it."""
    return [{"id": e.id, "name": e.name, "status": "disabled"} for e in exports]


# --- Endpoints -----------------------------------------------------------------------------


def endpoint(record: Endpoint) -> dict[str, Any]:
    """An endpoint as the API shows it (encodable even if stored before text was checked)."""
    shown = record.columns()  # the fields in the order the API has always shown them
    try:
        orjson.dumps(shown)
    except orjson.JSONEncodeError:
        # A key or value with a lone surrogate, stored before input was checked: every answer
        # holding it failed (response serialisation chokes on such map keys). Show U+FFFD.
        return dict(text.printable(shown))
    return shown


# --- Exports -------------------------------------------------------------------------------


def shown_start(export: Export) -> dict[str, Any]:
    """``start`` as the export was created with (``"now"``, ``"retention"`` or epoch seconds),
    ``start_at`` the receive time (ms) it covers from, ``start_seq`` the ingest sequence after
    which it delivers (its first cursor)."""
    start: str | int = int(export.start) if export.start.isdigit() else export.start
    return {
        "start": start,
        "start_at": export.start_at or export.created_at,
        "start_seq": export.start_seq,
    }


@dataclass(frozen=True, slots=True)
class Glance:
    """What the answers for a set of exports need beyond the exports themselves, read in a
    fixed number of statements however many exports there are (``GET /exports`` lists them
    all)."""

    folders: dict[str, str]  # destination id -> folder
    progress: dict[str, export_status.Progress]  # file export id -> last run, last success

    @classmethod
    def of(cls, engine: Engine, exports: Sequence[Export]) -> Glance:
        """Read it for ``exports``."""
        files = [export.id for export in exports if not export.is_stream]
        with engine.connect() as conn:
            return cls(
                export_status.folders(conn, [export.destination_id for export in exports]),
                export_status.progress(conn, files),
            )


def exports(engine: Engine, items: Sequence[Export]) -> list[dict[str, Any]]:
    """Exports as the API lists them: their last runs read in one statement for all."""
    glance = Glance.of(engine, items)
    return [export(engine, item, glance) for item in items]


def next_run_at(export: Export, progress: export_status.Progress, upcoming: int) -> int | None:
    """When the worker next delivers for a file export (epoch ms); None while disabled.

    The end of the next window (``upcoming``, epoch seconds); sooner when a run is waiting (a
    run now, a window not delivered yet): the time it was queued, so a time in the past means
    "due now", and one far in the past that no worker is running; later while a failed run
    waits for its retry (``next_attempt_at``).
    """
    if export.status == "disabled":
        return None
    due = upcoming * 1000
    if progress.waiting_since is not None:
        due = min(due, progress.waiting_since)
    retry = export.next_attempt_at
    return max(due, retry) if retry else due


def _last_run(run: export_status.LastRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "kind": run.kind,
        "status": run.status,
        "finished_at": run.finished_at,
        "events": run.events,
        "error": run.error,
    }


def export(engine: Engine, export: Export, glance: Glance | None = None) -> dict[str, Any]:
    """An export as the API shows it, with the exact path its files get and how it is doing:
    ``last_run``, ``last_success_at`` and ``next_run_at``. ``glance``: read for many exports
    at once by :func:`public_all`; read for this one when missing."""
    if export.is_stream:
        return stream_export(engine, export)
    glance = glance or Glance.of(engine, [export])
    folder = glance.folders.get(export.destination_id, "")
    progress = glance.progress.get(export.id) or export_status.Progress(None, None, None)
    spec = FileSpec.of(export.settings)
    frequency = Frequency(export.frequency)
    upcoming = next_end(frequency, export.last_window_end or export.created_at // 1000)
    key_prefix = naming.prefix(folder, export.name)
    layout = export.settings.layout
    example = naming.file_base(key_prefix, upcoming, layout) + spec.suffix
    shown = export.settings.to_json()
    del shown["pgp_public_key"]
    shown["pgp"] = bool(export.settings.pgp_public_key)
    return {
        "id": export.id,
        "name": export.name,
        "destination_id": export.destination_id,
        "frequency": export.frequency,
        **shown,
        "status": export.status,
        "status_reason": export.status_reason,
        "path": naming.path_pattern(key_prefix, layout, spec.suffix),
        "next_file": example,
        **shown_start(export),
        "last_run": _last_run(progress.last_run),
        "last_success_at": progress.last_success_at,
        "next_run_at": next_run_at(export, progress, upcoming),
        "cursor_seq": export.cursor_seq,
        "last_window_end": export.last_window_end,
        "next_attempt_at": export.next_attempt_at,
        "created_at": export.created_at,
        "updated_at": export.updated_at,
    }


def ddl(export_id: str, found: Ddl) -> dict[str, Any]:
    """``GET /exports/{id}/ddl``: the statement and what it is made of."""
    return {
        "export_id": export_id,
        "engine": found.engine,
        "table": found.table,
        "location": found.location,
        "columns": [{"name": c.name, "type": c.type} for c in found.columns],
        "partitions": [{"name": p.name, "type": p.type} for p in found.partitions],
        "statement": found.statement,
        "notes": list(found.notes),
    }


def stream_export(engine: Engine, export: Export) -> dict[str, Any]:
    """A stream export as the API shows it, with its delivery counters and lag."""
    settings = export.settings.to_json()
    with engine.connect() as conn:
        state = streams.state(conn, export.id)
        lag = streams.lag(
            conn, export.project_id, export.cursor_seq, now_ms(), export.settings.event_names
        )
    return {
        "id": export.id,
        "name": export.name,
        "destination_id": export.destination_id,
        "frequency": "stream",
        "events": settings["events"],
        "user_attributes": settings["user_attributes"],
        "device_attributes": settings["device_attributes"],
        "record_format": settings["record_format"],
        "webhook_url": settings["webhook_url"],
        "status": export.status,
        "status_reason": export.status_reason,
        **shown_start(export),
        # A stream has no runs and no schedule: it delivers each event as it arrives. Its
        # last success is its last acknowledged batch; `lag` says how far behind it is.
        "last_run": None,
        "last_success_at": state.last_sent_at,
        "next_run_at": None,
        "cursor_seq": export.cursor_seq,
        "lag": lag,
        "delivery": {
            "records_sent": state.records_sent,
            "records_retried": state.records_retried,
            "dead_lettered": state.dead_lettered,
            "redelivered": state.redelivered,
            "last_sent_at": state.last_sent_at,
        },
        "next_attempt_at": export.next_attempt_at,
        "created_at": export.created_at,
        "updated_at": export.updated_at,
    }


def run(run: Run) -> dict[str, Any]:
    """A run as the API shows it."""
    return {
        "id": run.id,
        "kind": run.kind,
        "window_end": run.window_end,
        "sequence_range": {"after": run.seq_from, "through": run.seq_to},
        "status": run.status,
        "attempts": run.attempts,
        "events": run.events,
        "bytes": run.bytes,
        "files": run.files,
        "duration_ms": run.duration_ms,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }
