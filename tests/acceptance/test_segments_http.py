"""Segments over HTTP against a real ``spillway serve``: sizes equal a filter computed here over
the endpoints sent, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import Credentials, Server, auth

BASE = "/api/v1/segments"
COUNT = 120
CHANNELS = ["EMAIL", "SMS", "PUSH", "GCM"]
COUNTRIES = ["NG", "GB", "US", "KE"]
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(request: pytest.FixtureRequest) -> tuple[Server, Credentials]:
    """A running server and a fresh project of its own, on each database."""
    server: Server = request.getfixturevalue("server" if request.param == "sqlite" else "pg_server")
    return server, server.credentials()


def endpoint(i: int) -> dict[str, Any]:
    """The i-th endpoint sent: every field varies on its own cycle."""
    body: dict[str, Any] = {
        "endpoint_id": f"ep-{i:04d}",
        "channel_type": CHANNELS[i % 4],
        "address": f"addr-{i}",
        "endpoint_status": "INACTIVE" if i % 5 == 0 else "ACTIVE",
        "opt_out": "ALL" if i % 7 == 0 else "NONE",
        "attributes": {"interests": [["cats"], ["dogs"], ["cats", "chess"]][i % 3]},
        "user_attributes": {"plan": "pro" if i % 4 == 1 else "free"},
        "demographic": {"platform": "ios" if i % 2 else "android", "locale": "en_GB"},
        "location": {"country": COUNTRIES[i % 4], "city": f"city-{i % 6}"},
    }
    if i % 9:  # every ninth has no user and no effective date
        body["user_id"] = f"user-{i % 11}"
        body["effective_date"] = (START + timedelta(days=i)).isoformat().replace("+00:00", "Z")
    if i % 10 == 3:
        body["attributes"]["vip"] = ["yes"]
    return body


def instant(text: str) -> datetime:
    """An ISO 8601 text as an aware instant (a date alone, or no zone: UTC)."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def expected(sent: list[dict[str, Any]], spec: dict[str, Any]) -> set[str]:
    """The endpoint ids a filter selects, computed from what was sent (not from the server)."""

    def selected(e: dict[str, Any]) -> bool:
        columns = {
            "user_ids": "user_id",
            "channel_type": "channel_type",
            "endpoint_status": "endpoint_status",
            "opt_out": "opt_out",
        }
        for name, column in columns.items():
            if name in spec and e.get(column) not in spec[name]:
                return False
        for name in ("attributes", "user_attributes"):
            for key, values in spec.get(name, {}).items():
                if not set(as_list(e[name].get(key, []))) & set(values):
                    return False
        for name in ("demographic", "location"):
            for key, values in spec.get(name, {}).items():
                if e[name].get(key) not in values:
                    return False
        if "effective_after" in spec or "effective_before" in spec:
            if "effective_date" not in e:
                return False
            when = instant(e["effective_date"])
            if "effective_after" in spec and when < instant(spec["effective_after"]):
                return False
            if "effective_before" in spec and when >= instant(spec["effective_before"]):
                return False
        return True

    return {e["endpoint_id"] for e in sent if selected(e)}


@pytest.fixture(scope="module")
def sent(api: tuple[Server, Credentials]) -> list[dict[str, Any]]:
    """The project's endpoints, sent in batches of 100."""
    server, creds = api
    bodies = [endpoint(i) for i in range(COUNT)]
    for start in range(0, COUNT, 100):
        response = server.client.put(
            "/api/v1/endpoints",
            json={"endpoints": bodies[start : start + 100]},
            headers=auth(creds.write_token),
        )
        assert response.status_code == 200, response.text
    return bodies


def create(server: Server, creds: Credentials, name: str, spec: dict[str, Any]) -> httpx.Response:
    return server.client.post(
        BASE, json={"name": name, "filter": spec}, headers=auth(creds.write_token)
    )


def size(server: Server, creds: Credentials, segment_id: str) -> int:
    response = server.client.get(
        f"{BASE}/{segment_id}", params={"count": "true"}, headers=auth(creds.read_token)
    )
    assert response.status_code == 200, response.text
    found: int = response.json()["size"]
    return found


FILTERS: dict[str, dict[str, Any]] = {
    "user_ids": {"user_ids": ["user-1", "user-4", "nobody"]},
    "channel_type": {"channel_type": ["SMS", "GCM"]},
    "endpoint_status": {"endpoint_status": ["INACTIVE"]},
    "opt_out": {"opt_out": ["ALL"]},
    "attributes": {"attributes": {"interests": ["chess", "dogs"]}},
    "attributes_two_names": {"attributes": {"interests": ["cats"], "vip": ["yes"]}},
    "user_attributes": {"user_attributes": {"plan": ["pro"]}},
    "demographic": {"demographic": {"platform": ["ios"]}},
    "location": {"location": {"country": ["NG", "KE"], "city": ["city-0", "city-2"]}},
    "effective_after": {"effective_after": "2026-03-01T00:00:00Z"},
    "effective_before": {"effective_before": "2026-01-20"},
    "effective_range": {
        "effective_after": "2026-01-10T00:00:00+01:00",
        "effective_before": "2026-02-15T12:00:00Z",
    },
    "combined": {
        "channel_type": ["EMAIL", "PUSH"],
        "opt_out": ["NONE"],
        "attributes": {"interests": ["cats"]},
        "demographic": {"platform": ["android"]},
        "effective_after": "2026-01-05",
    },
    "combined_columns_only": {"channel_type": ["EMAIL"], "endpoint_status": ["ACTIVE"]},
}


@pytest.mark.parametrize("case", sorted(FILTERS))
def test_size_equals_the_filter_over_what_was_sent(
    api: tuple[Server, Credentials], sent: list[dict[str, Any]], case: str
) -> None:
    server, creds = api
    spec = FILTERS[case]
    want = expected(sent, spec)
    assert 0 < len(want) < COUNT, f"{case} should select some endpoints, not all: {len(want)}"
    created = create(server, creds, f"size-{case}", spec)
    assert created.status_code == 201, created.text
    body = created.json()
    assert len(body["id"]) == 32 and int(body["id"], 16) >= 0
    assert body["name"] == f"size-{case}"
    assert "size" not in body
    assert size(server, creds, body["id"]) == len(want)


def test_get_and_list_show_the_filter(
    api: tuple[Server, Credentials], sent: list[dict[str, Any]]
) -> None:
    server, creds = api
    spec = {"channel_type": ["SMS"], "effective_after": "2026-01-01T01:00:00+01:00"}
    created = create(server, creds, "shown", spec).json()
    got = server.client.get(f"{BASE}/{created['id']}", headers=auth(creds.read_token))
    assert got.status_code == 200, got.text
    shown = got.json()
    assert "size" not in shown
    # Instants are kept as UTC.
    assert shown["filter"] == {"channel_type": ["SMS"], "effective_after": "2026-01-01T00:00:00Z"}
    listed = server.client.get(BASE, headers=auth(creds.read_token))
    assert listed.status_code == 200, listed.text
    assert shown in listed.json()["segments"]
    everyone = create(server, creds, "everyone", {}).json()
    assert everyone["filter"] == {}
    assert size(server, creds, everyone["id"]) == COUNT


def test_patch_changes_name_and_replaces_the_filter(
    api: tuple[Server, Credentials], sent: list[dict[str, Any]]
) -> None:
    server, creds = api
    first = {"channel_type": ["SMS"]}
    segment = create(server, creds, "to-change", first).json()
    url = f"{BASE}/{segment['id']}"
    headers = auth(creds.write_token)

    second = {"location": {"country": ["US"]}}
    changed = server.client.patch(url, json={"filter": second}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["filter"] == second  # replaced, not merged with channel_type
    assert changed.json()["name"] == "to-change"
    assert size(server, creds, segment["id"]) == len(expected(sent, second))

    renamed = server.client.patch(url, json={"name": "changed"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "changed"
    assert renamed.json()["filter"] == second
    assert renamed.json()["updated_at"] >= segment["updated_at"]

    nothing = server.client.patch(url, json={}, headers=headers)
    assert nothing.status_code == 422, nothing.text
    bad = server.client.patch(url, json={"filter": {"opt_out": ["MAYBE"]}}, headers=headers)
    assert bad.status_code == 422 and "filter.opt_out" in bad.json()["message"], bad.text


def test_names_conflict_within_a_project(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    assert create(server, creds, "taken", {}).status_code == 201
    again = create(server, creds, "taken", {"opt_out": ["ALL"]})
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "conflict" and "taken" in again.json()["message"]
    other = create(server, creds, "free-name", {}).json()
    clash = server.client.patch(
        f"{BASE}/{other['id']}", json={"name": "taken"}, headers=auth(creds.write_token)
    )
    assert clash.status_code == 409, clash.text
    # The same name in another project is fine.
    elsewhere = server.credentials()
    assert create(server, elsewhere, "taken", {}).status_code == 201


def test_delete_then_gone(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    segment = create(server, creds, "short-lived", {}).json()
    url = f"{BASE}/{segment['id']}"
    deleted = server.client.delete(url, headers=auth(creds.write_token))
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert server.client.get(url, headers=auth(creds.read_token)).status_code == 404
    assert server.client.delete(url, headers=auth(creds.write_token)).status_code == 404
    listed = server.client.get(BASE, headers=auth(creds.read_token)).json()["segments"]
    assert segment["id"] not in {s["id"] for s in listed}
    # Its name is free again.
    assert create(server, creds, "short-lived", {}).status_code == 201


def test_another_projects_segment_is_not_found(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    segment = create(server, creds, "private-name", {"user_ids": ["user-secret"]}).json()
    url = f"{BASE}/{segment['id']}"
    stranger = server.credentials()
    answers = [
        server.client.get(url, headers=auth(stranger.read_token)),
        server.client.get(url, params={"count": "true"}, headers=auth(stranger.read_token)),
        server.client.patch(url, json={"name": "mine"}, headers=auth(stranger.write_token)),
        server.client.delete(url, headers=auth(stranger.write_token)),
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"] == "not_found"
        assert "private-name" not in answer.text and "user-secret" not in answer.text
    listed = server.client.get(BASE, headers=auth(stranger.read_token)).json()["segments"]
    assert listed == []
    # Still there for its own project, unchanged.
    mine = server.client.get(url, headers=auth(creds.read_token)).json()
    assert mine["name"] == "private-name"


# The field as the user wrote it: list items by [index] (docs/api.md, "Error codes").
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"name": "x", "filter": {"country": ["NG"]}}, "filter.country"),
        ({"name": "x", "filter": {"user_ids": "user-1"}}, "filter.user_ids"),
        ({"name": "x", "filter": {"user_ids": ["user-1", 2]}}, "filter.user_ids[1]"),
        ({"name": "x", "filter": {"attributes": {"tier": "gold"}}}, "filter.attributes.tier"),
        ({"name": "x", "filter": {"attributes": {"tier": [1]}}}, "filter.attributes.tier[0]"),
        ({"name": "x", "filter": {"channel_type": ["FAX"]}}, "filter.channel_type[0]"),
        ({"name": "x", "filter": {"demographic": {"shoe": ["9"]}}}, "'shoe'"),
        ({"name": "x", "filter": {"effective_after": "soon"}}, "filter.effective_after"),
        ({"name": "x", "filter": {"effective_before": 1767225600}}, "filter.effective_before"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"filter": {}}, "name"),
        ({"name": "", "filter": {}}, "name"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    api: tuple[Server, Credentials], body: dict[str, Any], named: str
) -> None:
    server, creds = api
    response = server.client.post(BASE, json=body, headers=auth(creds.write_token))
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert named in message, message
    if named == "filter.effective_after":
        assert "ISO 8601" in message


def test_scopes(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    refused = server.client.post(
        BASE, json={"name": "by-reader", "filter": {}}, headers=auth(creds.read_token)
    )
    assert refused.status_code == 403, refused.text
    assert server.client.get(BASE, headers=auth(creds.write_token)).status_code == 200
    assert server.client.get(BASE).status_code == 401
