"""A server streaming to Kinesis is killed with SIGKILL and restarted: no event is missing, and
the records that may have gone twice (the unacknowledged batch) are counted and shown.

The kill provably lands mid-delivery: a proxy in front of moto holds the server's fourth
PutRecords call, so at the kill the stream holds the first three calls' records and not the
rest, and one call is unanswered. That call then reaches the stream anyway (its answer lost):
after the restart those records, and only those, are there twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.acceptance.conftest import Server, ServerFactory, auth, create_credentials, make_events
from tests.integration.streaming import create_stream, event_uuid, read_stream
from tests.server_flaky import Sent, flaky_proxy
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


class Gate:
    """A flaky-proxy chooser that fails nothing but holds one PutRecords call (number ``hold``)
    until released: while it is held, the stream has the calls before it and not the rest, and
    the server waits for an answer it will never get."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.held = threading.Event()
        self.release = threading.Event()
        self.records: list[bytes] = []  # the held call's records

    def __call__(self, call: int, records: list[Sent]) -> dict[int, str]:
        if call == self.hold:
            self.records = [record.data for record in records]
            self.held.set()
            self.release.wait(120)
        return {}


@pytest.mark.slow
def test_sigkill_while_streaming_loses_nothing(
    tmp_path: Path, start_spillway: ServerFactory, moto: Moto
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    creds = create_credentials(data_dir, read_key=False)
    token = creds.write_token
    stream = create_stream(moto, shards=2)
    with flaky_proxy(moto.endpoint, moto.admin_key, moto.admin_secret) as proxy:
        gate = Gate(hold=3)
        proxy.reset(gate)
        first = start_spillway(data_dir, worker=True)  # lists the proxy's origin
        destination = first.client.post(
            "/api/v1/destinations",
            headers=auth(token),
            json={
                "name": "kinesis",
                "kind": "kinesis",
                "config": {"stream": stream, "region": REGION, "endpoint_url": proxy.endpoint},
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
            json={
                "name": "live",
                "destination_id": destination.json()["id"],
                "frequency": "stream",
            },
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
        # The fourth call is held: the stream has the first three calls' records, not all.
        assert gate.held.wait(60), f"no fourth call reached the stream\n{first.log()[-3000:]}"
        before = [event_uuid(data) for _, data in read_stream(moto, stream)]
        assert 0 < len(before) < TOTAL
        assert len(before) == len(proxy.forwarded())
        in_flight = gate.records
        assert in_flight
        # Kill it mid-delivery: acknowledged calls behind it, one call unanswered, more to go.
        first.kill()
        assert first.process.returncode == -9
        # The unanswered call still reaches the stream (as a call whose answer was lost would):
        # those records are there, but the dead server never learnt it.
        gate.release.set()
        deadline = time.monotonic() + 30
        while len(proxy.calls) <= gate.hold and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(read_stream(moto, stream)) == len(before) + len(in_flight)

        second = start_spillway(data_dir, worker=True)
        _wait(second, token, export_id, lambda e: e["lag"]["events"] == 0)
        shown = _export(second, token, export_id)
    records = [event_uuid(data) for _, data in read_stream(moto, stream)]
    counts = Counter(records)
    assert set(counts) == set(sent), "an event is missing from the stream"
    duplicates = len(records) - len(counts)
    # Exactly the unanswered call went twice, and the API counts it among those that may have.
    assert duplicates == len(in_flight)
    assert {uuid for uuid, n in counts.items() if n > 1} == {event_uuid(d) for d in in_flight}
    assert duplicates <= shown["delivery"]["redelivered"] <= 500
