"""``spillway serve --no-worker`` and ``spillway worker`` as separate processes on PostgreSQL:
events posted to the API reach the Kinesis stream (moto) at once, not at the worker's next poll.
The worker polls every 30 s here, so only the serve process's NOTIFY can explain a quick
delivery (issue 15, item 3)."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tests.acceptance.conftest import (
    SPILLWAY,
    Server,
    ServerFactory,
    auth,
    cli_env,
    create_credentials,
    make_events,
)
from tests.integration.streaming import create_stream, event_uuid, read_stream
from tests.server_moto import REGION, Moto

POLL_SECONDS = "30"
QUICK = 8.0  # generous on a loaded machine, far below the poll


@pytest.fixture
def pg_env(postgres_url: str) -> Iterator[dict[str, str]]:
    """The environment of processes sharing a fresh PostgreSQL database."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    yield {"SPILLWAY_DATABASE_URL": url, "SPILLWAY_STREAM_POLL_SECONDS": POLL_SECONDS}
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def _export(server: Server, token: str, export_id: str) -> dict[str, Any]:
    response = server.client.get(f"/api/v1/exports/{export_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_worker_process_streams_what_a_serve_process_ingests_at_once(
    tmp_path: Path, start_spillway: ServerFactory, moto: Moto, pg_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    creds = create_credentials(data_dir, env=pg_env, read_key=False)
    token = creds.write_token
    serve = start_spillway(data_dir, pg_env)  # --no-worker: the API and ingest only
    stream = create_stream(moto, shards=1)
    destination = serve.client.post(
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
    export = serve.client.post(
        "/api/v1/exports",
        headers=auth(token),
        json={"name": "live", "destination_id": destination.json()["id"], "frequency": "stream"},
    )
    assert export.status_code == 201, export.text
    export_id = export.json()["id"]

    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [SPILLWAY, "worker"],
            env=cli_env(data_dir, pg_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(4.0)  # started, listening, first passes over: asleep for its 30 s poll
        assert worker.poll() is None, log_path.read_text()
        sent: list[str] = []
        for _ in range(3):
            batch = make_events(20)
            answer = serve.client.post(
                "/api/v1/events",
                content=orjson.dumps(batch),
                headers={**auth(token), "Content-Type": "application/json"},
            )
            assert answer.status_code == 200, answer.text
            sent += [e["event_uuid"] for e in batch]
            posted = time.monotonic()
            while _export(serve, token, export_id)["delivery"]["records_sent"] < len(sent):
                if time.monotonic() - posted > QUICK:
                    pytest.fail(
                        "the worker waited for its poll: no wake-up from the serve process\n"
                        + log_path.read_text()[-3000:]
                    )
                time.sleep(0.05)
            time.sleep(1.0)  # the stream is idle again before the next batch
        assert sorted(event_uuid(data) for _, data in read_stream(moto, stream)) == sorted(sent)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=40)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
    assert worker.returncode == 0, log_path.read_text()[-3000:]
