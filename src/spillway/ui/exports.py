"""Exports: create one, see its status, runs and chart, run now, backfill, enable or disable,
delete.

Every change goes through ``services.exports`` as the API's does (``ExportIn``, ``ExportPatch``,
``BackfillIn``); what a page shows comes from ``api.views`` (``export``, ``stream_export``,
``run``), so the page and the API never disagree.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from spillway import destinations as registry
from spillway.api import views
from spillway.api.models import BackfillIn, ExportIn, ExportPatch
from spillway.engine import naming
from spillway.engine.encode import FileSpec
from spillway.engine.windows import Frequency, next_end
from spillway.errors import Forbidden, InputError, NotFound
from spillway.model import Destination, Run
from spillway.services import exports as service
from spillway.store import catalog
from spillway.store import events as event_store
from spillway.store import runs as run_store
from spillway.ui import kinds, render, session
from spillway.ui.data_sync import fix_for_destination, location
from spillway.ui.guard import posted, ui_page, viewer_of
from spillway.ui.kinds import Field
from spillway.ui.render import FormState
from spillway.ui.session import Viewer

router = APIRouter(prefix="/exports", include_in_schema=False)

DONE = {
    "created": "Export created. Its first files arrive at the end of the first window "
    "(or choose Run now).",
    "ran": "Run queued: the worker delivers everything received so far. Its row below "
    "updates by itself when it finishes.",
    "backfill": "Backfill queued: its files go under <path>_backfill/<run id>/ (hive folders: "
    "beside the regular files, named by the run id).",
    "enabled": "Export enabled: it runs again from where it stopped, nothing is lost.",
    "disabled": "Export disabled: it delivers nothing until you enable it again.",
    "deleted": "Export deleted. Files already delivered stay where they are.",
}
FREQUENCIES = (
    ("every_15_minutes", "Every 15 minutes"),
    ("hourly", "Hourly (at :00 UTC)"),
    ("daily", "Daily (at 00:00 UTC)"),
    ("weekly", "Weekly (Monday 00:00 UTC)"),
    ("stream", "Stream (each event as it arrives: Kinesis or Firehose destinations)"),
)
FORMATS = (("jsonl", "JSON Lines (.json)"), ("csv", "CSV (.csv)"), ("parquet", "Parquet"))
COMPRESSIONS = (("gzip", "gzip (.gz)"), ("zstd", "Zstandard (.zst)"), ("none", "None"))
LAYOUTS = (
    ("moengage", "MoEngage: export_day=DD-MM-YYYY/"),
    ("hive", "Hive partitions: dt=YYYY-MM-DD/hour=HH/ (Athena, BigQuery, DuckDB, Spark)"),
)
CHART_RUNS = 30  # bars in the events-per-run chart
# Refusals the guard turns into their own pages (403 / 404), not a message on this one.
OWN_PAGE = (Forbidden, NotFound)

# The create form's plain inputs; the event, attribute and start choices are radios/checkboxes.
NAME = Field(
    "name",
    "Export name",
    help="Letters, digits, dot, dash and underscore, e.g. events or marketing-daily. It names "
    "the folder the files go to.",
    required=True,
    placeholder="events",
)
FREQUENCY = Field(
    "frequency",
    "How often",
    widget="select",
    options=FREQUENCIES,
    default="every_15_minutes",
    help="Each run delivers the events received since the last one; a missed window is "
    "caught up later, nothing is skipped.",
)
FORMAT = Field("format", "File format", widget="select", options=FORMATS, default="jsonl")
COMPRESSION = Field(
    "compression",
    "Compression",
    widget="select",
    options=COMPRESSIONS,
    default="gzip",
    help="Parquet compresses inside the file: this applies to JSON Lines and CSV.",
)
LAYOUT = Field(
    "layout",
    "Folders",
    widget="select",
    options=LAYOUTS,
    default="moengage",
    help="Hive partitions let query engines read dt and hour as typed columns and skip "
    "folders; the export's page then gives the CREATE TABLE statement.",
)
PGP = Field(
    "pgp_public_key",
    "PGP public key (optional)",
    widget="textarea",
    help="Paste an ASCII-armoured public key (-----BEGIN PGP PUBLIC KEY BLOCK-----) to "
    "encrypt every file to it (files end in .gpg). Leave empty for no encryption.",
)


def _engine(request: Request) -> Any:
    return session.context_of(request).engine


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def size(count: int | None) -> str:
    """Bytes as a person reads them."""
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns


def duration(ms: int | None) -> str:
    """A run's duration (ms) as text."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


def output_path(
    folder: str,
    name: str,
    frequency: str,
    file_format: str,
    compression: str,
    pgp: bool,
    layout: str = naming.MOENGAGE,
) -> str:
    """The exact key of a new export's first file: what ``views.export`` calls ``next_file``
    (the end of the first window after now, under ``<folder>_<name>``)."""
    spec = FileSpec(file_format, compression, "key" if pgp else None)  # type: ignore[arg-type]
    upcoming = next_end(Frequency(frequency), int(time.time()))
    key_prefix = naming.prefix(folder, name or "<export name>")
    layout = layout if layout in naming.LAYOUTS else naming.MOENGAGE
    return naming.file_base(key_prefix, upcoming, layout) + spec.suffix


def _destinations(request: Request, viewer: Viewer) -> list[Destination]:
    with _engine(request).connect() as conn:
        return catalog.list_destinations(conn, viewer.principal.project_id)


def _event_names(request: Request, viewer: Viewer) -> list[str]:
    with _engine(request).connect() as conn:
        return event_store.recent_event_names(conn, viewer.principal.project_id)


# --- List and create ---------------------------------------------------------------------


@router.get("")
@ui_page
async def overview(request: Request, done: str = "") -> Response:
    """Every export with its status, last delivery and next run."""
    viewer = await viewer_of(request)
    engine = _engine(request)

    def load() -> tuple[list[dict[str, Any]], list[Destination]]:
        with engine.connect() as conn:
            items = catalog.list_exports(conn, viewer.principal.project_id)
            destinations = catalog.list_destinations(conn, viewer.principal.project_id)
        return views.exports(engine, items), destinations

    exports, destinations = await run_in_threadpool(load)
    names = {d.id: d.name for d in destinations}
    for e in exports:
        e["destination_name"] = names.get(e["destination_id"], "(deleted destination)")
    return render.page(
        request,
        "exports.html",
        viewer,
        exports=exports,
        has_destination=bool(destinations),
        done=DONE.get(done),
    )


def _new_page(
    request: Request,
    viewer: Viewer,
    state: FormState,
    destinations: list[Destination],
    names: list[str],
    *,
    status: int = 200,
) -> Response:
    options = [
        {
            "id": d.id,
            "label": f"{d.name} — {location(views.destination(d))}",
            "folder": str(d.config.get("folder") or ""),
            "stream": registry.capabilities(d.kind).stream,
        }
        for d in destinations
    ]
    chosen = state.value("destination_id") or (options[0]["id"] if options else "")
    current = next((o for o in options if o["id"] == chosen), None)
    frequency = state.value("frequency", "every_15_minutes")
    preview = (
        "A stream delivers each event to the stream as it arrives: no files."
        if frequency == "stream" or (current and current["stream"])
        else output_path(
            str(current["folder"]) if current else "",
            state.value("name").strip(),
            frequency if frequency in Frequency.__members__.values() else "every_15_minutes",
            state.value("format", "jsonl"),
            state.value("compression", "gzip"),
            bool(state.value("pgp_public_key").strip()),
            state.value("layout", naming.MOENGAGE),
        )
    )
    picked = set(state.value("event_names_chosen").split("\n")) - {""}
    return render.page(
        request,
        "export_new.html",
        viewer,
        status=status,
        state=state,
        fields={
            "name": NAME,
            "frequency": FREQUENCY,
            "format": FORMAT,
            "compression": COMPRESSION,
            "layout": LAYOUT,
            "pgp": PGP,
        },
        destinations=options,
        chosen=chosen,
        names=names,
        picked=picked,
        preview=preview,
    )


@router.get("/new")
@ui_page
async def new(request: Request) -> Response:
    """The create form, with the event names seen so far offered."""
    viewer = await viewer_of(request)
    destinations = await run_in_threadpool(_destinations, request, viewer)
    names = await run_in_threadpool(_event_names, request, viewer)
    defaults = {
        "frequency": "every_15_minutes",
        "events": "all",
        "user_attributes": "all",
        "device_attributes": "on",
        "format": "jsonl",
        "compression": "gzip",
        "layout": "moengage",
        "start": "now",
    }
    return _new_page(request, viewer, FormState(values=defaults), destinations, names)


@router.get("/path")
@ui_page
async def path_preview(
    request: Request,
    name: str = "",
    destination_id: str = "",
    frequency: str = "every_15_minutes",
    format: str = "jsonl",
    compression: str = "gzip",
    pgp: str = "",
    layout: str = "moengage",
) -> Response:
    """The exact path of the first file, for the create form to show as it is typed."""
    viewer = await viewer_of(request)
    destinations = await run_in_threadpool(_destinations, request, viewer)
    found = next((d for d in destinations if d.id == destination_id), None)
    if frequency == "stream" or (found and registry.capabilities(found.kind).stream):
        return JSONResponse({"path": None, "stream": True})
    if frequency not in {f.value for f in Frequency} or format not in dict(FORMATS):
        return JSONResponse({"path": None, "stream": False})
    if compression not in dict(COMPRESSIONS):
        compression = "gzip"
    folder = str(found.config.get("folder") or "") if found else ""
    return JSONResponse(
        {
            "path": output_path(
                folder, name.strip(), frequency, format, compression, bool(pgp), layout
            ),
            "stream": False,
        }
    )


def _list(text: str) -> list[str]:
    """Names typed one a line or separated by commas."""
    return [part.strip() for part in text.replace(",", "\n").split("\n") if part.strip()]


def _start(values: dict[str, str], state: FormState) -> int | str:
    choice = values.get("start", "now")
    if choice in ("now", "retention"):
        return choice
    typed = values.get("start_date", "").strip()
    try:
        day = dt.date.fromisoformat(typed)
    except ValueError:
        state.errors["start_date"] = "Enter a date as YYYY-MM-DD (UTC), e.g. 2026-11-01."
        return "now"
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _body(values: dict[str, str], state: FormState) -> dict[str, Any]:
    """The ``ExportIn`` fields of a posted create form."""
    chosen = [values[k] for k in sorted(values) if k.startswith("ev.")] + _list(
        values.get("event_names_other", "")
    )
    events: Any = "all"
    if values.get("events") == "chosen":
        events = list(dict.fromkeys(chosen))
        if not events:
            state.errors["events"] = "Tick at least one event name, or choose All events."
    attributes: Any = values.get("user_attributes", "all")
    if attributes == "chosen":
        attributes = _list(values.get("user_attribute_names", ""))
        if not attributes:
            state.errors["user_attribute_names"] = (
                "Type the attribute names to keep, or choose All or None."
            )
    if not values.get("name", "").strip():
        state.errors["name"] = "Give the export a name, e.g. events."
    return {
        "name": values.get("name", "").strip(),
        "destination_id": values.get("destination_id", ""),
        "frequency": values.get("frequency", "every_15_minutes"),
        "events": events,
        "user_attributes": attributes,
        "device_attributes": values.get("device_attributes") in ("on", "true"),
        "format": values.get("format", "jsonl"),
        "compression": values.get("compression", "gzip"),
        "layout": values.get("layout", "moengage"),
        "pgp_public_key": values.get("pgp_public_key", "").strip() or None,
        "start": _start(values, state),
    }


_FIELD_OF = {"user_attributes": "user_attribute_names", "events": "events"}


def _pydantic_into(exc: ValidationError, state: FormState) -> None:
    """Each schema error beside the input it concerns."""
    for err in exc.errors():
        where = str(err["loc"][0]) if err["loc"] else ""
        message = str(err["msg"]).removeprefix("Value error, ")
        target = _FIELD_OF.get(where, where)
        if target in {
            "name",
            "destination_id",
            "frequency",
            "format",
            "compression",
            "layout",
            "pgp_public_key",
            "events",
            "user_attribute_names",
            "start_date",
        }:
            state.errors.setdefault(target, message)
        else:
            state.error = f"{where}: {message}"


def _kept(values: dict[str, str]) -> dict[str, str]:
    """The typed values shown again (ticked names gathered into one value)."""
    shown = {k: v for k, v in values.items() if k != "csrf" and not k.startswith("ev.")}
    shown["event_names_chosen"] = "\n".join(v for k, v in values.items() if k.startswith("ev."))
    return shown


@router.post("/new")
@ui_page
async def create(request: Request) -> Response:
    """Create the export (the server checks everything the API checks)."""
    viewer, values = await posted(request)
    viewer.require("write")
    context = session.context_of(request)
    state = FormState(values=_kept(values))
    body = _body(values, state)
    destinations = await run_in_threadpool(_destinations, request, viewer)
    names = await run_in_threadpool(_event_names, request, viewer)
    if state.errors:
        state.error = "Not created: fix what is marked below."
        return _new_page(request, viewer, state, destinations, names, status=422)
    try:
        checked = ExportIn.model_validate(body)
        export = await run_in_threadpool(
            service.create,
            context.engine,
            viewer.actor,
            checked,
            retention_days=context.settings.retention_days,
        )
    except ValidationError as exc:
        _pydantic_into(exc, state)
    except InputError as exc:
        field = getattr(exc, "field", None)
        target = "start_date" if field == "start" else field
        if target in (None, "destination_id") and "already writes there" in str(exc):
            target = "name"
        if target:
            state.errors[target] = getattr(exc, "reason", str(exc))
        else:
            state.error = str(exc)
    else:
        return RedirectResponse(f"/exports/{export.id}?done=created", 303)
    state.error = state.error or "Not created: fix what is marked below."
    return _new_page(request, viewer, state, destinations, names, status=422)


# --- One export --------------------------------------------------------------------------


def _short(seconds: int) -> str:
    return time.strftime("%d %b %H:%M", time.gmtime(seconds))


def _window(run: Run, frequency: str) -> str:
    """What a run covered, short enough for a table cell (times UTC)."""
    if run.kind == "backfill" and run.range_start_ms is not None and run.range_end_ms:
        return f"Backfill {_short(run.range_start_ms // 1000)} → {_short(run.range_end_ms // 1000)}"
    if run.kind == "manual":
        return f"Run now, {_short(run.window_end)}"
    length = Frequency(frequency).seconds if frequency in {f.value for f in Frequency} else 0
    return f"{_short(run.window_end - length)} → {_short(run.window_end)}"


def _run_row(run: Run, frequency: str) -> dict[str, Any]:
    shown = views.run(run)
    shown.update(
        window=_window(run, frequency),
        size=size(run.bytes),
        took=duration(run.duration_ms),
        files=list(run.files),
    )
    return shown


def chart(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Bars of events per run (oldest on the left), laid out here so the page only draws."""
    shown = [r for r in reversed(runs[:CHART_RUNS]) if r["status"] in ("succeeded", "failed")]
    if not shown:
        return None
    width, height, gap = 600, 120, 4
    top = max(max(r["events"] for r in shown), 1)
    bar = min(max((width - gap * (len(shown) - 1)) / len(shown), 2), 40)
    bars = []
    for i, r in enumerate(shown):
        tall = 0 if r["status"] == "failed" else max(round(r["events"] / top * (height - 4)), 1)
        bars.append(
            {
                "x": round(i * (bar + gap), 1),
                "y": height - tall,
                "w": round(bar, 1),
                "h": tall,
                "failed": r["status"] == "failed",
                "title": f"{r['window']}: {r['events']:,} events"
                + (" (failed)" if r["status"] == "failed" else ""),
            }
        )
    total = sum(r["events"] for r in shown)
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "top": top,
        "label": f"Events per run, last {len(shown)} runs: {total:,} in all, at most "
        f"{top:,} in one run",
    }


async def _load(request: Request, viewer: Viewer, export_id: str) -> dict[str, Any]:
    engine = _engine(request)

    def load() -> dict[str, Any]:
        export = service.get(engine, viewer.principal.project_id, export_id)
        shown = views.export(engine, export)
        with engine.connect() as conn:
            destination = catalog.destination(
                conn, viewer.principal.project_id, export.destination_id
            )
            found = run_store.list_runs(conn, export_id, limit=100)
        shown["runs"] = [_run_row(r, export.frequency) for r in found]
        shown["chart"] = chart(shown["runs"])
        shown["busy"] = any(r["status"] in ("queued", "running") for r in shown["runs"])
        shown["destination"] = None
        if destination is not None:
            dest = views.destination(destination)
            dest["location"] = location(dest)
            dest["title"] = (
                kinds.FORMS[dest["kind"]].title if dest["kind"] in kinds.FORMS else dest["kind"]
            )
            dest["fix"] = fix_for_destination(dest) if dest["status"] == "failing" else None
            shown["destination"] = dest
        shown["is_stream"] = export.is_stream
        shown["pgp_set"] = bool(export.settings.pgp_public_key)
        return shown

    return await run_in_threadpool(load)


def _export_page(
    request: Request,
    viewer: Viewer,
    export: dict[str, Any],
    *,
    done: str | None = None,
    problem: str | None = None,
    backfill: FormState | None = None,
    status: int = 200,
) -> Response:
    today = dt.datetime.now(dt.UTC).date()
    return render.page(
        request,
        "export.html",
        viewer,
        status=status,
        export=export,
        done=done,
        problem=problem,
        backfill=backfill
        or FormState(
            values={
                "start": (today - dt.timedelta(days=1)).isoformat(),
                "end": today.isoformat(),
            }
        ),
    )


@router.get("/{export_id}")
@ui_page
async def show(request: Request, export_id: str, done: str = "") -> Response:
    """An export: status, path, actions, runs and the events-per-run chart."""
    viewer = await viewer_of(request)
    export = await _load(request, viewer, export_id)
    return _export_page(request, viewer, export, done=DONE.get(done))


async def _refused(request: Request, viewer: Viewer, export_id: str, exc: InputError) -> Response:
    export = await _load(request, viewer, export_id)
    reason = getattr(exc, "reason", None) or str(exc)
    return _export_page(request, viewer, export, problem=f"Not done: {reason}", status=409)


@router.post("/{export_id}/run")
@ui_page
async def run_now(request: Request, export_id: str) -> Response:
    """Queue a run of everything received so far; wake the in-process worker if any."""
    viewer, _ = await posted(request)
    viewer.require("write")
    context = session.context_of(request)
    try:
        await run_in_threadpool(service.run_now, context.engine, viewer.actor, export_id)
    except InputError as exc:
        if isinstance(exc, OWN_PAGE):
            raise
        return await _refused(request, viewer, export_id, exc)
    context.wake()
    return RedirectResponse(f"/exports/{export_id}?done=ran", 303)


def _epoch_day(text: str) -> int | None:
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        return None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@router.post("/{export_id}/backfill")
@ui_page
async def backfill(request: Request, export_id: str) -> Response:
    """Queue a backfill of a past range of days (UTC, end day included)."""
    viewer, values = await posted(request)
    viewer.require("write")
    context = session.context_of(request)
    state = FormState(values={k: values.get(k, "") for k in ("start", "end")})
    start, end = _epoch_day(state.value("start")), _epoch_day(state.value("end"))
    if start is None:
        state.errors["start"] = "Enter the first day as YYYY-MM-DD."
    if end is None:
        state.errors["end"] = "Enter the last day as YYYY-MM-DD."
    if start is not None and end is not None and end < start:
        state.errors["end"] = "The last day must be on or after the first day."
    if not state.errors and start is not None and end is not None:
        try:
            body = BackfillIn(start=start, end=end + 86_400)  # the last day is included
            await run_in_threadpool(
                service.backfill,
                context.engine,
                viewer.actor,
                export_id,
                body,
                context.settings.retention_days,
            )
        except ValidationError as exc:
            state.error = "; ".join(str(e["msg"]) for e in exc.errors())
        except InputError as exc:
            if isinstance(exc, OWN_PAGE):
                raise
            state.error = str(exc)
        else:
            context.wake()
            return RedirectResponse(f"/exports/{export_id}?done=backfill", 303)
    export = await _load(request, viewer, export_id)
    return _export_page(request, viewer, export, backfill=state, status=422)


@router.post("/{export_id}/status")
@ui_page
async def set_status(request: Request, export_id: str) -> Response:
    """Enable or disable the export."""
    viewer, values = await posted(request)
    viewer.require("write")
    wanted = "active" if values.get("status") == "active" else "disabled"
    try:
        await run_in_threadpool(
            service.update,
            _engine(request),
            viewer.actor,
            export_id,
            ExportPatch(status=wanted),
        )
    except InputError as exc:
        if isinstance(exc, OWN_PAGE):
            raise
        return await _refused(request, viewer, export_id, exc)
    done = "enabled" if wanted == "active" else "disabled"
    return RedirectResponse(f"/exports/{export_id}?done={done}", 303)


@router.get("/{export_id}/delete")
@ui_page
async def confirm_delete(request: Request, export_id: str) -> Response:
    """Ask before deleting."""
    viewer = await viewer_of(request)
    export = await _load(request, viewer, export_id)
    return render.page(request, "export_delete.html", viewer, export=export)


@router.post("/{export_id}/delete")
@ui_page
async def delete(request: Request, export_id: str) -> Response:
    """Delete the export; its run history stays readable through the API."""
    viewer, _ = await posted(request)
    viewer.require("write")
    await run_in_threadpool(service.delete, _engine(request), viewer.actor, export_id)
    return RedirectResponse("/exports?done=deleted", 303)
