"""Durability: an event that got a 200 survives ``kill -9`` of the server."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import (
    Server,
    ServerFactory,
    auth,
    count_events,
    create_credentials,
    make_events,
    stored_uuids,
)

EVENTS = "/api/v1/events"
BATCHES = 20
BATCH_SIZE = 200


def post_batch(server: Server, token: str, batch: list[dict[str, Any]]) -> httpx.Response:
    """POST one batch as a JSON array."""
    return server.client.post(
        EVENTS,
        content=json.dumps(batch).encode(),
        headers={"Content-Type": "application/json", **auth(token)},
    )


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill(tmp_path: Path, start_spillway: ServerFactory) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    creds = create_credentials(data_dir, read_key=False)
    first = start_spillway(data_dir)

    acknowledged: set[str] = set()
    accepted_total = 0
    for number in range(BATCHES):
        batch = make_events(BATCH_SIZE)
        response = post_batch(first, creds.write_token, batch)
        assert response.status_code == 200, f"batch {number}: {response.text}"
        answer = response.json()
        assert answer["accepted"] == BATCH_SIZE
        accepted_total += answer["accepted"]
        acknowledged.update(e["event_uuid"] for e in batch)
    first.kill()  # the instant the last answer is in: no graceful shutdown
    assert first.process.returncode == -9

    second = start_spillway(data_dir)

    assert second.client.get("/healthz").status_code == 200
    assert count_events(data_dir, creds.project_id) == accepted_total == BATCHES * BATCH_SIZE
    assert stored_uuids(data_dir, creds.project_id) == acknowledged
    # The restarted server still knows them: the same batch again is all duplicates.
    again = post_batch(second, creds.write_token, batch)
    assert again.status_code == 200, again.text
    assert again.json()["accepted"] == 0
    assert again.json()["duplicate"] == BATCH_SIZE


@pytest.mark.slow
def test_sigkill_during_concurrent_ingest_keeps_acked_batches_whole(
    tmp_path: Path, start_spillway: ServerFactory
) -> None:
    """Kill while requests are in flight: every acknowledged batch is stored, and every
    batch is all-or-nothing (an unacknowledged one may or may not have made it)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    creds = create_credentials(data_dir, read_key=False)
    first = start_spillway(data_dir)

    lock = threading.Lock()
    sent: list[list[str]] = []
    acked: list[list[str]] = []
    enough = threading.Event()

    def sender() -> None:
        with httpx.Client(base_url=first.base_url, timeout=30.0) as client:
            while not enough.is_set():
                batch = make_events(BATCH_SIZE)
                uuids = [e["event_uuid"] for e in batch]
                with lock:
                    sent.append(uuids)
                try:
                    response = client.post(
                        EVENTS,
                        content=json.dumps(batch).encode(),
                        headers={"Content-Type": "application/json", **auth(creds.write_token)},
                    )
                except httpx.TransportError:
                    return  # the server died under us
                if response.status_code != 200:
                    return
                with lock:
                    acked.append(uuids)
                    if len(acked) >= BATCHES:
                        enough.set()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while not enough.wait(0.05):  # stop early if every sender gave up (their answer is logged)
        if time.monotonic() > deadline or not any(t.is_alive() for t in threads):
            break
    first.kill()
    enough.set()
    for thread in threads:
        thread.join(timeout=60)
    assert len(acked) >= BATCHES, first.log()

    start_spillway(data_dir)

    stored = stored_uuids(data_dir, creds.project_id)
    for uuids in acked:
        assert set(uuids) <= stored
    everything_sent = {u for uuids in sent for u in uuids}
    assert stored <= everything_sent
    for uuids in sent:
        assert len(set(uuids) & stored) in (0, BATCH_SIZE)
