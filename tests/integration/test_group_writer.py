"""The group-commit ingest writer under concurrent requests, on both dialects: with two writer
threads on PostgreSQL (one staging while the other commits), every event is stored once, each
request hears exactly which of its events were already stored, and sequences commit in order."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.services.projects import create_project
from spillway.store.db import now_ms
from spillway.store.events import EventRow
from spillway.store.writer import GroupWriter
from tests.store_queries import count_events

REQUESTS = 240
PER_REQUEST = 50


def test_concurrent_requests_with_overlapping_ids_store_each_event_once(engine: Engine) -> None:
    project = create_project(engine, "app").id
    pool = [uuid.uuid4().bytes for _ in range(3_000)]
    rng = random.Random(15)
    # Every request draws its ids from one pool, so many ids travel in several requests at
    # once: retried batches racing their first attempt, as through a load balancer.
    requests = [rng.sample(pool, PER_REQUEST) for _ in range(REQUESTS)]
    writer = GroupWriter(engine)
    if engine.dialect.name == "postgresql":
        assert len(writer._threads) == 2  # the overlap this test is about
    writer.start()
    answers: list[tuple[list[bytes], set[str]]] = []
    lock = threading.Lock()

    def client(mine: list[list[bytes]]) -> None:
        for ids in mine:
            rows: list[EventRow] = [
                (1_700_000_000_000, i, "USER_ACTION_EVENT", "Open", "u", b"{}") for i in ids
            ]
            skipped = writer.submit(project, now_ms(), rows).result(timeout=60)
            with lock:
                answers.append((ids, skipped))

    threads = [threading.Thread(target=client, args=(requests[n::6],)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.stop()

    assert len(answers) == REQUESTS
    sent = {i for ids in requests for i in ids}
    # Each id was accepted by exactly one request and reported "already stored" to the others.
    accepted: Counter[bytes] = Counter()
    for ids, skipped in answers:
        for i in ids:
            if str(uuid.UUID(bytes=i)) not in skipped:
                accepted[i] += 1
    assert set(accepted) == sent
    assert max(accepted.values()) == 1
    with engine.connect() as conn:
        assert count_events(conn) == len(sent)
        seqs = conn.execute(sa.text("SELECT seq FROM events ORDER BY seq")).scalars().all()
    assert len(set(seqs)) == len(sent)
