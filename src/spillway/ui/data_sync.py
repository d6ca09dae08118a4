"""Settings > Data Sync: destinations and exports at a glance, connect, manage, delete.

Every change goes through ``services.destinations``, as the API's does; the server refuses a
key without write scope whatever the page showed.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from spillway import destinations as registry
from spillway.api import views
from spillway.destinations.base import Check, all_passed
from spillway.errors import Conflict, InputError, Invalid, NotFound
from spillway.services import destinations as service
from spillway.services.destinations import ValidationFailed
from spillway.store import catalog
from spillway.ui import kinds, render, session
from spillway.ui.guard import posted, ui_page, viewer_of
from spillway.ui.kinds import KindForm
from spillway.ui.render import FormState
from spillway.ui.session import Viewer

router = APIRouter(prefix="/data-sync", include_in_schema=False)

# Messages after a redirect, by a fixed code: nothing from the query string is shown as is.
DONE = {
    "created": "Destination created. Create an export to start delivering files to it.",
    "updated": "Destination updated and validated.",
    "rotated": "New credentials validated and saved; the old ones are no longer used.",
    "validated": "Validation finished: see the checks below.",
    "deleted": "Destination deleted. The exports that used it are stopped.",
}
# Which field a failed check is about, to show its message beside that input.
_CHECK_FIELDS = {
    "credentials": "credentials",
    "role": "credentials.role_arn",
    "external_id": "credentials.role_arn",
    "bucket": "config.bucket",
    "container": "config.container",
    "stream": "config.stream",
}


def _form(kind: str) -> KindForm:
    form = kinds.FORMS.get(kind)
    if form is None:
        raise NotFound(f"no destination kind {kind!r}; choose one of the tiles")
    return form


def _local_allowed(request: Request) -> bool:
    return session.context_of(request).settings.local_root is not None


def fix_for_destination(row: dict[str, Any]) -> str:
    """What to do about a failing destination."""
    return (
        "Fix what the failed check says in your cloud account (the policy, the bucket, or the "
        "key), then open Manage destination and choose Validate again — or rotate the "
        "credentials if the key was replaced or revoked. Its exports catch up by themselves "
        "once it passes; no data is lost meanwhile."
    )


def fix_for_export(export: dict[str, Any], failing_destinations: set[str]) -> str:
    """What to do about a failing export."""
    if export["destination_id"] in failing_destinations:
        return "Its destination is failing: fix the destination (above) and this export resumes."
    return (
        "Fix what the reason says; Spillway retries every few minutes and delivers everything "
        "since the last success, so nothing is lost while it waits."
    )


@router.get("")
@ui_page
async def overview(request: Request, done: str = "") -> Response:
    """Destinations and exports with status, last delivery and next run."""
    viewer = await viewer_of(request)
    engine = session.context_of(request).engine

    def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with engine.connect() as conn:
            rows = catalog.list_destinations(conn, viewer.principal.project_id)
            exports = catalog.list_exports(conn, viewer.principal.project_id)
        return [views.destination(r) for r in rows], views.exports(engine, exports)

    destinations, exports = await run_in_threadpool(load)
    failing = {d["id"] for d in destinations if d["status"] == "failing"}
    names = {d["id"]: d["name"] for d in destinations}
    for d in destinations:
        d["title"] = kinds.FORMS[d["kind"]].title if d["kind"] in kinds.FORMS else d["kind"]
        d["location"] = location(d)
        d["credentials_label"] = kinds.mode_label(d["credentials"])
        d["fix"] = fix_for_destination(d) if d["status"] == "failing" else None
        d["exports"] = [e for e in exports if e["destination_id"] == d["id"]]
    for e in exports:
        e["destination_name"] = names.get(e["destination_id"], "(deleted destination)")
        e["fix"] = fix_for_export(e, failing) if e["status"] == "failing" else None
    return render.page(
        request,
        "data_sync.html",
        viewer,
        destinations=destinations,
        exports=exports,
        done=DONE.get(done),
    )


def location(destination: dict[str, Any]) -> str:
    """Where a destination writes, as a person would write it (s3://bucket/folder)."""
    config = destination["config"]
    scheme = {"s3": "s3://", "gcs": "gs://", "azure_blob": "azure://", "local": "folder: "}
    target = (
        config.get("bucket")
        or config.get("container")
        or config.get("stream")
        or config.get("delivery_stream")
        or config.get("path")
        or ""
    )
    folder = config.get("folder") or ""
    base = scheme.get(destination["kind"], "") + str(target)
    return f"{base}/{folder}" if folder else base


@router.get("/connect")
@ui_page
async def tiles(request: Request) -> Response:
    """Connect to destination: one tile per kind."""
    viewer = await viewer_of(request)
    return render.page(
        request, "connect.html", viewer, forms=kinds.offered(_local_allowed(request))
    )


def _connect_page(
    request: Request,
    viewer: Viewer,
    form: KindForm,
    state: FormState,
    *,
    checks: list[Check] | None = None,
    sealed: str = "",
    status: int = 200,
) -> Response:
    features = {
        f.key: state.value(f.name) in ("on", "true", "1") for f in form.visible(group="features")
    }
    policy = (
        kinds.s3_policy(
            state.value("config.bucket"),
            state.value("config.folder").strip("/"),
            features,
            state.value("config.kms_key_arn") if state.value("config.sse") == "aws:kms" else "",
        )
        if form.policy
        else ""
    )
    return render.page(
        request,
        "connect_form.html",
        viewer,
        status=status,
        form=form,
        state=state,
        mode=kinds.mode_of(form, state.values),
        checks=[c.as_dict() for c in checks or []],
        validated_ok=bool(checks) and all_passed(checks or []),
        sealed=sealed,
        policy=policy,
        external_id=viewer.project.external_id,
    )


@router.get("/connect/{kind}")
@ui_page
async def connect_form(request: Request, kind: str) -> Response:
    """The form of one kind."""
    viewer = await viewer_of(request)
    form = _form(kind)
    if kind == "local" and not _local_allowed(request):
        raise NotFound("the operator has not allowed local folders (SPILLWAY_LOCAL_ROOT)")
    defaults = {f.name: f.default for f in form.fields if f.default}
    return _connect_page(request, viewer, form, FormState(values=defaults))


def place(form_fields: list[str], exc: InputError, state: FormState) -> None:
    """Put an error message next to the field it names, or on the form as a whole."""
    field = getattr(exc, "field", None)
    parts = [p.strip() for p in str(exc).split("; ") if p.strip()] if not field else [str(exc)]
    for part in parts:
        target = _field_named(form_fields, field or part)
        if target and target not in state.errors:
            state.errors[target] = part.removeprefix(f"{target}: ")
        else:
            state.error = f"{state.error}; {part}" if state.error else part


def _field_named(form_fields: list[str], text: str) -> str | None:
    head = text.split(":", 1)[0].strip()
    if head in form_fields:
        return head
    for name in form_fields:  # "config: bucket 'X' is not valid" names the key in the text
        key = name.split(".", 1)[1]
        if head in ("config", "credentials") and re.search(rf"\b{re.escape(key)}\b", text):
            return name
    return None


def _secrets_of(form: KindForm, values: dict[str, str]) -> dict[str, str]:
    return {f.name: values[f.name] for f in form.fields if f.secret and values.get(f.name)}


def _shown(form: KindForm, values: dict[str, str]) -> dict[str, str]:
    """The typed values a page may show again: everything but secrets and the token."""
    hidden = {f.name for f in form.fields if f.secret} | {"csrf", "sealed", "action"}
    return {k: v for k, v in values.items() if k not in hidden}


def _checks_into_fields(form: KindForm, checks: list[Check], state: FormState, mode: str) -> None:
    names = {f.name for f in form.fields if not f.modes or mode in f.modes}
    for check in checks:
        if check.status.value != "failed":
            continue
        target = _CHECK_FIELDS.get(check.name)
        if target == "credentials":
            target = next(
                (n for n in ("credentials.secret_access_key", "credentials.csv") if n in names),
                next((n for n in names if n.startswith("credentials.")), None),
            )
        if target and target in names and target not in state.errors:
            state.errors[target] = f"The {check.name} check failed: {check.message}"


@router.post("/connect/{kind}")
@ui_page
async def connect(request: Request, kind: str) -> Response:
    """Validate, or create (which validates again on the server)."""
    viewer, values = await posted(request)
    form = _form(kind)
    viewer.require("write")
    context = session.context_of(request)
    typed = _secrets_of(form, values)
    kept = session.open_for(viewer, context.box, values.get("sealed", "")) or {}
    merged = {**values, **{k: v for k, v in kept.items() if k not in typed}, **typed}
    secrets = _secrets_of(form, merged)
    sealed = session.seal_for(viewer, context.box, secrets) if secrets else ""
    state = FormState(values=_shown(form, values))
    field_names = [f.name for f in form.fields] + ["name"]
    name = values.get("name", "").strip()
    if not name:
        state.errors["name"] = "Give the destination a name, e.g. warehouse."
    try:
        body = kinds.to_body(form, merged)
    except Invalid as exc:
        place(field_names, exc, state)
        return _connect_page(request, viewer, form, state, sealed=sealed, status=422)
    mode = kinds.mode_of(form, merged)
    try:
        if values.get("action") == "create" and name:
            await run_in_threadpool(
                service.create, context.engine, context.box, viewer.actor, {**body, "name": name}
            )
            return RedirectResponse("/data-sync?done=created", 303)
        checks = await run_in_threadpool(
            service.check,
            context.engine,
            viewer.principal.project_id,
            kind,
            body["config"],
            body["credentials"],
            body["features"],
        )
    except ValidationFailed as exc:
        _checks_into_fields(form, exc.checks, state, mode)
        state.error = "Nothing was saved: fix what the failed checks say, then Validate again."
        return _connect_page(
            request,
            viewer,
            form,
            state,
            checks=exc.checks,
            sealed=_kept(sealed, exc.checks),
            status=422,
        )
    except (Invalid, Conflict, InputError) as exc:
        place(field_names, exc, state)
        if isinstance(exc, Conflict):
            state.errors["name"] = str(exc)
        return _connect_page(request, viewer, form, state, sealed=sealed, status=422)
    _checks_into_fields(form, checks, state, mode)
    if not all_passed(checks):
        state.error = "Fix what the failed checks say, then Validate again."
    return _connect_page(request, viewer, form, state, checks=checks, sealed=_kept(sealed, checks))


def _kept(sealed: str, checks: list[Check]) -> str:
    """Keep typed secrets (sealed) across a Validate, unless the credentials were what failed:
    then the field is empty again, so the person types the right one."""
    refused = any(c.name == "credentials" and c.status.value == "failed" for c in checks)
    return "" if refused else sealed


# --- Manage destination --------------------------------------------------------------------


async def _load(request: Request, viewer: Viewer, destination_id: str) -> dict[str, Any]:
    engine = session.context_of(request).engine
    row = await run_in_threadpool(service.get, engine, viewer.principal.project_id, destination_id)
    shown = views.destination(row)
    shown["location"] = location(shown)
    shown["credentials_label"] = kinds.mode_label(shown["credentials"])
    shown["fix"] = fix_for_destination(shown) if shown["status"] == "failing" else None
    return shown


def _manage_page(
    request: Request,
    viewer: Viewer,
    destination: dict[str, Any],
    *,
    update: FormState | None = None,
    rotate: FormState | None = None,
    checks: list[Check] | None = None,
    done: str | None = None,
    status: int = 200,
) -> Response:
    form = kinds.FORMS[destination["kind"]]
    editable = [
        f
        for f in form.fields
        if f.group == "config"
        and f.key in form.updatable
        and f.key in registry.capabilities(destination["kind"]).updatable
    ]
    current = {f"config.{k}": str(v) for k, v in destination["config"].items() if v is not None}
    rotate_state = rotate or FormState(
        values={"credentials.mode": str(destination["credentials"].get("mode", ""))}
    )
    return render.page(
        request,
        "manage.html",
        viewer,
        status=status,
        destination=destination,
        form=form,
        editable=editable,
        update=update or FormState(values=current),
        rotate=rotate_state,
        mode=kinds.mode_of(form, rotate_state.values),
        checks=[c.as_dict() for c in checks] if checks is not None else None,
        last_checks=(destination.get("last_validation") or {}).get("checks") or [],
        done=done,
        external_id=viewer.project.external_id,
    )


@router.get("/destinations/{destination_id}")
@ui_page
async def manage(request: Request, destination_id: str, done: str = "") -> Response:
    """Manage destination: update where it writes, rotate credentials, delete."""
    viewer = await viewer_of(request)
    destination = await _load(request, viewer, destination_id)
    return _manage_page(request, viewer, destination, done=DONE.get(done))


@router.post("/destinations/{destination_id}/update")
@ui_page
async def update(request: Request, destination_id: str) -> Response:
    """Change bucket, folder or region; the service re-validates before saving."""
    viewer, values = await posted(request)
    viewer.require("write")
    context = session.context_of(request)
    destination = await _load(request, viewer, destination_id)
    form = kinds.FORMS[destination["kind"]]
    changes = {
        f.key: values.get(f.name, "").strip()
        for f in form.fields
        if f.group == "config" and f.key in form.updatable and f.name in values
    }
    state = FormState(values=_shown(form, values))
    try:
        await run_in_threadpool(
            service.update,
            context.engine,
            context.box,
            viewer.actor,
            destination_id,
            {"config": changes},
        )
    except ValidationFailed as exc:
        state.error = "The change was not saved: validation failed (see the checks)."
        _checks_into_fields(form, exc.checks, state, "")
        return _manage_page(
            request, viewer, destination, update=state, checks=exc.checks, status=422
        )
    except InputError as exc:
        place([f"config.{k}" for k in changes], exc, state)
        return _manage_page(request, viewer, destination, update=state, status=422)
    return RedirectResponse(f"/data-sync/destinations/{destination_id}?done=updated", 303)


@router.post("/destinations/{destination_id}/validate")
@ui_page
async def revalidate(request: Request, destination_id: str) -> Response:
    """Run the checks of the stored destination again (after fixing a policy, say)."""
    viewer, _ = await posted(request)
    viewer.require("write")
    context = session.context_of(request)
    await run_in_threadpool(
        service.validate_stored, context.engine, context.box, viewer.actor, destination_id
    )
    return RedirectResponse(f"/data-sync/destinations/{destination_id}?done=validated", 303)


@router.post("/destinations/{destination_id}/credentials")
@ui_page
async def rotate(request: Request, destination_id: str) -> Response:
    """Validate new credentials and swap them in; the old ones stay if a check fails."""
    viewer, values = await posted(request)
    viewer.require("write")
    context = session.context_of(request)
    destination = await _load(request, viewer, destination_id)
    form = kinds.FORMS[destination["kind"]]
    state = FormState(values=_shown(form, values))
    mode = kinds.mode_of(form, values)
    try:
        credentials = kinds.to_body(form, values)["credentials"]
        await run_in_threadpool(
            service.rotate, context.engine, context.box, viewer.actor, destination_id, credentials
        )
    except ValidationFailed as exc:
        state.error = "The new credentials were not saved; the old ones stay in use."
        _checks_into_fields(form, exc.checks, state, mode)
        return _manage_page(
            request, viewer, destination, rotate=state, checks=exc.checks, status=422
        )
    except InputError as exc:
        place([f.name for f in form.fields if f.group == "credentials"], exc, state)
        return _manage_page(request, viewer, destination, rotate=state, status=422)
    return RedirectResponse(f"/data-sync/destinations/{destination_id}?done=rotated", 303)


@router.get("/destinations/{destination_id}/delete")
@ui_page
async def confirm_delete(request: Request, destination_id: str) -> Response:
    """Ask before deleting, naming the exports the deletion stops."""
    viewer = await viewer_of(request)
    destination = await _load(request, viewer, destination_id)
    engine = session.context_of(request).engine

    def using() -> list[Any]:
        with engine.connect() as conn:
            return catalog.exports_using(conn, destination_id)

    exports = await run_in_threadpool(using)
    return render.page(request, "delete.html", viewer, destination=destination, exports=exports)


@router.post("/destinations/{destination_id}/delete")
@ui_page
async def delete(request: Request, destination_id: str) -> Response:
    """Delete the destination; every export using it is disabled."""
    viewer, _ = await posted(request)
    viewer.require("write")
    engine = session.context_of(request).engine
    await run_in_threadpool(service.delete, engine, viewer.actor, destination_id)
    return RedirectResponse("/data-sync?done=deleted", 303)
