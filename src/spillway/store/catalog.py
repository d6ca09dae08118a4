"""Named queries for destinations and exports."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from spillway.errors import Conflict
from spillway.model import Destination, Export
from spillway.store.db import now_ms, unique_violation
from spillway.store.schema import destinations, exports

# Live names are unique by index (migration 0006): a request that lost the race to another
# creating the same name gets a 409, like one that found the name taken before it started.
DESTINATION_NAME = next(
    i for i in destinations.indexes if i.name == "uq_destinations_project_id_name"
)
EXPORT_NAME = next(i for i in exports.indexes if i.name == "uq_exports_destination_id_name")


def _destination_taken(name: object) -> Conflict:
    return Conflict(f"a destination named {name!r} already exists")


def insert_destination(conn: Connection, values: dict[str, Any]) -> None:
    """Store a new destination (credentials already sealed)."""
    now = now_ms()
    try:
        conn.execute(destinations.insert().values(created_at=now, updated_at=now, **values))
    except IntegrityError as exc:
        if unique_violation(exc, DESTINATION_NAME):
            raise _destination_taken(values.get("name")) from None
        raise


def destination(conn: Connection, project_id: int, destination_id: str) -> Destination | None:
    """A live destination of the project, or None."""
    row = conn.execute(
        sa.select(destinations).where(
            destinations.c.id == destination_id,
            destinations.c.project_id == project_id,
            destinations.c.deleted_at.is_(None),
        )
    ).first()
    return None if row is None else Destination.from_row(row)


def destination_by_name(conn: Connection, project_id: int, name: str) -> Destination | None:
    """A live destination of the project with this name."""
    row = conn.execute(
        sa.select(destinations).where(
            destinations.c.name == name,
            destinations.c.project_id == project_id,
            destinations.c.deleted_at.is_(None),
        )
    ).first()
    return None if row is None else Destination.from_row(row)


def list_destinations(conn: Connection, project_id: int) -> list[Destination]:
    """The project's live destinations, oldest first."""
    rows = conn.execute(
        sa.select(destinations)
        .where(destinations.c.project_id == project_id, destinations.c.deleted_at.is_(None))
        .order_by(destinations.c.created_at, destinations.c.id)
    )
    return [Destination.from_row(row) for row in rows]


def update_destination(conn: Connection, destination_id: str, values: dict[str, Any]) -> None:
    """Change columns of a destination."""
    try:
        conn.execute(
            destinations.update()
            .where(destinations.c.id == destination_id)
            .values(updated_at=now_ms(), **values)
        )
    except IntegrityError as exc:
        if unique_violation(exc, DESTINATION_NAME):
            raise _destination_taken(values.get("name")) from None
        raise


def delete_destination(conn: Connection, destination_id: str) -> None:
    """Mark a destination deleted (rows stay for the history of its exports)."""
    now = now_ms()
    conn.execute(
        destinations.update()
        .where(destinations.c.id == destination_id)
        .values(deleted_at=now, updated_at=now, status="deleted")
    )


def exports_using(conn: Connection, destination_id: str) -> list[Export]:
    """Live exports writing to a destination."""
    rows = conn.execute(
        sa.select(exports).where(
            exports.c.destination_id == destination_id, exports.c.deleted_at.is_(None)
        )
    )
    return [Export.from_row(row) for row in rows]


def disable_exports(conn: Connection, ids: list[str], reason: str) -> None:
    """Stop exports (they keep their cursor, so re-enabling loses nothing)."""
    if ids:
        conn.execute(
            exports.update()
            .where(exports.c.id.in_(ids))
            .values(status="disabled", status_reason=reason, updated_at=now_ms())
        )


def retry_exports_now(conn: Connection, destination_id: str) -> None:
    """Clear the back-off of the destination's exports: a fix should show without waiting."""
    conn.execute(
        exports.update()
        .where(exports.c.destination_id == destination_id, exports.c.status != "disabled")
        .values(next_attempt_at=None)
    )


def insert_export(conn: Connection, values: dict[str, Any]) -> None:
    """Store a new export."""
    now = now_ms()
    try:
        conn.execute(exports.insert().values({"created_at": now, "updated_at": now, **values}))
    except IntegrityError as exc:
        if unique_violation(exc, EXPORT_NAME):
            raise Conflict(f"an export named {values.get('name')!r} already writes there") from None
        raise


def export(conn: Connection, project_id: int, export_id: str) -> Export | None:
    """A live export of the project, or None."""
    row = conn.execute(
        sa.select(exports).where(
            exports.c.id == export_id,
            exports.c.project_id == project_id,
            exports.c.deleted_at.is_(None),
        )
    ).first()
    return None if row is None else Export.from_row(row)


def export_with_history(conn: Connection, project_id: int, export_id: str) -> Export | None:
    """An export of the project, live or deleted (a deleted one keeps its run history)."""
    row = conn.execute(
        sa.select(exports).where(exports.c.id == export_id, exports.c.project_id == project_id)
    ).first()
    return None if row is None else Export.from_row(row)


def export_by_id(conn: Connection, export_id: str) -> Export | None:
    """Any live export by id (for the worker, which serves every project)."""
    row = conn.execute(
        sa.select(exports).where(exports.c.id == export_id, exports.c.deleted_at.is_(None))
    ).first()
    return None if row is None else Export.from_row(row)


def destination_by_id(conn: Connection, destination_id: str) -> Destination | None:
    """A live destination by id, whatever its project."""
    row = conn.execute(
        sa.select(destinations).where(
            destinations.c.id == destination_id, destinations.c.deleted_at.is_(None)
        )
    ).first()
    return None if row is None else Destination.from_row(row)


def destination_with_history(conn: Connection, destination_id: str) -> Destination | None:
    """A destination by id, live or deleted (to say what became of an export's destination)."""
    row = conn.execute(sa.select(destinations).where(destinations.c.id == destination_id)).first()
    return None if row is None else Destination.from_row(row)


def list_exports(conn: Connection, project_id: int) -> list[Export]:
    """The project's live exports."""
    rows = conn.execute(
        sa.select(exports)
        .where(exports.c.project_id == project_id, exports.c.deleted_at.is_(None))
        .order_by(exports.c.created_at, exports.c.id)
    )
    return [Export.from_row(row) for row in rows]


def update_export(conn: Connection, export_id: str, values: dict[str, Any]) -> None:
    """Change an export's columns."""
    conn.execute(
        exports.update().where(exports.c.id == export_id).values(updated_at=now_ms(), **values)
    )
