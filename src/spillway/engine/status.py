"""An export's state (active ↔ failing), shared by file exports and streams; and what an
export's writes tell about its destination's state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection, Engine

from spillway.destinations.base import CredentialsRejected
from spillway.engine.targets import CredentialsUnreadable
from spillway.errors import InputError, TerminalError
from spillway.model import Destination, Export
from spillway.store import catalog
from spillway.store.db import now_ms, write
from spillway.store.projects import record_audit

log = logging.getLogger(__name__)
Notify = Callable[[Export, str, str | None], None]


def change_state(
    engine: Engine, export: Export, status: str, reason: str | None, notify: Notify | None
) -> None:
    """Record the export's new state; the webhook hears of it once per change (``export`` is
    as it was read before the change)."""
    values: dict[str, Any] = {"status": status, "status_reason": reason}
    if status == "active":
        values["next_attempt_at"] = None
    with write(engine) as conn:
        catalog.update_export(conn, export.id, values)
    if notify is not None and export.status != status:
        notify(export, status, reason)


def about_destination(exc: BaseException) -> bool:
    """Whether a failure is the destination's, not only this export's: its credentials were
    refused, or this server cannot decrypt them. Every export using it meets the same."""
    return isinstance(exc, CredentialsRejected | CredentialsUnreadable)


def _record_destination(
    conn: Connection, row: Destination, export: Export, ok: bool, check: dict[str, str]
) -> None:
    """Store what an export found about its destination, where a validation keeps its checks
    (``last_validation``), and audit the change of state."""
    status = "active" if ok else "failing"
    last = {"ok": ok, "at": now_ms(), "source": "export", "export_id": export.id}
    catalog.update_destination(
        conn, row.id, {"status": status, "last_validation": {**last, "checks": [check]}}
    )
    record_audit(
        conn,
        actor="worker",
        action=f"destination.{status}",
        project_id=row.project_id,
        target=row.id,
        detail={"export_id": export.id},
    )


def destination_failing(
    engine: Engine, destination: Destination, export: Export, reason: str
) -> None:
    """An export found the destination's credentials refused: the destination turns
    ``failing``, with the reason recorded where a validation records its checks
    (``last_validation``), until a write succeeds or a validation passes."""
    check = {"name": "credentials", "status": "failed", "message": reason}
    with write(engine) as conn:
        row = catalog.destination_by_id(conn, destination.id)
        if row is None:
            return
        known = (row.last_validation or {}).get("checks") or []
        if row.status == "failing" and check in known:
            return  # already says so: leave it (and its clients) alone
        _record_destination(conn, row, export, False, check)
    log.warning("destination %s is failing: export %s: %s", row.id, export.id, reason)


def destination_works(engine: Engine, destination: Destination, export: Export) -> None:
    """An export wrote to the destination: if it was ``failing`` when the pass read it, it is
    ``active`` again."""
    if destination.status != "failing":
        return
    message = f"export {export.name!r} delivered to it"
    with write(engine) as conn:
        row = catalog.destination_by_id(conn, destination.id)
        if row is None or row.status != "failing":
            return
        _record_destination(
            conn, row, export, True, {"name": "write", "status": "passed", "message": message}
        )
    log.info("destination %s is active again: export %s delivered to it", row.id, export.id)


def destination_gone(engine: Engine, export: Export) -> str:
    """Why an export whose destination was deleted cannot run, and what to do instead."""
    with engine.connect() as conn:
        row = catalog.destination_with_history(conn, export.destination_id)
    name = f"{row.name!r} ({export.destination_id})" if row else export.destination_id
    return (
        f"its destination {name} was deleted, so this export has nowhere to deliver: create a "
        "new export on a live destination (the events are still in the store), then delete "
        "this one"
    )


def unopenable(destination: Destination, exc: Exception) -> str:
    """Why a destination cannot be opened, said so a person knows what to change."""
    if isinstance(exc, TerminalError):
        return str(exc)
    path = f"/api/v1/destinations/{destination.id}"
    if isinstance(exc, InputError):  # stored settings this version (or the operator) refuses
        return (
            f"destination {destination.name!r} cannot be opened: {exc}. Correct it with "
            f"PATCH {path} (or its credentials with PUT {path}/credentials)"
        )
    return (
        f"destination {destination.name!r} cannot be opened: internal error "
        f"({type(exc).__name__}: {exc}); Spillway retries by itself. If it persists, report it "
        "with the server's log"
    )


def internal_error(exc: Exception) -> str:
    """The reason an export shows for an error nobody foresaw."""
    return (
        f"internal error ({type(exc).__name__}: {exc}); Spillway retries by itself. If it "
        "persists, report it with the server's log"
    )
