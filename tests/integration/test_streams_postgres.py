"""Stream delivery on PostgreSQL: while several writers ingest and two workers deliver at once,
every event reaches the Kinesis stream (moto) exactly once and in ingest order per user."""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.api import views
from spillway.demo import synthetic_events
from spillway.services import exports as export_service
from spillway.store.db import create_engine, migrate
from spillway.store.schema import events
from tests.integration.streaming import (
    StreamSetup,
    create_stream,
    event_uuid,
    make_stream_setup,
    read_stream,
)
from tests.server_moto import Moto

pytestmark = pytest.mark.postgres

WRITERS = 4
BATCHES = 10
BATCH = 150


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    """A migrated engine on a fresh PostgreSQL database."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(postgres_url.rsplit("/", 1)[0] + "/" + name)
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def by_user_in_seq_order(setup: StreamSetup) -> dict[str, list[str]]:
    """Each user's event uuids in the order the database numbered them (ingest order)."""
    with setup.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.uid, events.c.event_uuid)
            .where(events.c.project_id == setup.project_id)
            .order_by(events.c.seq)
        ).all()
    ordered: dict[str, list[str]] = defaultdict(list)
    for uid, event in rows:
        ordered[uid].append(str(uuid.UUID(bytes=event)))  # stored as 16 bytes (0013)
    return ordered


def test_concurrent_ingest_and_two_workers_deliver_every_event_once_in_order(
    pg_engine: Engine, moto: Moto
) -> None:
    assert pg_engine.dialect.name == "postgresql"
    setup = make_stream_setup(pg_engine, moto)
    name = create_stream(moto, shards=2)
    export = setup.export(setup.destination("kinesis", {"stream": name}))
    # Small fetches: many passes and many commits, interleaved with the writers' commits.
    workers = [setup.delivery(owner=f"w{n}", fetch_rows=200) for n in (1, 2)]
    stop = threading.Event()
    errors: list[BaseException] = []
    sent_by_workers = Counter[str]()
    lock = threading.Lock()

    def deliver(number: int) -> None:
        try:
            while not stop.is_set():
                sent = workers[number].pass_once()
                with lock:
                    sent_by_workers[f"w{number + 1}"] += sent
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def write(number: int) -> None:
        try:
            for batch in range(BATCHES):
                seed = 7919 * (number * BATCHES + batch + 1)  # distinct events per batch
                setup.ingest_raw(list(synthetic_events(BATCH, seed=seed, users=40)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    delivering = [threading.Thread(target=deliver, args=(n,)) for n in range(2)]
    writing = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in delivering + writing:
        thread.start()
    for thread in writing:
        thread.join(120)
    stop.set()
    for thread in delivering:
        thread.join(120)
    assert not errors, errors
    # Whatever the two workers left, one drains.
    drained = setup.drain(workers[0])

    total = WRITERS * BATCHES * BATCH
    records = read_stream(moto, name)
    delivered = Counter(event_uuid(data) for _, data in records)
    assert len(delivered) == total, "an event is missing from the stream"
    assert set(delivered.values()) == {1}, "an event was delivered twice"
    got: dict[str, list[str]] = defaultdict(list)
    for key, data in records:
        got[key].append(event_uuid(data))
    assert got == by_user_in_seq_order(setup), "a user's events are out of ingest order"
    shown = views.export(pg_engine, export_service.get(pg_engine, setup.project_id, export.id))
    assert shown["lag"]["events"] == 0
    assert shown["delivery"]["records_sent"] == total
    assert shown["delivery"]["redelivered"] == 0
    # Each record was acknowledged to exactly one worker, once.
    assert sum(sent_by_workers.values()) + drained == total
