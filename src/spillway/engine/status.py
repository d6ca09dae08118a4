"""An export's state (active ↔ failing), shared by file exports and streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from spillway.store import catalog

Notify = Callable[[dict[str, Any], str, str | None], None]


def change_state(
    engine: Engine, export: dict[str, Any], status: str, reason: str | None, notify: Notify | None
) -> None:
    """Record the export's new state; the webhook hears of it once per change."""
    values: dict[str, Any] = {"status": status, "status_reason": reason}
    if status == "active":
        values["next_attempt_at"] = None
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_export(conn, export["id"], values)
    previous, export["status"] = export["status"], status
    if notify is not None and previous != status:
        notify(export, status, reason)
