"""Named queries for endpoint profiles."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.store.schema import endpoints

_FIELDS = (
    "user_id",
    "channel_type",
    "address",
    "endpoint_status",
    "opt_out",
    "attributes",
    "user_attributes",
    "demographic",
    "location",
    "metrics",
    "effective_date",
    "created_at",
    "updated_at",
)


def get_endpoint(conn: Connection, project_id: int, endpoint_id: str) -> dict[str, Any] | None:
    """One endpoint as a plain dict, or None."""
    row = conn.execute(
        sa.select(endpoints).where(
            endpoints.c.project_id == project_id, endpoints.c.endpoint_id == endpoint_id
        )
    ).first()
    return None if row is None else dict(row._mapping)


def get_endpoints(conn: Connection, project_id: int, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Several endpoints by id, keyed by id (missing ones are absent)."""
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(endpoints).where(
            endpoints.c.project_id == project_id, endpoints.c.endpoint_id.in_(ids)
        )
    )
    return {row.endpoint_id: dict(row._mapping) for row in rows}


def save_endpoint(conn: Connection, project_id: int, record: dict[str, Any], exists: bool) -> None:
    """Insert or replace one endpoint with the already-merged ``record``."""
    values = {name: record.get(name) for name in _FIELDS}
    if exists:
        values.pop("created_at")
        conn.execute(
            endpoints.update()
            .where(
                endpoints.c.project_id == project_id,
                endpoints.c.endpoint_id == record["endpoint_id"],
            )
            .values(**values)
        )
    else:
        conn.execute(
            endpoints.insert().values(
                project_id=project_id, endpoint_id=record["endpoint_id"], **values
            )
        )


def save_endpoints(
    conn: Connection, project_id: int, new: list[dict[str, Any]], changed: list[dict[str, Any]]
) -> None:
    """Insert ``new`` and replace ``changed`` (already-merged records), each group as one
    statement executed for many rows (an import job stores hundreds per transaction)."""
    if new:
        conn.execute(
            endpoints.insert(),
            [
                {"project_id": project_id, "endpoint_id": r["endpoint_id"]}
                | {name: r.get(name) for name in _FIELDS}
                for r in new
            ],
        )
    if changed:
        names = [name for name in _FIELDS if name != "created_at"]
        statement = (
            endpoints.update()
            .where(
                endpoints.c.project_id == sa.bindparam("b_project_id"),
                endpoints.c.endpoint_id == sa.bindparam("b_endpoint_id"),
            )
            .values({name: sa.bindparam(f"b_{name}") for name in names})
        )
        conn.execute(
            statement,
            [
                {"b_project_id": project_id, "b_endpoint_id": r["endpoint_id"]}
                | {f"b_{name}": r.get(name) for name in names}
                for r in changed
            ],
        )


def delete_endpoint(conn: Connection, project_id: int, endpoint_id: str) -> bool:
    """Remove one endpoint; True when it existed."""
    result = conn.execute(
        endpoints.delete().where(
            endpoints.c.project_id == project_id, endpoints.c.endpoint_id == endpoint_id
        )
    )
    return result.rowcount > 0


def list_endpoints(
    conn: Connection,
    project_id: int,
    *,
    user_id: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """Endpoints of a project in id order, optionally one user's, paged by ``after``."""
    query = sa.select(endpoints).where(endpoints.c.project_id == project_id)
    if user_id is not None:
        query = query.where(endpoints.c.user_id == user_id)
    if after is not None:
        query = query.where(endpoints.c.endpoint_id > after)
    query = query.order_by(endpoints.c.endpoint_id).limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]
