"""One project cannot stall the others (issue 8, item 5): destination validations that hang on
an endpoint that never answers leave ``/healthz`` and ingest answering at once, each hanging
validation is answered by its deadline, and the pool refuses more instead of growing."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import Credentials, Server, ServerFactory, auth, make_events
from tests.servers import allow_endpoint, allowed_endpoints

DEADLINE = 4  # SPILLWAY_VALIDATION_DEADLINE_SECONDS for this test (default 15)
VALIDATIONS = 40
PROJECTS = 5


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An http origin on loopback that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # kept open, never read from nor written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def s3_body(endpoint: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "s3",
        "config": {"bucket": "never-answers", "region": "us-east-1", "endpoint_url": endpoint},
        "credentials": {
            "mode": "access_key",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "s" * 40,
        },
    }


def test_hanging_validations_leave_health_and_ingest_answering(
    start_spillway: ServerFactory, silent_endpoint: str
) -> None:
    allow_endpoint(silent_endpoint)
    server: Server = start_spillway(
        extra_env={
            "SPILLWAY_ALLOWED_ENDPOINTS": allowed_endpoints(),
            "SPILLWAY_VALIDATION_DEADLINE_SECONDS": str(DEADLINE),
        }
    )
    projects: list[Credentials] = [server.credentials(read_key=False) for _ in range(PROJECTS)]
    ingest_headers = {"Content-Type": "application/json", **auth(projects[0].write_token)}

    def validate(number: int) -> tuple[httpx.Response, float]:
        creds = projects[number % PROJECTS]
        started = time.monotonic()
        with server.fresh_client() as client:
            response = client.post(
                "/api/v1/destinations/validate",
                json=s3_body(silent_endpoint, f"d{number}"),
                headers=auth(creds.write_token),
                timeout=120,
            )
        return response, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=VALIDATIONS) as pool:
        futures = [pool.submit(validate, n) for n in range(VALIDATIONS)]
        time.sleep(0.5)  # let them all arrive
        # While the validations hang: health and ingest answer within 1 s, every time.
        probes = 0
        until = time.monotonic() + DEADLINE + 1
        with httpx.Client(base_url=server.base_url, timeout=1.0) as client:
            while time.monotonic() < until:
                started = time.monotonic()
                health = client.get("/healthz")
                assert health.status_code == 200, health.text
                sent = client.post(
                    "/api/v1/events", content=json.dumps(make_events(2)), headers=ingest_headers
                )
                assert sent.status_code == 200, sent.text
                assert time.monotonic() - started < 2.0  # both calls
                probes += 1
                time.sleep(0.1)
        results = [future.result() for future in futures]
    assert probes >= 5

    statuses = sorted(response.status_code for response, _ in results)
    assert set(statuses) <= {200, 429, 503}, statuses
    for response, took in results:
        # No request is held past the deadline (plus some slack).
        assert took < DEADLINE + 3, (response.status_code, took)
        if response.status_code == 200:
            answer = response.json()
            assert answer["ok"] is False
            assert [c["status"] for c in answer["checks"]] == ["failed"], answer
            assert f"did not answer within {DEADLINE} s" in answer["checks"][0]["message"]
        else:
            body = response.json()
            assert body["error"] in ("too_many_validations", "validation_busy"), body
            assert int(response.headers["retry-after"]) >= 1
    # Four threads took four validations; the rest were refused at once: 429 for a project
    # that already had two running, 503 when all four threads were taken.
    assert statuses.count(200) == 4, statuses
    assert statuses.count(429) + statuses.count(503) == VALIDATIONS - 4, statuses
    assert statuses.count(503) >= 1, statuses
    for response, took in results:
        if response.status_code != 200:
            # Refused without waiting for a thread: well before the deadline the accepted ones
            # wait out (a second of slack for 40 requests on a loaded 2-core machine).
            assert took < DEADLINE - 1, (response.status_code, took)

    # The stuck threads still hold their places: a new validation is refused at once.
    started = time.monotonic()
    with server.fresh_client() as client:
        refused = client.post(
            "/api/v1/destinations/validate",
            json=s3_body(silent_endpoint, "again"),
            headers=auth(projects[-1].write_token),
        )
    assert refused.status_code in (429, 503), refused.text
    assert time.monotonic() - started < 1.0
    assert server.client.get("/healthz").status_code == 200
