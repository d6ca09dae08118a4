"""Leases on rows that one worker at a time may serve (exports, jobs): ``lease_owner`` and
``lease_until`` columns, taken and checked by single statements so that on PostgreSQL the row
lock makes exactly one contender win."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class LeaseLost(Exception):
    """Another worker holds this lease now; this worker must not commit."""


def claim(conn: Connection, table: sa.Table, row_id: str, owner: str, now: int, ttl: int) -> bool:
    """Take (or renew) the row's lease; True when this owner holds it now."""
    c = table.c
    result = conn.execute(
        table.update()
        .where(
            c.id == row_id,
            sa.or_(c.lease_until.is_(None), c.lease_until < now, c.lease_owner == owner),
        )
        .values(lease_owner=owner, lease_until=now + ttl)
    )
    return result.rowcount == 1


def renew(conn: Connection, table: sa.Table, row_id: str, owner: str, now: int, ttl: int) -> bool:
    """Extend a lease this owner still holds; False once another worker took it over, even if
    that worker has released it since (then it may have done what this one is doing)."""
    c = table.c
    result = conn.execute(
        table.update().where(c.id == row_id, c.lease_owner == owner).values(lease_until=now + ttl)
    )
    return result.rowcount == 1


def release(conn: Connection, table: sa.Table, row_id: str, owner: str) -> None:
    """Give the lease up (nothing happens if another worker holds it now)."""
    c = table.c
    conn.execute(
        table.update()
        .where(c.id == row_id, c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def fence(conn: Connection, table: sa.Table, row_id: str, owner: str, now: int) -> None:
    """Inside a commit's transaction: raise LeaseLost unless this owner still holds the lease."""
    c = table.c
    held = conn.execute(
        sa.select(c.id).where(c.id == row_id, c.lease_owner == owner, c.lease_until >= now)
    ).first()
    if held is None:
        raise LeaseLost(f"lease on {table.name} {row_id} was lost")
