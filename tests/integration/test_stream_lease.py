"""A stream worker that stalled past its lease must not move the cursor another worker owns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from spillway.store import catalog
from spillway.store import runs as q
from spillway.store import streams as sq
from spillway.store.db import create_engine, migrate, now_ms
from spillway.store.leases import LeaseLost
from tests.integration.streaming import StreamSetup, create_stream, make_stream_setup
from tests.server_moto import Moto


@pytest.fixture
def setup(tmp_path: Path, moto: Moto) -> Iterator[StreamSetup]:
    engine: Engine = create_engine(f"sqlite:///{tmp_path / 'spillway.db'}")
    migrate(engine)
    yield make_stream_setup(engine, moto)
    engine.dispose()


def test_a_stalled_stream_worker_loses_its_lease_and_cannot_move_the_cursor_back(
    setup: StreamSetup, moto: Moto
) -> None:
    export = setup.export(setup.destination("kinesis", {"stream": create_stream(moto)}))
    setup.ingest(30)
    stalled = setup.delivery(owner="stalled", lease_ttl_ms=1)
    fresh = setup.delivery(owner="fresh")
    with setup.engine.connect().execution_options(write=True) as conn, conn.begin():
        assert q.claim(conn, export.id, "stalled", now_ms(), 1)
    # The stalled worker's lease lapses; the other takes the export over and delivers it all.
    with setup.engine.connect().execution_options(write=True) as conn, conn.begin():
        assert q.claim(conn, export.id, "fresh", now_ms() + 10, fresh.lease_ttl_ms)
        q.release(conn, export.id, "fresh")
    assert setup.drain(fresh) == 30
    with setup.engine.connect() as conn:
        delivered = int(catalog.export_by_id(conn, export.id).cursor_seq)
        state = sq.state(conn, export.id)
    # The stalled worker wakes up and tries to acknowledge its old batch (cursor 0).
    with pytest.raises(LeaseLost):
        stalled._commit(export.id, 0, state, [])
    with pytest.raises(LeaseLost):
        stalled._renew(export.id)
    with setup.engine.connect() as conn:
        assert int(catalog.export_by_id(conn, export.id).cursor_seq) == delivered
