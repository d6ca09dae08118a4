"""Stream wake-up across processes (issue 15, item 3): a serve process's ingest commit wakes a
worker's stream delivery through PostgreSQL NOTIFY, well before its poll; the listener comes
back by itself after its connection is killed. On SQLite all of it is a no-op."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.demo import synthetic_events
from spillway.engine.streamer import StreamDelivery
from spillway.store import catalog
from spillway.store.db import create_engine, migrate
from spillway.store.notify import (
    WORK_CHANNEL,
    EventListener,
    Notifier,
    listener_for,
    notifier_for,
    notify_new_events,
)
from tests.integration.streaming import StreamSetup, create_stream, make_stream_setup
from tests.server_moto import Moto

POLL_SECONDS = 30.0  # only a notification can explain a delivery much sooner than this
QUICK = 8.0  # generous on a loaded machine, far below the poll


def cursor_of(engine: Engine, export_id: str) -> int:
    with engine.connect() as conn:
        export = catalog.export_by_id(conn, export_id)
    assert export is not None
    return export.cursor_seq


def delivered_within(engine: Engine, export_id: str, seq: int, seconds: float) -> float | None:
    """How long until the export's cursor reaches ``seq``; None if not within ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if cursor_of(engine, export_id) >= seq:
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def ingest(setup: StreamSetup, count: int) -> int:
    """Store ``count`` events (as the serve process does); the last sequence stored."""
    setup.seed += 1
    setup.ingest_raw(list(synthetic_events(count, seed=setup.seed * 7919, users=20)))
    with setup.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT max(seq) FROM events")).scalar_one())


def test_a_commit_in_one_process_wakes_stream_delivery_in_another(pg_url: str, moto: Moto) -> None:
    serve = create_engine(pg_url)  # the serve process's engine: ingest and NOTIFY
    worker = create_engine(pg_url)  # the worker process's: LISTEN and deliver
    setup = make_stream_setup(serve, moto)
    export = setup.export(setup.destination("kinesis", {"stream": create_stream(moto, 1)}))
    delivery = StreamDelivery(worker, setup.box, linger_ms=0, poll_seconds=POLL_SECONDS)
    listener = EventListener(worker, delivery.nudge, backoff=(0.1, 1.0), wait_seconds=0.5)
    notifier = Notifier(serve)
    stop = threading.Event()
    thread = threading.Thread(target=delivery.run_forever, args=(stop,))
    listener.start()
    notifier.start()
    try:
        assert listener.connected.wait(10)
        thread.start()
        time.sleep(1.0)  # its first passes are over: asleep for the poll now
        for _ in range(3):
            seq = ingest(setup, 50)
            notifier()  # what the ingest writer's listeners call after its commit
            took = delivered_within(worker, export.id, seq, QUICK)
            assert took is not None, "the stream waited for its poll: no wake-up came"

        # The database drops the listener's connection: it reconnects with back-off, and the
        # next commit wakes the stream again.
        with serve.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN spillway_events%' AND datname = current_database()"
                )
            ).all()
        assert killed == [(True,)]
        deadline = time.monotonic() + 10
        while listener.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener.connections == 2 and listener.connected.is_set()
        time.sleep(0.5)  # the reconnection's own nudge has been served
        seq = ingest(setup, 50)
        notify_new_events(serve)  # the bare call works too
        assert delivered_within(worker, export.id, seq, QUICK) is not None
    finally:
        stop.set()
        delivery.nudge()
        thread.join(30)
        listener.stop()
        notifier.stop()
        serve.dispose()
        worker.dispose()


def test_work_queued_in_one_process_wakes_the_worker_of_another(pg_url: str) -> None:
    """Run now on a serve without a worker: the workers elsewhere hear of it at once, on their
    own channel (new events wake the streams, not the scheduler, and the other way round)."""
    serve, worker = create_engine(pg_url), create_engine(pg_url)
    woken = {"events": threading.Event(), "work": threading.Event()}
    listener = EventListener(
        worker, woken["events"].set, on_work=woken["work"].set, wait_seconds=0.2
    )
    listener.start()
    work = notifier_for(serve, WORK_CHANNEL)
    assert work is not None
    try:
        assert listener.connected.wait(10)
        time.sleep(0.5)  # the connection's own first call to each callback is over
        for event in woken.values():
            event.clear()
        work()  # what the API's context.wake() calls
        assert woken["work"].wait(QUICK)
        assert not woken["events"].is_set()
        woken["work"].clear()
        notify_new_events(serve)
        assert woken["events"].wait(QUICK)
        assert not woken["work"].is_set()
    finally:
        work.stop()
        listener.stop()
        serve.dispose()
        worker.dispose()


def test_without_postgresql_there_is_nothing_to_notify(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'spillway.db'}")
    migrate(engine)
    notify_new_events(engine)
    with engine.connect() as conn:
        notify_new_events(conn)
    assert listener_for(engine, lambda: None) is None
    assert notifier_for(engine) is None
    engine.dispose()
