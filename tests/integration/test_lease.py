"""The export lease every delivery loop holds: claimed, renewed, lost to another worker,
released on the way out."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from spillway.engine.lease import Lease, LeaseLost, hold
from spillway.store import catalog
from spillway.store import leases as store_leases
from spillway.store.db import now_ms, write
from tests.integration.exporting import make_setup

pytestmark = pytest.mark.usefixtures("local_root")

TTL = 60_000


def holder(engine: Engine, export_id: str) -> tuple[str | None, int | None]:
    with engine.connect() as conn:
        row = catalog.export_by_id(conn, export_id)
    assert row is not None
    return row.lease_owner, row.lease_until


def lapse(engine: Engine, export_id: str) -> None:
    """The holder stalled past its lease."""
    with write(engine) as conn:
        catalog.update_export(conn, export_id, {"lease_until": now_ms() - 1})


@pytest.fixture
def export_id(engine: Engine, tmp_path: Path) -> str:
    return make_setup(engine, tmp_path).export().id


def test_hold_claims_renews_and_releases(engine: Engine, export_id: str) -> None:
    with hold(engine, export_id, "A", TTL) as lease:
        assert lease is not None
        owner, until = holder(engine, export_id)
        assert owner == "A" and until is not None and until >= now_ms() + TTL - 5_000
        with hold(engine, export_id, "B", TTL) as other:
            assert other is None  # held: B gets nothing, and releases nothing
        assert holder(engine, export_id)[0] == "A"
        with write(engine) as conn:
            catalog.update_export(conn, export_id, {"lease_until": now_ms() + 10})
        lease.renew()
        assert (holder(engine, export_id)[1] or 0) >= now_ms() + TTL - 5_000
        with write(engine) as conn:
            lease.renew(conn)  # inside a commit's own transaction
            lease.fence(conn)
    assert holder(engine, export_id) == (None, None)


def test_the_lease_is_released_when_the_block_raises(engine: Engine, export_id: str) -> None:
    with pytest.raises(RuntimeError), hold(engine, export_id, "A", TTL) as lease:
        assert lease is not None
        raise RuntimeError("delivery failed")
    assert holder(engine, export_id) == (None, None)
    with hold(engine, export_id, "B", TTL) as lease:
        assert lease is not None


def test_a_lapsed_lease_taken_by_another_worker_is_lost_not_taken_back(
    engine: Engine, export_id: str
) -> None:
    with hold(engine, export_id, "A", TTL) as lease:
        assert lease is not None
        lapse(engine, export_id)
        with hold(engine, export_id, "B", TTL) as taken:
            assert taken is not None
            with pytest.raises(LeaseLost):
                lease.renew()
            with write(engine) as conn, pytest.raises(LeaseLost):
                lease.fence(conn)
        # B has released it since: A's renewal still fails (B may have moved the cursor).
        with pytest.raises(LeaseLost):
            lease.renew()
        assert holder(engine, export_id) == (None, None)
    # A's release on the way out does not touch a lease it no longer holds.
    assert holder(engine, export_id) == (None, None)


def test_leaving_does_not_release_the_lease_another_worker_now_holds(
    engine: Engine, export_id: str
) -> None:
    with hold(engine, export_id, "A", TTL) as lease:
        assert lease is not None
        lapse(engine, export_id)
        assert Lease(engine, export_id, "B", TTL).claim()
    assert holder(engine, export_id)[0] == "B"


def test_lease_lost_is_the_store_s_exception() -> None:
    assert LeaseLost is store_leases.LeaseLost  # the loops and the runner catch one class
