"""What every delivery loop (scheduled file exports, streams) does the same way: it serves an
export under that export's lease, and a failure changes the export's state (and, when the fault
is the destination's own, the destination's) in one way for all of them.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from spillway.engine import lease
from spillway.engine.status import (
    Notify,
    about_destination,
    change_state,
    destination_failing,
    unopenable,
)
from spillway.errors import InputError, TerminalError
from spillway.model import Destination, Export
from spillway.secrets import SecretBox
from spillway.store.db import now_ms

log = logging.getLogger(__name__)


@dataclass
class DeliveryLoop:
    """The part of a delivery loop that leases exports and records their failures."""

    engine: Engine
    box: SecretBox
    owner: str
    lease_ttl_ms: int
    notify: Notify | None = None

    def _order(self, exports: list[Export]) -> list[Export]:
        """The exports to visit in this pass, the one left alone longest first (every delivery
        moves ``updated_at``); those whose lease another worker holds right now are left to it,
        so workers spread over different exports instead of queueing on one lease."""
        now = now_ms()
        free = [
            e for e in exports if e.lease_owner in (None, self.owner) or (e.lease_until or 0) < now
        ]
        return sorted(free, key=lambda e: (e.updated_at, e.id))

    def _lease(self, export_id: str) -> lease.Lease:
        """This worker's lease on the export (to renew or fence; not claimed by this call)."""
        return lease.Lease(self.engine, export_id, self.owner, self.lease_ttl_ms)

    def _held(self, export_id: str) -> AbstractContextManager[lease.Lease | None]:
        """The export's lease for the block (None when another worker holds it)."""
        return lease.hold(self.engine, export_id, self.owner, self.lease_ttl_ms)

    def _set_state(self, export: Export, state: str, reason: str | None) -> None:
        change_state(self.engine, export, state, reason, self.notify)

    def _opening_failed(self, destination: Destination, export: Export, exc: Exception) -> str:
        """The export's destination could not be opened: log what nobody foresaw, mark the
        destination ``failing`` when the fault is its own; the reason the export shows."""
        if not isinstance(exc, TerminalError | InputError):
            log.error("export %s: opening its destination failed", export.id, exc_info=exc)
        reason = unopenable(destination, exc)
        if about_destination(exc):
            destination_failing(self.engine, destination, export, reason)
        return reason

    def _refused(self, destination: Destination, export: Export, exc: TerminalError) -> str:
        """A delivery failed for good (until someone fixes something): mark the destination
        ``failing`` when the fault is its own; the reason the export shows."""
        if about_destination(exc):
            destination_failing(self.engine, destination, export, str(exc))
        return str(exc)
