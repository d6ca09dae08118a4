"""A server streaming to Kinesis is killed with SIGKILL and restarted: no event is missing, and
the records that may have gone twice (the unacknowledged batch) are counted and shown."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.acceptance.conftest import Server, ServerFactory, auth, create_credentials, make_events
from tests.integration.streaming import create_stream, event_uuid, read_stream
from tests.server_moto import REGION, Moto

TOTAL = 12_000
BATCH = 1_000


def _export(server: Server, token: str, export_id: str) -> dict[str, Any]:
    response = server.client.get(f"/api/v1/exports/{export_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _wait(server: Server, token: str, export_id: str, done: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done(_export(server, token, export_id)):
            return
        time.sleep(0.05)
    pytest.fail(f"timed out; export is {_export(server, token, export_id)}\n{server.log()[-3000:]}")


@pytest.mark.slow
def test_sigkill_while_streaming_loses_nothing(
    tmp_path: Path, start_spillway: ServerFactory, moto: Moto
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    creds = create_credentials(data_dir, read_key=False)
    token = creds.write_token
    stream = create_stream(moto, shards=2)
    first = start_spillway(data_dir, worker=True)
    destination = first.client.post(
        "/api/v1/destinations",
        headers=auth(token),
        json={
            "name": "kinesis",
            "kind": "kinesis",
            "config": {"stream": stream, "region": REGION, "endpoint_url": moto.endpoint},
            "credentials": {
                "mode": "access_key",
                "access_key_id": moto.admin_key,
                "secret_access_key": moto.admin_secret,
            },
        },
    )
    assert destination.status_code == 201, destination.text
    export = first.client.post(
        "/api/v1/exports",
        headers=auth(token),
        json={"name": "live", "destination_id": destination.json()["id"], "frequency": "stream"},
    )
    assert export.status_code == 201, export.text
    export_id = export.json()["id"]

    sent: list[str] = []
    for _ in range(TOTAL // BATCH):
        batch = make_events(BATCH)
        answer = first.client.post(
            "/api/v1/events",
            content=orjson.dumps(batch),
            headers={**auth(token), "Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        sent += [e["event_uuid"] for e in batch]
    # Kill it while it is streaming: some records acknowledged, not all.
    _wait(first, token, export_id, lambda e: e["delivery"]["records_sent"] >= 1_500)
    first.kill()
    assert first.process.returncode == -9

    second = start_spillway(data_dir, worker=True)
    _wait(second, token, export_id, lambda e: e["lag"]["events"] == 0)
    shown = _export(second, token, export_id)
    records = [event_uuid(data) for _, data in read_stream(moto, stream)]
    counts = Counter(records)
    assert set(counts) == set(sent), "an event is missing from the stream"
    duplicates = len(records) - len(counts)
    # Only the batch in flight at the kill can go twice, and the API says how many may have.
    assert duplicates <= shown["delivery"]["redelivered"] <= 500
