"""Keys against a real ``spillway serve``: what each scope may call, and that nothing heavy
happens before a key is checked (issue 8, items 1 and 2)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import (
    Credentials,
    Server,
    ServerFactory,
    auth,
    create_key,
    make_events,
    run_cli,
)

MIB = 1024 * 1024
JSON_TYPE = {"Content-Type": "application/json"}
# The only calls an ingest key may make (docs/api.md, docs/security.md).
INGEST_CALLS = {
    ("POST", "/api/v1/events"),
    ("PUT", "/api/v1/endpoints/{endpoint_id}"),
    ("PUT", "/api/v1/endpoints"),
}


def assert_json_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """The answer has ``status`` and the JSON error shape; returns the message."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    message: str = body["message"]
    return message


def api_calls(server: Server) -> list[tuple[str, str]]:
    """Every (METHOD, path template) under /api/v1 the server's OpenAPI lists."""
    paths = server.client.get("/openapi.json").json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, item in paths.items()
        if path.startswith("/api/v1/")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


def concrete(template: str) -> str:
    """A path with every parameter filled in."""
    return re.sub(r"\{[^}]+\}", "some-id", template)


def call(server: Server, token: str, method: str, template: str) -> httpx.Response:
    """The call with a small valid JSON body (a body is parsed before scopes are checked only
    if it is not JSON at all, so ``{}`` reaches the scope check on every route)."""
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    return server.client.request(
        method, concrete(template), content=body, headers={**JSON_TYPE, **auth(token)}
    )


@pytest.fixture(scope="module")
def ingest_token(server: Server, creds: Credentials) -> str:
    """An ingest key of the module's project, made with the CLI."""
    key = create_key(server.data_dir, creds.project_id, "ingest")
    assert key["scope"] == "ingest"
    token: str = key["token"]
    return token


# ---------------------------------------------------------------------------------------------
# Scopes


def test_ingest_key_sends_events_and_endpoints(server: Server, ingest_token: str) -> None:
    events = make_events(3)
    sent = server.client.post(
        "/api/v1/events", content=json.dumps(events), headers={**JSON_TYPE, **auth(ingest_token)}
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 3

    one = server.client.put(
        "/api/v1/endpoints/app-device-1",
        json={"channel_type": "PUSH", "address": "token-1", "user_id": "u1"},
        headers=auth(ingest_token),
    )
    assert one.status_code == 200, one.text
    batch = server.client.put(
        "/api/v1/endpoints",
        json={"endpoints": [{"endpoint_id": "app-device-2", "user_id": "u2"}]},
        headers=auth(ingest_token),
    )
    assert batch.status_code == 200, batch.text


def test_ingest_key_is_refused_everywhere_else(server: Server, ingest_token: str) -> None:
    """Every /api/v1 route the app declares, so a route added later cannot be forgotten."""
    calls = api_calls(server)
    assert set(calls) >= INGEST_CALLS, calls
    refused = [c for c in calls if c not in INGEST_CALLS]
    assert len(refused) >= 15, refused  # endpoints, destinations, exports, runs …
    for method, template in refused:
        response = call(server, ingest_token, method, template)
        message = assert_json_error(response, 403, "forbidden")
        assert "'ingest'" in message, (method, template, message)


def test_read_key_reads_but_cannot_ingest(server: Server, creds: Credentials) -> None:
    events = make_events(2)
    response = server.client.post(
        "/api/v1/events",
        content=json.dumps(events),
        headers={**JSON_TYPE, **auth(creds.read_token)},
    )
    message = assert_json_error(response, 403, "forbidden")
    assert "'read'" in message and "needs 'ingest'" in message
    for method, template in INGEST_CALLS - {("POST", "/api/v1/events")}:
        assert_json_error(call(server, creds.read_token, method, template), 403, "forbidden")
    for path in ("/api/v1/endpoints", "/api/v1/destinations", "/api/v1/exports"):
        assert server.client.get(path, headers=auth(creds.read_token)).status_code == 200


def test_write_key_still_ingests(server: Server, creds: Credentials) -> None:
    response = server.client.post(
        "/api/v1/events",
        content=json.dumps(make_events(1)),
        headers={**JSON_TYPE, **auth(creds.write_token)},
    )
    assert response.status_code == 200, response.text


def test_revoked_key_stops_working_within_seconds(server: Server, creds: Credentials) -> None:
    key = create_key(server.data_dir, creds.project_id, "ingest")
    headers = {**JSON_TYPE, **auth(key["token"])}
    body = json.dumps(make_events(1))
    assert server.client.post("/api/v1/events", content=body, headers=headers).status_code == 200
    revoked = run_cli(server.data_dir, "admin", "revoke-key", key["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    deadline = time.monotonic() + 6.0
    while True:
        status = server.client.post("/api/v1/events", content=body, headers=headers).status_code
        if status == 401:
            break
        assert status == 200
        assert time.monotonic() < deadline, "a revoked key still worked after 6 s"
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# Nothing heavy before authentication


def memory_kib(server: Server) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the server process, in KiB."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
    return rss, hwm


def fifty_mb_json() -> Iterator[bytes]:
    """A 50 MB JSON document, streamed in 1 MiB chunks (no Content-Length: chunked)."""
    yield b'{"name": "'
    for _ in range(50):
        yield b"a" * MIB
    yield b'", "kind": "s3"}'


def send_big(server: Server, headers: dict[str, str], body: Any) -> httpx.Response:
    with server.fresh_client() as client:
        return client.post("/api/v1/destinations", content=body, headers={**JSON_TYPE, **headers})


@pytest.mark.parametrize("who", ["nobody", "wrong-secret", "write-key"])
def test_50_mb_body_to_a_management_route_is_refused_unread(
    start_spillway: ServerFactory, who: str
) -> None:
    # A fresh server for each case: the peak (VmHWM) of an earlier case would hide this one's.
    server = start_spillway()
    creds = server.credentials(read_key=False)
    headers = {
        "nobody": {},
        "wrong-secret": auth(f"{creds.write['key_id']}.{'x' * 40}"),
        "write-key": auth(creds.write_token),
    }[who]
    # Warm up: the first request of each kind imports and allocates what it needs once.
    send_big(server, headers, b"{}")
    before_rss, before_hwm = memory_kib(server)

    streamed = send_big(server, headers, fifty_mb_json())
    with_length = send_big(server, headers, b"".join(fifty_mb_json()))

    after_rss, after_hwm = memory_kib(server)
    for response in (streamed, with_length):
        if who == "write-key":
            message = assert_json_error(response, 413, "too_large")
            assert "SPILLWAY_MAX_JSON_BYTES" in message
        else:
            assert response.status_code in (401, 413), response.text
            assert_json_error(response, response.status_code)
    if who != "write-key":
        assert streamed.status_code == 401
        assert "bearer" in streamed.headers.get("www-authenticate", "").lower()
    grown_mib = (after_hwm - before_hwm) / 1024
    assert grown_mib <= 4, (
        f"peak memory grew by {grown_mib:.1f} MiB (RSS {before_rss} → {after_rss} KiB)"
    )
    assert server.client.get("/healthz").status_code == 200


def test_body_limits_per_route(server: Server, creds: Credentials) -> None:
    headers = {**JSON_TYPE, **auth(creds.write_token)}

    # A management call: 1 MiB (SPILLWAY_MAX_JSON_BYTES).
    big = json.dumps({"name": "x" * (MIB + 10), "kind": "s3"}).encode()
    message = assert_json_error(
        server.client.post("/api/v1/exports", content=big, headers=headers), 413, "too_large"
    )
    assert f"{MIB:,}" in message and "SPILLWAY_MAX_JSON_BYTES" in message

    # One endpoint: 64 KiB (SPILLWAY_MAX_ENDPOINT_BYTES), sent whole or streamed.
    doc = {"attributes": {"notes": ["n" * (70 * 1024)]}}
    message = assert_json_error(
        server.client.put("/api/v1/endpoints/big", json=doc, headers=headers), 413, "too_large"
    )
    assert "SPILLWAY_MAX_ENDPOINT_BYTES" in message
    raw = json.dumps(doc).encode()
    streamed = server.client.put(
        "/api/v1/endpoints/big",
        content=iter([raw[i : i + 8192] for i in range(0, len(raw), 8192)]),
        headers=headers,
    )
    assert "SPILLWAY_MAX_ENDPOINT_BYTES" in assert_json_error(streamed, 413, "too_large")

    # A batch may be larger as a whole, but each document in it is held to the same 64 KiB.
    small = {"endpoint_id": "ok", "attributes": {"notes": ["n" * (40 * 1024)]}}
    batch = {"endpoints": [small, {**small, "endpoint_id": "ok2"}, {**doc, "endpoint_id": "b"}]}
    message = assert_json_error(
        server.client.put("/api/v1/endpoints", json=batch, headers=headers), 413, "too_large"
    )
    assert "endpoints[2]" in message and "SPILLWAY_MAX_ENDPOINT_BYTES" in message
    fine = server.client.put(
        "/api/v1/endpoints", json={"endpoints": batch["endpoints"][:2]}, headers=headers
    )
    assert fine.status_code == 200, fine.text

    # Ingest keeps its own, larger limit: 2 MiB of events pass.
    events = make_events(10)
    for event in events:
        event["event_attributes"]["notes"] = "n" * (200 * 1024)
    body = json.dumps(events).encode()
    assert len(body) > 2 * MIB - 100_000  # well over the 1 MiB of a management call
    sent = server.client.post("/api/v1/events", content=body, headers=headers)
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 10
