"""Endpoint profiles over HTTP against a real ``spillway serve``."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import Credentials, Server, auth, create_key, create_project

BASE = "/api/v1/endpoints"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(request: pytest.FixtureRequest) -> tuple[Server, Credentials]:
    """A running server with credentials, on each database."""
    if request.param == "sqlite":
        return request.getfixturevalue("server"), request.getfixturevalue("creds")
    return request.getfixturevalue("pg_server"), request.getfixturevalue("pg_creds")


def put(server: Server, token: str, endpoint_id: str, body: dict[str, Any]) -> httpx.Response:
    """PUT one endpoint."""
    return server.client.put(f"{BASE}/{endpoint_id}", json=body, headers=auth(token))


def get(server: Server, token: str, endpoint_id: str) -> httpx.Response:
    """GET one endpoint."""
    return server.client.get(f"{BASE}/{endpoint_id}", headers=auth(token))


def assert_json_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """The answer has ``status`` and the JSON error shape; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    message: str = body["message"]
    return message


def test_put_creates_then_merges(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    token = creds.write_token
    created = put(
        server,
        token,
        "ep-merge",
        {
            "channel_type": "EMAIL",
            "address": "ada@example.com",
            "user_id": "user-1",
            "attributes": {"interests": ["cats", "chess"], "tier": "gold"},
            "location": {"city": "Lagos", "country": "NG"},
        },
    )
    assert created.status_code == 200, created.text
    first = created.json()
    assert first["endpoint_id"] == "ep-merge"
    assert first["channel_type"] == "EMAIL"
    assert first["attributes"] == {"interests": ["cats", "chess"], "tier": ["gold"]}

    updated = put(
        server,
        token,
        "ep-merge",
        {
            "attributes": {"plan": ["pro"], "tier": None},
            "user_attributes": {"first_name": "Ada"},
            "location": {"postal_code": "100001"},
            "metrics": {"sessions": 3},
        },
    )
    assert updated.status_code == 200, updated.text
    merged = updated.json()
    assert merged["attributes"] == {"interests": ["cats", "chess"], "plan": ["pro"]}
    assert merged["user_attributes"] == {"first_name": ["Ada"]}
    assert merged["location"] == {"city": "Lagos", "country": "NG", "postal_code": "100001"}
    assert merged["metrics"] == {"sessions": 3}
    # Scalars not sent are kept.
    assert merged["channel_type"] == "EMAIL"
    assert merged["address"] == "ada@example.com"
    assert merged["user_id"] == "user-1"
    assert merged["created_at"] == first["created_at"]

    fetched = get(server, creds.read_token, "ep-merge")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == merged


def test_batch_put(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    body = {
        "endpoints": [
            {"endpoint_id": f"ep-batch-{i}", "channel_type": "SMS", "address": f"+1555000{i}"}
            for i in range(3)
        ]
    }
    response = server.client.put(BASE, json=body, headers=auth(creds.write_token))
    assert response.status_code == 200, response.text
    returned = response.json()["endpoints"]
    assert [e["endpoint_id"] for e in returned] == ["ep-batch-0", "ep-batch-1", "ep-batch-2"]
    for i in range(3):
        fetched = get(server, creds.read_token, f"ep-batch-{i}")
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["address"] == f"+1555000{i}"
        assert fetched.json()["channel_type"] == "SMS"


def test_batch_put_without_endpoint_id_is_refused(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    body = {"endpoints": [{"endpoint_id": "ep-ok"}, {"channel_type": "SMS"}]}
    response = server.client.put(BASE, json=body, headers=auth(creds.write_token))
    message = assert_json_error(response, 400)
    assert "endpoints[1]" in message
    assert get(server, creds.read_token, "ep-ok").status_code == 404


def test_delete_then_get_is_404(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    assert put(server, creds.write_token, "ep-gone", {"channel_type": "PUSH"}).status_code == 200
    deleted = server.client.delete(f"{BASE}/ep-gone", headers=auth(creds.write_token))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] is True

    message = assert_json_error(get(server, creds.read_token, "ep-gone"), 404, "not_found")
    assert "ep-gone" in message
    again = server.client.delete(f"{BASE}/ep-gone", headers=auth(creds.write_token))
    assert_json_error(again, 404, "not_found")


def test_bad_channel_type_is_422(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    response = put(server, creds.write_token, "ep-bad", {"channel_type": "CARRIER_PIGEON"})
    message = assert_json_error(response, 422)
    assert "channel_type" in message
    assert get(server, creds.read_token, "ep-bad").status_code == 404


def test_mismatched_body_id_is_400(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    response = put(server, creds.write_token, "ep-a", {"endpoint_id": "ep-b"})
    message = assert_json_error(response, 400)
    assert "ep-b" in message


def test_read_key_can_get_but_not_write(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    assert put(server, creds.write_token, "ep-ro", {"channel_type": "SMS"}).status_code == 200
    assert get(server, creds.read_token, "ep-ro").status_code == 200

    refused = put(server, creds.read_token, "ep-ro", {"channel_type": "EMAIL"})
    message = assert_json_error(refused, 403, "forbidden")
    assert "scope" in message
    refused_delete = server.client.delete(f"{BASE}/ep-ro", headers=auth(creds.read_token))
    assert_json_error(refused_delete, 403, "forbidden")
    assert get(server, creds.read_token, "ep-ro").json()["channel_type"] == "SMS"


def test_endpoints_are_private_to_their_project(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    assert put(server, creds.write_token, "ep-mine", {"channel_type": "SMS"}).status_code == 200
    project = create_project(server.data_dir, f"other-{uuid.uuid4().hex[:8]}", server.extra_env)
    other = create_key(server.data_dir, project["project_id"], "write", server.extra_env)["token"]
    assert_json_error(get(server, other, "ep-mine"), 404, "not_found")
    # The other project may use the same id without touching ours.
    assert put(server, other, "ep-mine", {"channel_type": "EMAIL"}).status_code == 200
    assert get(server, creds.read_token, "ep-mine").json()["channel_type"] == "SMS"


def test_missing_authorization_is_401(api: tuple[Server, Credentials]) -> None:
    server, _ = api
    assert_json_error(server.client.get(f"{BASE}/ep-any"), 401, "unauthorized")


def test_list_pages_in_id_order(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    ids = [f"ep-list-{i:02d}" for i in range(5)]
    body = {"endpoints": [{"endpoint_id": i, "user_id": "lister"} for i in reversed(ids)]}
    assert server.client.put(BASE, json=body, headers=auth(creds.write_token)).status_code == 200

    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "user_id": "lister"}
        if after is not None:
            params["after"] = after
        page = server.client.get(BASE, params=params, headers=auth(creds.read_token))
        assert page.status_code == 200, page.text
        got = [e["endpoint_id"] for e in page.json()["endpoints"]]
        if not got:
            break
        seen += got
        after = got[-1]
    assert seen == ids


# ---------------------------------------------------------------------------------------------
# Edge cases that once were bugs: ids, non-finite numbers, NUL characters


def test_endpoint_id_longer_than_256_is_refused(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    with server.fresh_client() as client:  # a 500 makes the server drop the connection
        response = client.put(
            f"{BASE}/{'x' * 300}", json={"channel_type": "SMS"}, headers=auth(creds.write_token)
        )
    assert_json_error(response, 422)


def test_non_finite_metric_is_refused(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    with server.fresh_client() as client:
        response = client.put(
            f"{BASE}/ep-inf",
            content=b'{"metrics": {"sessions": 1e999}}',
            headers={**auth(creds.write_token), "Content-Type": "application/json"},
        )
    assert_json_error(response, 422)


def test_endpoint_id_with_slash_can_be_fetched(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    body = {"endpoints": [{"endpoint_id": "device/42", "channel_type": "PUSH"}]}
    assert server.client.put(BASE, json=body, headers=auth(creds.write_token)).status_code == 200
    fetched = get(server, creds.read_token, "device%2F42")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["endpoint_id"] == "device/42"


def test_nul_character_in_address_is_not_a_server_error(
    api: tuple[Server, Credentials], request: pytest.FixtureRequest
) -> None:
    server, creds = api
    with server.fresh_client() as client:
        response = client.put(
            f"{BASE}/ep-nul", json={"address": "a\u0000b"}, headers=auth(creds.write_token)
        )
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
