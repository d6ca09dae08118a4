"""The Pinpoint-compatible API with the AWS CLI itself (v1, from ``.tools/awscli``) against a
real ``spillway serve``: the flow a migrating user's scripts run — create-app, put-events,
update-endpoint, get-endpoint, get-user-endpoints, export and import jobs through S3 (moto) —
with an integration key as the CLI's credentials, and its errors (exit status 255, Pinpoint's
codes)."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import Server, ServerFactory, cli_json, count_events, create_key
from tests.aws_cli import aws_binary, aws_env, aws_json, run_aws
from tests.integration.destinations.case_s3 import allow, policy
from tests.integration.streaming import create_stream, read_stream
from tests.server_moto import Moto

# Awkward ids: spaces, a slash, a plus and non-ASCII, in endpoint and user ids.
ODD_ENDPOINT = "device 42/é+ß"
ODD_USER = "user 1/ü+x"
JOB_TIMEOUT = 60.0


@dataclass(frozen=True)
class World:
    """A server with its worker, whose AWS identity (moto) may assume a role on a bucket."""

    server: Server
    moto: Moto
    bucket: str
    role_arn: str
    operator: dict[str, str]  # the environment of an operator key's CLI
    home: Path

    def env(self, key: dict[str, Any]) -> dict[str, str]:
        """The CLI's environment for an integration key (``create-key --json``)."""
        return aws_env(key["key_id"], key["secret"], self.home)

    def aws(self, env: dict[str, str], *args: str) -> dict[str, Any]:
        return aws_json("pinpoint", *args, env=env, endpoint_url=self.server.base_url)

    def key(self, app_id: str, scope: str = "write") -> dict[str, str]:
        """The CLI's environment for a fresh key of an app's project."""
        return self.env(create_key(self.server.data_dir, app_id, scope))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, moto: Moto) -> Iterator[World]:
    aws_binary()  # fail first, and clearly, when the CLI is not installed
    base = tmp_path_factory.mktemp("pinpoint-cli")
    home = base / "aws-home"
    home.mkdir()
    bucket = "spw-" + uuid.uuid4().hex[:16]
    s3: Any = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    iam: Any = moto.client("iam")
    # The role Pinpoint's CreateExportJob names; moto does not check its External ID.
    trust = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    name = "PinpointExport-" + uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="s3-kinesis",
        PolicyDocument=policy(allow(["s3:*", "kinesis:*"], "*")),
    )
    # Spillway's own identity: allowed to assume that role, nothing else.
    user = "spillway-" + uuid.uuid4().hex[:8]
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user, PolicyName="p", PolicyDocument=policy(allow("sts:AssumeRole", role["Arn"]))
    )
    access = iam.create_access_key(UserName=user)["AccessKey"]
    factory = ServerFactory(base)
    try:
        server = factory(
            worker=True,
            extra_env={
                "AWS_ACCESS_KEY_ID": access["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": access["SecretAccessKey"],
                # Pinpoint's ARNs carry no endpoint: the operator points STS and S3 at moto.
                "AWS_ENDPOINT_URL_STS": moto.endpoint,
                "AWS_ENDPOINT_URL_S3": moto.endpoint,
                "AWS_ENDPOINT_URL_KINESIS": moto.endpoint,
            },
        )
        operator = cli_json(server.data_dir, "admin", "create-operator-key")
        yield World(
            server,
            moto,
            bucket,
            role["Arn"],
            aws_env(operator["key_id"], operator["secret"], home),
            home,
        )
    finally:
        factory.stop_all()


def create_app(world: World, name: str) -> str:
    made = world.aws(world.operator, "create-app", "--create-application-request", f"Name={name}")
    app_id: str = made["ApplicationResponse"]["Id"]
    return app_id


@pytest.fixture(scope="module")
def app(world: World) -> str:
    return create_app(world, f"cli-{uuid.uuid4().hex[:8]}")


def events_request(run: str) -> dict[str, Any]:
    """EventsRequest: 3 endpoints and 10 events, one of which (a bad Timestamp) is invalid."""
    batch: dict[str, Any] = {}
    number = 0
    for e in range(3):
        endpoint_id = f"{run}-ep-{e}" if e else ODD_ENDPOINT + run
        events: dict[str, Any] = {}
        for _ in range(4 if e == 0 else 3):
            events[f"ev-{number}"] = {
                "EventType": "_session.start" if number % 3 == 0 else "Purchase",
                "Timestamp": "2026-11-29T10:00:00.000Z",
                "Attributes": {"sku": f"sku-{number}"},
                "Metrics": {"price": 9.99 + number},
                "AppPackageName": "com.example.shop",
                "AppVersionCode": "42",
                "Session": {"Id": f"s-{e}", "StartTimestamp": "2026-11-29T09:59:00.000Z"},
            }
            number += 1
        batch[endpoint_id] = {
            "Endpoint": {
                "ChannelType": "EMAIL",
                "Address": f"{e}@example.com",
                "User": {"UserId": ODD_USER + run if e == 0 else f"{run}-user-{e}"},
            },
            "Events": events,
        }
    assert number == 10
    batch[f"{run}-ep-2"]["Events"]["ev-9"]["Timestamp"] = "yesterday"
    return {"BatchItem": batch}


def test_create_app_with_an_operator_key(world: World) -> None:
    name = f"cli-made-{uuid.uuid4().hex[:8]}"
    made = world.aws(world.operator, "create-app", "--create-application-request", f"Name={name}")
    shown = made["ApplicationResponse"]
    assert shown["Name"] == name and len(shown["Id"]) == 32
    assert shown["Arn"].endswith(f":apps/{shown['Id']}")
    found = world.aws(world.operator, "get-app", "--application-id", shown["Id"])
    assert found["ApplicationResponse"]["Id"] == shown["Id"]


def test_put_events_stores_the_valid_events_once(world: World, app: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    request = tmp_path / "events.json"
    request.write_text(json.dumps(events_request(run)), encoding="utf-8")
    env = world.key(app, "ingest")
    before = count_events(world.server.data_dir, app)
    answer = world.aws(
        env, "put-events", "--application-id", app, "--events-request", f"file://{request}"
    )
    results = answer["EventsResponse"]["Results"]
    assert set(results) == {ODD_ENDPOINT + run, f"{run}-ep-1", f"{run}-ep-2"}
    statuses: dict[str, int] = {}
    for endpoint_id, result in results.items():
        assert result["EndpointItemResponse"]["StatusCode"] == 202, (endpoint_id, result)
        for event_id, item in result["EventsItemResponse"].items():
            statuses[event_id] = item["StatusCode"]
    assert statuses.pop("ev-9") == 400
    assert set(statuses.values()) == {202} and len(statuses) == 9
    assert count_events(world.server.data_dir, app) == before + 9

    again = world.aws(
        env, "put-events", "--application-id", app, "--events-request", f"file://{request}"
    )
    assert set(again["EventsResponse"]["Results"]) == set(results)
    assert count_events(world.server.data_dir, app) == before + 9  # nothing stored twice


def test_a_read_key_cannot_put_events(world: World, app: str, tmp_path: Path) -> None:
    request = tmp_path / "events.json"
    request.write_text(json.dumps(events_request(uuid.uuid4().hex[:6])), encoding="utf-8")
    result = run_aws(
        "pinpoint",
        "put-events",
        "--application-id",
        app,
        "--events-request",
        f"file://{request}",
        env=world.key(app, "read"),
        endpoint_url=world.server.base_url,
    )
    assert result.returncode == 255, result.stdout + result.stderr
    assert "(ForbiddenException) when calling the PutEvents operation" in result.stderr


def test_endpoints_round_trip_with_awkward_ids(world: World, app: str, tmp_path: Path) -> None:
    env = world.key(app)
    run = uuid.uuid4().hex[:6]
    endpoint_id, user_id = f"{ODD_ENDPOINT} {run}", f"{ODD_USER} {run}"
    request = {
        "ChannelType": "EMAIL",
        "Address": "ü@example.com",
        "Attributes": {"interests": ["shoes", "hats"]},
        "Demographic": {"Platform": "ios", "Timezone": "Europe/Berlin"},
        "Location": {"City": "Zürich", "Country": "CH"},
        "Metrics": {"orders": 3.0},
        "User": {"UserId": user_id, "UserAttributes": {"plan": ["pro"]}},
    }
    file = tmp_path / "endpoint.json"
    file.write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
    updated = world.aws(
        env,
        "update-endpoint",
        "--application-id",
        app,
        "--endpoint-id",
        endpoint_id,
        "--endpoint-request",
        f"file://{file}",
    )
    assert updated["MessageBody"]["Message"]

    shown = world.aws(env, "get-endpoint", "--application-id", app, "--endpoint-id", endpoint_id)[
        "EndpointResponse"
    ]
    assert shown["Id"] == endpoint_id and shown["ApplicationId"] == app
    assert shown["Address"] == "ü@example.com" and shown["ChannelType"] == "EMAIL"
    assert shown["Attributes"] == {"interests": ["shoes", "hats"]}
    assert shown["Location"]["City"] == "Zürich"
    assert shown["User"]["UserId"] == user_id
    assert shown["User"]["UserAttributes"] == {"plan": ["pro"]}

    users = world.aws(env, "get-user-endpoints", "--application-id", app, "--user-id", user_id)
    assert [item["Id"] for item in users["EndpointsResponse"]["Item"]] == [endpoint_id]


def _wait(world: World, env: dict[str, str], app: str, kind: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        shown: dict[str, Any] = world.aws(
            env, f"get-{kind}-job", "--application-id", app, "--job-id", job_id
        )[f"{kind.capitalize()}JobResponse"]
        if shown["JobStatus"] in ("COMPLETED", "FAILED"):
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)


def _exported_ids(world: World, prefix: str) -> list[str]:
    """The endpoint ids in every ``.gz`` piece under the prefix, read with moto's admin key."""
    s3: Any = world.moto.client("s3")
    listed = s3.list_objects_v2(Bucket=world.bucket, Prefix=prefix).get("Contents", [])
    pieces = [item["Key"] for item in listed if item["Key"].endswith(".gz")]
    assert pieces, [item["Key"] for item in listed]
    ids: list[str] = []
    for key in pieces:
        body = s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
        for line in gzip.decompress(body).decode("utf-8").splitlines():
            if line.strip():
                ids.append(json.loads(line)["Id"])
    return ids


def test_export_then_import_moves_every_endpoint(world: World, tmp_path: Path) -> None:
    source = create_app(world, f"cli-src-{uuid.uuid4().hex[:8]}")
    env = world.key(source)
    run = uuid.uuid4().hex[:6]
    request = tmp_path / "events.json"
    request.write_text(json.dumps(events_request(run)), encoding="utf-8")
    world.aws(
        env, "put-events", "--application-id", source, "--events-request", f"file://{request}"
    )
    expected = set(events_request(run)["BatchItem"])

    prefix = f"pinpoint-export/{run}/"
    created = world.aws(
        env,
        "create-export-job",
        "--application-id",
        source,
        "--export-job-request",
        f"S3UrlPrefix=s3://{world.bucket}/{prefix},RoleArn={world.role_arn}",
    )["ExportJobResponse"]
    assert created["Type"] == "EXPORT" and created["ApplicationId"] == source
    done = _wait(world, env, source, "export", created["Id"])
    assert done["JobStatus"] == "COMPLETED", done
    assert done["Definition"]["S3UrlPrefix"] == f"s3://{world.bucket}/{prefix}"
    ids = _exported_ids(world, prefix)
    assert sorted(ids) == sorted(expected)  # every endpoint, once

    target = create_app(world, f"cli-dst-{uuid.uuid4().hex[:8]}")
    target_env = world.key(target)
    imported = world.aws(
        target_env,
        "create-import-job",
        "--application-id",
        target,
        "--import-job-request",
        f"Format=JSON,S3Url=s3://{world.bucket}/{prefix},RoleArn={world.role_arn}",
    )["ImportJobResponse"]
    finished = _wait(world, target_env, target, "import", imported["Id"])
    assert finished["JobStatus"] == "COMPLETED", finished
    for endpoint_id in expected:
        shown = world.aws(
            target_env, "get-endpoint", "--application-id", target, "--endpoint-id", endpoint_id
        )["EndpointResponse"]
        assert shown["Id"] == endpoint_id and shown["ApplicationId"] == target


def test_an_event_stream_set_with_the_cli_gets_put_events_in_pinpoints_shape(
    world: World, tmp_path: Path
) -> None:
    app_id = create_app(world, f"cli-stream-{uuid.uuid4().hex[:8]}")
    env = world.key(app_id)
    name = create_stream(world.moto, shards=1)
    kinesis: Any = world.moto.client("kinesis")
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    put = world.aws(
        env,
        "put-event-stream",
        "--application-id",
        app_id,
        "--write-event-stream",
        f"DestinationStreamArn={arn},RoleArn={world.role_arn}",
    )["EventStream"]
    assert put["DestinationStreamArn"] == arn and put["ApplicationId"] == app_id
    run = uuid.uuid4().hex[:6]
    request = tmp_path / "events.json"
    request.write_text(json.dumps(events_request(run)), encoding="utf-8")
    world.aws(
        env, "put-events", "--application-id", app_id, "--events-request", f"file://{request}"
    )
    deadline = time.monotonic() + 30
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(records) < 9:
        records = [json.loads(data) for _key, data in read_stream(world.moto, name)]
        time.sleep(0.3)
    assert len(records) == 9  # the 10 sent less the invalid one, each once
    assert {r["event_type"] for r in records} == {"_session.start", "Purchase"}
    for record in records:
        assert record["application"]["app_id"] == app_id
        assert record["application"]["package_name"] == "com.example.shop"
        assert record["session"]["session_id"].startswith("s-")
        assert record["attributes"]["sku"].startswith("sku-")
    got = world.aws(env, "get-event-stream", "--application-id", app_id)["EventStream"]
    assert got["DestinationStreamArn"] == arn


def test_the_endpoint_can_come_from_the_environment(world: World, app: str) -> None:
    """AWS_ENDPOINT_URL_PINPOINT instead of --endpoint-url (docs/pinpoint.md)."""
    env = {**world.key(app, "read"), "AWS_ENDPOINT_URL_PINPOINT": world.server.base_url}
    shown = aws_json("pinpoint", "get-app", "--application-id", app, env=env)
    assert shown["ApplicationResponse"]["Id"] == app


@pytest.mark.parametrize(
    ("args", "code", "operation"),
    [
        (("get-app", "--application-id", "0" * 32), "NotFoundException", "GetApp"),
        (("get-apps",), "ForbiddenException", "GetApps"),  # the wrong secret below
        (("get-campaigns", "--application-id", "{app}"), None, "GetCampaigns"),
    ],
)
def test_errors_exit_255_with_pinpoints_message(
    world: World, app: str, args: tuple[str, ...], code: str | None, operation: str
) -> None:
    env = world.key(app, "read")
    if code == "ForbiddenException":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong-" + env["AWS_SECRET_ACCESS_KEY"]
    result = run_aws(
        "pinpoint",
        *(a.format(app=app) for a in args),
        env=env,
        endpoint_url=world.server.base_url,
    )
    assert result.returncode == 255, result.stdout + result.stderr
    assert "An error occurred (" in result.stderr
    assert f"when calling the {operation} operation" in result.stderr
    if code is not None:
        assert f"({code})" in result.stderr
    else:
        assert "not support" in result.stderr
