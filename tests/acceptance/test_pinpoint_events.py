"""PutEvents and the endpoint operations of the Pinpoint-compatible API, with an unmodified boto3
client (an integration key's id and secret as its credentials) against a real ``spillway
serve``: events land as Spillway events (read back from the server's SQLite file), a retried
PutEvents stores nothing twice, endpoints merge as on the native API, odd ids round-trip, and
scopes and apps are enforced."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.acceptance.conftest import Server, count_events, create_key, create_project, db_path

REGION = "us-east-1"
# Ids a URL must carry percent-encoded: a space, '/', '+', non-ASCII, '%' itself.
ODD_IDS = ["with space", "a/b/c", "x+y", "grüße-日本", "50%off", "/leading"]


@dataclass(frozen=True)
class App:
    app_id: str
    client: Any  # a write key's Pinpoint client
    reader: Any  # a read key's
    unchecked: Any  # a write key's, without the SDK's own parameter checks


def pinpoint(server: Server, key: dict[str, Any], *, validate: bool = True) -> Any:
    """An unmodified boto3 Pinpoint client signing with an integration key (no retries);
    ``validate=False`` lets it send what its model would refuse, as other SDKs may."""
    return boto3.client(
        "pinpoint",
        endpoint_url=server.base_url,
        region_name=REGION,
        aws_access_key_id=key["key_id"],
        aws_secret_access_key=key["secret"],
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=validate
        ),
    )


def new_app(server: Server) -> App:
    """A fresh project (app) with a write key and a read key."""
    project = create_project(server.data_dir, f"pp-{uuid.uuid4().hex[:10]}", server.extra_env)
    app_id = project["project_id"]
    write = create_key(server.data_dir, app_id, "write", server.extra_env)
    read = create_key(server.data_dir, app_id, "read", server.extra_env)
    return App(
        app_id,
        pinpoint(server, write),
        pinpoint(server, read),
        pinpoint(server, write, validate=False),
    )


@pytest.fixture
def app(server: Server) -> App:
    return new_app(server)


def refused(call: Callable[[], Any]) -> tuple[int, str, str]:
    """The HTTP status, error code and message botocore parsed from a refused call."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def stored_events(server: Server, app_id: str) -> dict[str, dict[str, Any]]:
    """The app's stored events by event_uuid: the columns and the stored payload."""
    with closing(sqlite3.connect(db_path(server.data_dir), timeout=30)) as conn:
        rows = conn.execute(
            "select e.event_uuid, e.event_name, e.uid, e.event_time, e.payload from events e "
            "join projects p on p.id = e.project_id where p.app_id = ?",
            (app_id,),
        ).fetchall()
    return {
        # The id is stored as its 16 bytes (migration 0013): keyed by its text form.
        str(uuid.UUID(bytes=row[0])): {
            **json.loads(row[4]),
            "event_name": row[1],
            "uid": row[2],
            "event_time": row[3],
        }
        for row in rows
    }


def event(index: int, **changes: Any) -> dict[str, Any]:
    """A Pinpoint Event."""
    body: dict[str, Any] = {
        "EventType": ["_session.start", "Viewed Product", "Purchase"][index % 3],
        "Timestamp": f"2026-11-29T10:{index:02d}:00.250Z",
        "Attributes": {"product": f"sku-{index}"},
        "Metrics": {"price": index + 0.5},
        "AppPackageName": "com.example.shop",
        "AppTitle": "Shop",
        "AppVersionCode": "42",
        "ClientSdkVersion": "2.1.0",
        "SdkName": "aws-amplify",
        "Session": {"Id": f"session-{index // 4}", "StartTimestamp": "2026-11-29T10:00:00Z"},
    }
    body.update(changes)
    return body


def batch() -> dict[str, Any]:
    """3 endpoints, 10 events; event ``e-7`` of ``ep-2`` has a Timestamp that is no date."""
    endpoints = {
        "ep-1": {
            "ChannelType": "GCM",
            "Address": "token-1",
            "Demographic": {"Platform": "android", "Make": "Pixel", "Locale": "en_GB"},
            "User": {"UserId": "user-1", "UserAttributes": {"plan": ["pro"]}},
        },
        "ep-2": {"ChannelType": "APNS", "Address": "token-2", "User": {"UserId": "user-2"}},
        "ep-3": {"ChannelType": "EMAIL", "Address": "c@example.com"},  # no user
    }
    owners = ["ep-1"] * 4 + ["ep-2"] * 4 + ["ep-3"] * 2
    items: dict[str, Any] = {e: {"Endpoint": body, "Events": {}} for e, body in endpoints.items()}
    for index, owner in enumerate(owners):
        items[owner]["Events"][f"e-{index}"] = event(index)
    items["ep-2"]["Events"]["e-7"]["Timestamp"] = "last Tuesday"
    return {"BatchItem": items}


def test_put_events_stores_each_valid_event_once(server: Server, app: App) -> None:
    answer = app.client.put_events(ApplicationId=app.app_id, EventsRequest=batch())
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    results = answer["EventsResponse"]["Results"]
    assert set(results) == {"ep-1", "ep-2", "ep-3"}
    statuses = {}
    for result in results.values():
        assert result["EndpointItemResponse"]["StatusCode"] == 202, result
        for event_id, item in result["EventsItemResponse"].items():
            statuses[event_id] = item
    assert len(statuses) == 10
    assert statuses["e-7"]["StatusCode"] == 400
    assert "Timestamp" in statuses["e-7"]["Message"]
    assert all(statuses[f"e-{i}"]["StatusCode"] == 202 for i in range(10) if i != 7)

    stored = stored_events(server, app.app_id)
    assert len(stored) == 9
    by_name = {(e["uid"], e["event_attributes"]["product"]): e for e in stored.values()}
    first = by_name[("user-1", "sku-0")]
    assert first["event_name"] == "_session.start"
    assert first["event_time"] == 1_795_946_400_250  # 2026-11-29T10:00:00.250Z in ms
    assert first["event_attributes"] == {"product": "sku-0", "price": 0.5}
    assert first["user_attributes"] == {"plan": ["pro"]}
    device = first["device_attributes"]
    assert device["device_id"] == "ep-1"
    assert (device["platform"], device["make"], device["locale"]) == ("android", "Pixel", "en_GB")
    assert device["application"] == {
        "package_name": "com.example.shop",
        "title": "Shop",
        "version_code": "42",
        "sdk": {"name": "aws-amplify", "version": "2.1.0"},
    }
    assert device["session"] == {"session_id": "session-0", "start_timestamp": 1_795_946_400_000}
    assert device["endpoint"]["ChannelType"] == "GCM"
    # No user on the endpoint: the endpoint id is the uid.
    assert {e["uid"] for e in stored.values()} == {"user-1", "user-2", "ep-3"}

    # The same request again (a client's retry): answered the same, nothing new stored.
    again = app.client.put_events(ApplicationId=app.app_id, EventsRequest=batch())
    assert again["EventsResponse"]["Results"] == results
    assert stored_events(server, app.app_id).keys() == stored.keys()

    # The endpoints were upserted by PutEvents.
    shown = app.reader.get_endpoint(ApplicationId=app.app_id, EndpointId="ep-1")
    assert shown["EndpointResponse"]["User"]["UserId"] == "user-1"


def test_put_events_refuses_bad_events_and_endpoints_in_their_slots(
    server: Server, app: App
) -> None:
    request = {
        "BatchItem": {
            "good": {
                "Endpoint": {},
                "Events": {
                    "ok": event(1),
                    "bad-time": event(2, Timestamp="yesterday"),
                    "too-old": event(6, Timestamp="1969-12-31T23:59:59Z"),
                    "long-type": event(7, EventType="x" * 300),
                    "bad-metric": event(3, Metrics={"price": float("nan")}),
                    "no-session-id": event(4, Session={"StartTimestamp": "2026-11-29T10:00:00Z"}),
                },
            },
            "bad-endpoint": {
                "Endpoint": {"ChannelType": "PIGEON"},
                "Events": {"lost": event(5)},
            },
        }
    }
    answer = app.unchecked.put_events(ApplicationId=app.app_id, EventsRequest=request)
    results = answer["EventsResponse"]["Results"]
    good = results["good"]["EventsItemResponse"]
    assert good["ok"]["StatusCode"] == 202
    assert good["bad-time"]["StatusCode"] == 400 and "Timestamp" in good["bad-time"]["Message"]
    # Refused by the ingest path's own checks, told in Pinpoint's names.
    assert good["too-old"]["StatusCode"] == 400
    assert good["too-old"]["Message"] == "Timestamp must not be before 1970"
    assert good["long-type"]["StatusCode"] == 400
    assert good["long-type"]["Message"] == "EventType is longer than 256 characters"
    assert good["bad-metric"]["StatusCode"] == 400
    assert "Metrics.price" in good["bad-metric"]["Message"]
    assert good["no-session-id"]["StatusCode"] == 400
    assert "Session.Id" in good["no-session-id"]["Message"]
    bad = results["bad-endpoint"]
    assert bad["EndpointItemResponse"]["StatusCode"] == 400
    assert "ChannelType" in bad["EndpointItemResponse"]["Message"]
    assert bad["EventsItemResponse"]["lost"]["StatusCode"] == 400
    assert count_events(server.data_dir, app.app_id) == 1
    status, code, _ = refused(
        lambda: app.reader.get_endpoint(ApplicationId=app.app_id, EndpointId="bad-endpoint")
    )
    assert (status, code) == (404, "NotFoundException")


def test_endpoint_operations(app: App) -> None:
    client, app_id = app.client, app.app_id
    sent = client.update_endpoint(
        ApplicationId=app_id,
        EndpointId="device-1",
        EndpointRequest={
            "ChannelType": "APNS",
            "Address": "apns-token",
            "Attributes": {"interests": ["shoes", "hats"]},
            "Demographic": {"Platform": "ios", "AppVersion": "3.2"},
            "Location": {"Country": "GBR", "City": "Leeds"},
            "Metrics": {"visits": 3},
            "OptOut": "NONE",
            "User": {"UserId": "alice", "UserAttributes": {"tier": ["gold"]}},
        },
    )
    assert sent["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert sent["MessageBody"]["Message"] == "Accepted"
    assert sent["MessageBody"]["RequestID"]

    # A second update merges maps key by key and replaces scalars, as the native API does.
    client.update_endpoint(
        ApplicationId=app_id,
        EndpointId="device-1",
        EndpointRequest={"Address": "new-token", "Attributes": {"size": ["M"]}},
    )
    batch_answer = client.update_endpoints_batch(
        ApplicationId=app_id,
        EndpointBatchRequest={
            "Item": [
                {"Id": "device-2", "ChannelType": "GCM", "User": {"UserId": "alice"}},
                {"Id": "device-3", "ChannelType": "EMAIL", "Address": "b@example.com"},
            ]
        },
    )
    assert batch_answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert batch_answer["MessageBody"]["Message"] == "Accepted"

    shown = app.reader.get_endpoint(ApplicationId=app_id, EndpointId="device-1")
    endpoint = shown["EndpointResponse"]
    assert endpoint["Id"] == "device-1"
    assert endpoint["ApplicationId"] == app_id
    assert endpoint["Address"] == "new-token"
    assert endpoint["ChannelType"] == "APNS"
    assert endpoint["Attributes"] == {"interests": ["shoes", "hats"], "size": ["M"]}
    assert endpoint["Demographic"] == {"Platform": "ios", "AppVersion": "3.2"}
    assert endpoint["Location"] == {"Country": "GBR", "City": "Leeds"}
    assert endpoint["Metrics"] == {"visits": 3.0}
    assert endpoint["User"] == {"UserId": "alice", "UserAttributes": {"tier": ["gold"]}}
    assert endpoint["CreationDate"].endswith("Z") and "T" in endpoint["CreationDate"]
    assert 0 <= int(endpoint["CohortId"]) <= 99
    again = app.reader.get_endpoint(ApplicationId=app_id, EndpointId="device-1")
    assert again["EndpointResponse"]["CohortId"] == endpoint["CohortId"]

    users = app.reader.get_user_endpoints(ApplicationId=app_id, UserId="alice")
    assert sorted(e["Id"] for e in users["EndpointsResponse"]["Item"]) == ["device-1", "device-2"]

    deleted = client.delete_endpoint(ApplicationId=app_id, EndpointId="device-1")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert deleted["EndpointResponse"]["Address"] == "new-token"
    status, code, _ = refused(
        lambda: client.get_endpoint(ApplicationId=app_id, EndpointId="device-1")
    )
    assert (status, code) == (404, "NotFoundException")

    gone = client.delete_user_endpoints(ApplicationId=app_id, UserId="alice")
    assert gone["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert [e["Id"] for e in gone["EndpointsResponse"]["Item"]] == ["device-2"]
    status, code, _ = refused(
        lambda: client.get_user_endpoints(ApplicationId=app_id, UserId="alice")
    )
    assert (status, code) == (404, "NotFoundException")
    # The endpoint of no user is untouched.
    assert client.get_endpoint(ApplicationId=app_id, EndpointId="device-3")["EndpointResponse"]


def test_endpoint_batch_is_refused_whole_when_an_item_is_invalid(app: App) -> None:
    status, code, message = refused(
        lambda: app.client.update_endpoints_batch(
            ApplicationId=app.app_id,
            EndpointBatchRequest={"Item": [{"Id": "fine"}, {"Id": "wrong", "OptOut": "SOMETIMES"}]},
        )
    )
    assert (status, code) == (400, "BadRequestException")
    assert "Item[1]" in message and "OptOut" in message
    status, code, _ = refused(
        lambda: app.client.get_endpoint(ApplicationId=app.app_id, EndpointId="fine")
    )
    assert code == "NotFoundException"
    status, code, message = refused(
        lambda: app.client.update_endpoints_batch(
            ApplicationId=app.app_id,
            EndpointBatchRequest={"Item": [{"Id": f"e{i}"} for i in range(101)]},
        )
    )
    assert (status, code) == (400, "BadRequestException") and "100" in message


@pytest.mark.parametrize("odd", ODD_IDS)
def test_odd_ids_round_trip(server: Server, app: App, odd: str) -> None:
    user = f"user {odd}"
    app.client.update_endpoint(
        ApplicationId=app.app_id,
        EndpointId=odd,
        EndpointRequest={"ChannelType": "CUSTOM", "User": {"UserId": user}},
    )
    shown = app.client.get_endpoint(ApplicationId=app.app_id, EndpointId=odd)
    assert shown["EndpointResponse"]["Id"] == odd
    users = app.client.get_user_endpoints(ApplicationId=app.app_id, UserId=user)
    assert [e["Id"] for e in users["EndpointsResponse"]["Item"]] == [odd]
    sent = app.client.put_events(
        ApplicationId=app.app_id,
        EventsRequest={"BatchItem": {odd: {"Endpoint": {}, "Events": {odd: event(1)}}}},
    )
    assert sent["EventsResponse"]["Results"][odd]["EventsItemResponse"][odd]["StatusCode"] == 202
    [stored] = stored_events(server, app.app_id).values()
    assert (stored["uid"], stored["device_attributes"]["device_id"]) == (user, odd)
    deleted = app.client.delete_endpoint(ApplicationId=app.app_id, EndpointId=odd)
    assert deleted["EndpointResponse"]["Id"] == odd
    app.client.update_endpoint(
        ApplicationId=app.app_id, EndpointId=odd, EndpointRequest={"User": {"UserId": user}}
    )
    gone = app.client.delete_user_endpoints(ApplicationId=app.app_id, UserId=user)
    assert [e["Id"] for e in gone["EndpointsResponse"]["Item"]] == [odd]


def test_scopes_and_apps(server: Server, app: App) -> None:
    request = {"BatchItem": {"ep": {"Endpoint": {}, "Events": {"e": event(0)}}}}
    # A read key reads, and cannot send events or change endpoints.
    for call in (
        lambda: app.reader.put_events(ApplicationId=app.app_id, EventsRequest=request),
        lambda: app.reader.update_endpoint(
            ApplicationId=app.app_id, EndpointId="ep", EndpointRequest={}
        ),
        lambda: app.reader.delete_user_endpoints(ApplicationId=app.app_id, UserId="u"),
    ):
        status, code, message = refused(call)
        assert (status, code) == (403, "ForbiddenException")
        assert "read" in message
    assert count_events(server.data_dir, app.app_id) == 0

    # An ingest key (what an app embeds) sends events and endpoints, and reads nothing back.
    ingest = pinpoint(server, create_key(server.data_dir, app.app_id, "ingest"))
    sent = ingest.put_events(ApplicationId=app.app_id, EventsRequest=request)
    assert sent["EventsResponse"]["Results"]["ep"]["EventsItemResponse"]["e"]["StatusCode"] == 202
    status, code, _ = refused(
        lambda: ingest.get_endpoint(ApplicationId=app.app_id, EndpointId="ep")
    )
    assert (status, code) == (403, "ForbiddenException")

    # An unknown app, and another project's app, are not found (for every operation).
    other = new_app(server)
    for app_id in (uuid.uuid4().hex, other.app_id):
        for call in (
            lambda a=app_id: app.client.put_events(ApplicationId=a, EventsRequest=request),
            lambda a=app_id: app.client.get_endpoint(ApplicationId=a, EndpointId="ep"),
            lambda a=app_id: app.client.get_user_endpoints(ApplicationId=a, UserId="u"),
        ):
            status, code, _ = refused(call)
            assert (status, code) == (404, "NotFoundException")
    assert count_events(server.data_dir, other.app_id) == 0
