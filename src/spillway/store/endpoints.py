"""Named queries for endpoint profiles. Endpoints leave the store as ``model.Endpoint``; each is
written with its Pinpoint export line parts (``Parts``, built by the caller: the line's format
is the engine's, not the store's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.model import ENDPOINT_MAPS, Endpoint
from spillway.store.schema import endpoints

# An endpoint's export line without ApplicationId: (head, tail) (``shapes.pinpoint_parts``).
Parts = tuple[bytes, bytes]
# An endpoint with the line parts it is stored with.
Written = tuple[Endpoint, Parts]

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
# Every column an Endpoint is built from (not the line parts, which only exports read).
_COLUMNS = [endpoints.c.endpoint_id, *(endpoints.c[name] for name in _FIELDS)]


def select_endpoints() -> sa.Select[tuple[object, ...]]:
    """A query of the columns an ``Endpoint`` is built from."""
    return sa.select(*_COLUMNS)


def get_endpoint(conn: Connection, project_id: int, endpoint_id: str) -> Endpoint | None:
    """One endpoint, or None."""
    row = conn.execute(
        select_endpoints().where(
            endpoints.c.project_id == project_id, endpoints.c.endpoint_id == endpoint_id
        )
    ).first()
    return None if row is None else Endpoint.from_row(row)


def get_endpoints(conn: Connection, project_id: int, ids: list[str]) -> dict[str, Endpoint]:
    """Several endpoints by id, keyed by id (missing ones are absent)."""
    if not ids:
        return {}
    rows = conn.execute(
        select_endpoints().where(
            endpoints.c.project_id == project_id, endpoints.c.endpoint_id.in_(ids)
        )
    )
    return {row.endpoint_id: Endpoint.from_row(row) for row in rows}


def _values(endpoint: Endpoint, parts: Parts) -> dict[str, object]:
    values: dict[str, object] = {name: getattr(endpoint, name) for name in _FIELDS}
    values["pinpoint_head"], values["pinpoint_tail"] = parts
    return values


def save_endpoint(
    conn: Connection, project_id: int, endpoint: Endpoint, parts: Parts, exists: bool
) -> None:
    """Insert or replace one endpoint (already merged) with its line parts."""
    values = _values(endpoint, parts)
    if exists:
        values.pop("created_at")
        conn.execute(
            endpoints.update()
            .where(
                endpoints.c.project_id == project_id,
                endpoints.c.endpoint_id == endpoint.endpoint_id,
            )
            .values(**values)
        )
    else:
        conn.execute(
            endpoints.insert().values(
                project_id=project_id, endpoint_id=endpoint.endpoint_id, **values
            )
        )


def save_endpoints(
    conn: Connection, project_id: int, new: Sequence[Written], changed: Sequence[Written]
) -> None:
    """Insert ``new`` and replace ``changed`` (already merged), each group as one statement
    executed for many rows (an import job stores hundreds per transaction)."""
    if new:
        conn.execute(
            endpoints.insert(),
            [
                {"project_id": project_id, "endpoint_id": e.endpoint_id} | _values(e, parts)
                for e, parts in new
            ],
        )
    if changed:
        names = [name for name in (*_FIELDS, "pinpoint_head", "pinpoint_tail")]
        names.remove("created_at")
        statement = (
            endpoints.update()
            .where(
                endpoints.c.project_id == sa.bindparam("b_project_id"),
                endpoints.c.endpoint_id == sa.bindparam("b_endpoint_id"),
            )
            .values({name: sa.bindparam(f"b_{name}") for name in names})
        )
        rows = []
        for e, parts in changed:
            values = _values(e, parts)
            row = {"b_project_id": project_id, "b_endpoint_id": e.endpoint_id}
            rows.append(row | {f"b_{name}": values[name] for name in names})
        conn.execute(statement, rows)


def fill_missing_lines(
    conn: Connection, project_id: int, build: Callable[[Endpoint], Parts], batch: int = 2_000
) -> int:
    """Build the line parts of the project's endpoints stored without them (written by an older
    version, or straight into the table); how many were filled. Cheap when there are none: the
    partial index holds only such rows."""
    filled = 0
    missing = endpoints.c.pinpoint_head.is_(None)
    statement = (
        endpoints.update()
        .where(
            endpoints.c.project_id == project_id,
            endpoints.c.endpoint_id == sa.bindparam("b_endpoint_id"),
        )
        .values(pinpoint_head=sa.bindparam("b_head"), pinpoint_tail=sa.bindparam("b_tail"))
    )
    # The maps read as text and parsed with orjson: the JSON type's json.loads is most of the
    # time of a large fill (migrated rows, a bulk load straight into the table).
    names = [c.name for c in _COLUMNS]
    columns = [sa.cast(c, sa.Text) if c.name in ENDPOINT_MAPS else c for c in _COLUMNS]
    query = sa.select(*columns).where(endpoints.c.project_id == project_id, missing).limit(batch)
    while True:
        rows = conn.execute(query).all()
        if not rows:
            return filled
        updates = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            for name in ENDPOINT_MAPS:
                values[name] = orjson.loads(values[name])
            head, tail = build(Endpoint.from_row(values))
            updates.append({"b_endpoint_id": values["endpoint_id"], "b_head": head, "b_tail": tail})
        conn.execute(statement, updates)
        filled += len(rows)


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
) -> list[Endpoint]:
    """Endpoints of a project in id order, optionally one user's, paged by ``after``."""
    query = select_endpoints().where(endpoints.c.project_id == project_id)
    if user_id is not None:
        query = query.where(endpoints.c.user_id == user_id)
    if after is not None:
        query = query.where(endpoints.c.endpoint_id > after)
    query = query.order_by(endpoints.c.endpoint_id).limit(limit)
    return [Endpoint.from_row(row) for row in conn.execute(query)]
