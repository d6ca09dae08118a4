"""Export leases, shared by every delivery loop: one worker per export at a time.

A worker claims an export's lease before delivering it, renews it while the work goes on and
releases it when done. Renewal never re-claims: a lease that lapsed while this worker stalled may
have been taken (and even released) by another worker, whose cursor this one must not overwrite,
so renewal raises :class:`LeaseLost` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

from spillway.store import runs
from spillway.store.db import now_ms, write
from spillway.store.leases import LeaseLost

__all__ = ["Lease", "LeaseLost", "hold"]


@dataclass(frozen=True)
class Lease:
    """This worker's hold on one export's lease."""

    engine: Engine
    export_id: str
    owner: str
    ttl_ms: int

    def claim(self) -> bool:
        """Take the lease if it is free, lapsed or already this owner's; True when held now."""
        with write(self.engine) as conn:
            return runs.claim(conn, self.export_id, self.owner, now_ms(), self.ttl_ms)

    def renew(self, conn: Connection | None = None) -> None:
        """Extend the lease (inside ``conn``'s transaction when given); LeaseLost once another
        worker has taken it over."""
        if conn is None:
            with write(self.engine) as own:
                self.renew(own)
            return
        if not runs.renew(conn, self.export_id, self.owner, now_ms(), self.ttl_ms):
            raise LeaseLost(f"lease on export {self.export_id} was taken by another worker")

    def fence(self, conn: Connection) -> None:
        """Inside a commit's transaction: LeaseLost unless the lease is still held and current."""
        runs.fence(conn, self.export_id, self.owner, now_ms())

    def release(self) -> None:
        """Give the lease up (nothing happens if another worker holds it now)."""
        with write(self.engine) as conn:
            runs.release(conn, self.export_id, self.owner)


@contextmanager
def hold(engine: Engine, export_id: str, owner: str, ttl_ms: int) -> Iterator[Lease | None]:
    """Claim the export's lease for the block and release it after, even when the block raises;
    yields None (and releases nothing) when another worker holds it."""
    lease = Lease(engine, export_id, owner, ttl_ms)
    if not lease.claim():
        yield None
        return
    try:
        yield lease
    finally:
        lease.release()
