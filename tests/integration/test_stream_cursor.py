"""A stream's cursor, lag and counters tell the truth (issue 9, item 5), on moto's Kinesis.

- With an event filter, the cursor moves past the events the stream does not take, up to the
  high-water mark, so lag goes back to zero; an event of the filter that commits late (a
  writer still holding its sequence while the pass runs) is never skipped.
- The lag gauges of disabled and deleted exports leave ``/metrics``.
- ``redelivered`` counts only records that may really have arrived twice: a call refused as a
  whole for bad credentials accepted nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.api import views
from spillway.ingest import judge
from spillway.services import exports as export_service
from spillway.store import catalog
from spillway.store import streams as sq
from spillway.store.db import PG_LOCK_INGEST, now_ms, write_lock
from spillway.store.schema import events
from tests.integration.streaming import (
    LIMITS,
    StreamSetup,
    create_stream,
    event_uuid,
    make_stream_setup,
    read_stream,
)
from tests.server_moto import Moto
from tests.store_queries import high_water


def shown(setup: StreamSetup, export_id: str) -> dict[str, Any]:
    return views.export(setup.engine, export_service.get(setup.engine, setup.project_id, export_id))


def delivered(moto: Moto, stream: str) -> list[str]:
    return [event_uuid(data) for _, data in read_stream(moto, stream)]


def test_a_filtered_stream_moves_past_the_events_it_does_not_take(
    engine: Engine, moto: Moto
) -> None:
    setup = make_stream_setup(engine, moto)
    stream = create_stream(moto, shards=1)
    export = setup.export(setup.destination("kinesis", {"stream": stream}), events=["Purchase"])
    delivery = setup.delivery()
    wanted: list[str] = []
    for _ in range(3):
        wanted += setup.ingest(5, users=3, event_name="Purchase")
        setup.ingest(40, users=3, event_name="View")  # never sent: the cursor must pass them
        setup.drain(delivery)
        row = shown(setup, export.id)
        with engine.connect() as conn:
            assert row["cursor_seq"] == high_water(conn)  # behind nothing it could send
        assert row["lag"] == {"events": 0, "seconds": 0}
    setup.ingest(25, users=3, event_name="View")  # only events it does not take, last
    setup.drain(delivery)
    row = shown(setup, export.id)
    with engine.connect() as conn:
        assert row["cursor_seq"] == high_water(conn)
    assert row["lag"] == {"events": 0, "seconds": 0}
    assert row["delivery"]["records_sent"] == 15
    assert delivered(moto, stream) == wanted
    gauge = REGISTRY.get_sample_value("spillway_stream_lag_events", {"export": export.id})
    assert gauge == 0


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_filtered_event_that_commits_late_is_not_skipped(engine: Engine, moto: Moto) -> None:
    """PostgreSQL: a writer holds a Purchase's sequence uncommitted while a pass moves the
    cursor past the View events before it. Once it commits, the next pass sends it."""
    setup = make_stream_setup(engine, moto)
    stream = create_stream(moto, shards=1)
    export = setup.export(setup.destination("kinesis", {"stream": stream}), events=["Purchase"])
    delivery = setup.delivery()
    first = setup.ingest(3, users=2, event_name="Purchase")
    setup.ingest(20, users=2, event_name="View")
    with engine.connect() as conn:
        committed = high_water(conn)

    raw = {"event_name": "Purchase", "uid": "late-user", "event_uuid": str(uuid.uuid4())}
    [row] = judge([raw], now_ms(), LIMITS).rows
    holder = engine.connect().execution_options(write=True)
    transaction = holder.begin()
    try:
        write_lock(holder, PG_LOCK_INGEST)  # as every ingest does: the writers' turn is ours
        late = holder.execute(
            events.insert()
            .values(
                project_id=setup.project_id,
                received_at=now_ms(),
                event_time=row[0],
                event_uuid=row[1],
                event_type=row[2],
                event_name=row[3],
                uid=row[4],
                payload=row[5],
            )
            .returning(events.c.seq)
        ).scalar_one()
        assert late > committed
        setup.drain(delivery)  # meanwhile: the three Purchases go, the cursor passes the Views
        behind = shown(setup, export.id)
        assert behind["cursor_seq"] == committed
        assert delivered(moto, stream) == first
        transaction.commit()
    finally:
        holder.close()
    setup.drain(delivery)
    assert delivered(moto, stream) == [*first, raw["event_uuid"]]
    assert shown(setup, export.id)["cursor_seq"] == late


def lag_series(export_id: str) -> list[str]:
    text = generate_latest(REGISTRY).decode()
    return [
        line
        for line in text.splitlines()
        if line.startswith("spillway_stream_lag_") and f'export="{export_id}"' in line
    ]


def test_lag_gauges_of_disabled_and_deleted_exports_leave_metrics(
    engine: Engine, moto: Moto
) -> None:
    setup = make_stream_setup(engine, moto)
    stream = create_stream(moto, shards=1)
    destination = setup.destination("kinesis", {"stream": stream})
    kept, disabled, deleted = (setup.export(destination).id for _ in range(3))
    setup.ingest(10, users=2)
    delivery = setup.delivery()
    setup.drain(delivery)
    for export_id in (kept, disabled, deleted):
        assert len(lag_series(export_id)) == 2  # events and seconds
    export_service.update(engine, setup.actor, disabled, api_models.ExportPatch(status="disabled"))
    export_service.delete(engine, setup.actor, deleted)
    setup.ingest(5, users=2)
    setup.drain(delivery)
    assert len(lag_series(kept)) == 2
    assert lag_series(disabled) == []
    assert lag_series(deleted) == []
    # Enabled again, it reports again.
    export_service.update(engine, setup.actor, disabled, api_models.ExportPatch(status="active"))
    setup.drain(delivery)
    assert len(lag_series(disabled)) == 2


def test_a_call_refused_for_bad_credentials_is_not_counted_as_redelivered(
    engine: Engine, moto: Moto
) -> None:
    setup = make_stream_setup(engine, moto)
    stream = create_stream(moto, shards=1)
    destination = setup.destination("kinesis", {"stream": stream})
    export = setup.export(destination)
    good = destination.credentials_sealed
    wrong = setup.box.seal_json(
        {"mode": "access_key", "access_key_id": moto.admin_key, "secret_access_key": "x" * 40},
        context=destination.id.encode(),
    )
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_destination(conn, destination.id, {"credentials_sealed": wrong})
    uuids = setup.ingest(30, users=5)
    delivery = setup.delivery()
    assert delivery.pass_once() == 0
    row = shown(setup, export.id)
    assert row["status"] == "failing"
    assert "SignatureDoesNotMatch" in (row["status_reason"] or "")
    with engine.connect() as conn:
        state = sq.state(conn, export.id)
    assert state.inflight_to == row["cursor_seq"]  # nothing of it is in flight
    # The credentials are put right (by hand, here); the export retries and delivers all.
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_destination(conn, destination.id, {"credentials_sealed": good})
        catalog.retry_exports_now(conn, destination.id)
    setup.drain(delivery)
    assert sorted(delivered(moto, stream)) == sorted(uuids)
    row = shown(setup, export.id)
    assert row["status"] == "active"
    assert row["delivery"]["redelivered"] == 0
    assert row["delivery"]["records_sent"] == 30
    metric = REGISTRY.get_sample_value(
        "spillway_stream_records_redelivered_total", {"export": export.id}
    )
    assert not metric
