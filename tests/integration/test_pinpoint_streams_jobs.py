"""Pinpoint's event stream and export/import jobs through an unmodified boto3 ``pinpoint`` client
signed with an integration key, against an in-process Spillway and moto with IAM enforced.

Spillway's own AWS identity is a moto user allowed only to assume the roles; the roles trust the
apps' External IDs. Nothing names moto's endpoint but botocore's standard AWS_ENDPOINT_URL_<SERVICE>
variables (the ARNs carry none). What arrives in Kinesis and S3 is read back with the admin's own
boto3 clients and compared with what the test sent.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import orjson
import pytest
import uvicorn
from botocore.config import Config
from sqlalchemy.engine import Engine

from spillway.api.app import create_app
from spillway.api.pinpoint.streams import EVENT_STREAM
from spillway.engine.streamer import StreamDelivery
from spillway.filters import EndpointFilter
from spillway.ingest import judge
from spillway.model import Actor, Project
from spillway.secrets import SecretBox
from spillway.services import jobs as jobs_service
from spillway.services import segments
from spillway.services.projects import Scope, create_key, create_project
from spillway.settings import Settings
from spillway.store import catalog
from spillway.store.events import insert_events
from tests.integration.destinations.case_s3 import S3World, allow, as_operator, policy
from tests.integration.exporting import LIMITS
from tests.integration.streaming import create_stream, read_stream
from tests.integration.test_jobs import lines, seed, stored
from tests.server_moto import REGION, Moto
from tests.servers import free_port, wait_for_port


@dataclass
class App:
    project: Project
    client: Any  # boto3 pinpoint client signed with this app's write key
    read_client: Any  # … with its read key


@dataclass
class Spillway:
    engine: Engine
    box: SecretBox
    endpoint: str

    def client(self, key_id: str, secret: str) -> Any:
        return boto3.client(
            "pinpoint",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}),
        )

    def app(self, name: str) -> App:
        project = create_project(self.engine, f"{name}-{uuid.uuid4().hex[:6]}")
        write = create_key(self.engine, self.box, project.name, Scope.WRITE)
        read = create_key(self.engine, self.box, project.name, Scope.READ)
        return App(
            project,
            self.client(write.key_id, write.secret),
            self.client(read.key_id, read.secret),
        )


@pytest.fixture
def spillway(tmp_path: Path, db_url: str) -> Iterator[Spillway]:
    """Spillway's API served in this process (no worker: the tests drive delivery and jobs)."""
    settings = Settings(data_dir=tmp_path, database_url=db_url)
    api = create_app(settings)
    context = api.state.context
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    yield Spillway(context.engine, context.box, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)


def role(moto: Moto, external_ids: list[str], *statements: dict[str, Any]) -> str:
    """A role trusting these External IDs, allowed ``statements``; its ARN."""
    iam: Any = moto.client("iam")
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_ids}},
        }
    )
    name = "PinpointRole-" + uuid.uuid4().hex[:8]
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"])
    iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=policy(*statements))
    return arn


def operate(monkeypatch: pytest.MonkeyPatch, s3_world: S3World, *roles: str) -> None:
    """Spillway's own identity: allowed to assume ``roles``, nothing else; STS, S3 and Kinesis
    reached through AWS_ENDPOINT_URL_<SERVICE>."""
    service = s3_world.user(allow("sts:AssumeRole", list(roles)))
    as_operator(monkeypatch, s3_world.moto, service, "sts", "s3", "kinesis", "firehose")


def code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


# --- the event stream ---------------------------------------------------------------------------


def stream_arn(moto: Moto, name: str) -> str:
    kinesis: Any = moto.client("kinesis")
    return str(
        kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    )


def send(engine: Engine, project_id: int, count: int, name: str) -> list[str]:
    """Store ``count`` events through Spillway's ingest rules; their uuids."""
    now = int(time.time() * 1000)
    raw = [
        {
            "event_name": name,
            "event_type": "USER_ACTION_EVENT",
            "event_time": now / 1000,
            "uid": f"user-{i % 3}",
            "event_attributes": {"screen": f"s{i}", "price": i * 1.5},
            "device_attributes": {"device_id": f"device-{i % 3}"},
        }
        for i in range(count)
    ]
    judged = judge(raw, now, LIMITS)
    assert not judged.rejected, judged.rejected
    insert_events(engine, project_id, now, judged.rows)
    return [str(uuid.UUID(bytes=row[1])) for row in judged.rows]  # rows hold the 16 bytes


def deliver(engine: Engine, box: SecretBox) -> None:
    delivery = StreamDelivery(engine, box, linger_ms=0)
    for _ in range(50):
        if not delivery.pass_once():
            return
    raise AssertionError("the stream did not catch up")


def event_stream_parts(engine: Engine, project_id: int) -> tuple[list[Any], list[Any]]:
    """The project's live destinations and exports named as its event stream."""
    with engine.connect() as conn:
        destinations = [
            d for d in catalog.list_destinations(conn, project_id) if d.name == EVENT_STREAM
        ]
        exports = [e for e in catalog.list_exports(conn, project_id) if e.name == EVENT_STREAM]
    return destinations, exports


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_event_stream_delivers_pinpoint_records_to_kinesis(
    spillway: Spillway, s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = s3_world.moto
    app = spillway.app("stream")
    first, second = create_stream(moto, shards=1), create_stream(moto, shards=1)
    arns = [stream_arn(moto, first), stream_arn(moto, second)]
    role_arn = role(moto, [app.project.external_id], allow("kinesis:*", "*"))
    operate(monkeypatch, s3_world, role_arn)
    app_id = app.project.app_id

    with pytest.raises(botocore.exceptions.ClientError) as missing:
        app.client.get_event_stream(ApplicationId=app_id)
    assert code(missing) == "NotFoundException"

    request = {"DestinationStreamArn": arns[0], "RoleArn": role_arn}
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        app.read_client.put_event_stream(ApplicationId=app_id, WriteEventStream=request)
    assert code(refused) == "ForbiddenException"

    put = app.client.put_event_stream(ApplicationId=app_id, WriteEventStream=request)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    shown = put["EventStream"]
    assert shown["ApplicationId"] == app_id
    assert shown["DestinationStreamArn"] == arns[0] and shown["RoleArn"] == role_arn
    assert shown["LastModifiedDate"].endswith("Z") and shown["LastUpdatedBy"].startswith("key:")
    assert app.read_client.get_event_stream(ApplicationId=app_id)["EventStream"] == shown
    # Put again: the same stream, still one destination and one export.
    again = app.client.put_event_stream(ApplicationId=app_id, WriteEventStream=request)
    assert again["EventStream"] == shown
    destinations, exports = event_stream_parts(spillway.engine, app.project.id)
    assert len(destinations) == 1 and destinations[0].kind == "kinesis"
    assert len(exports) == 1 and exports[0].is_stream
    assert exports[0].settings.record_format == "pinpoint"

    sent = send(spillway.engine, app.project.id, 12, "purchase")
    deliver(spillway.engine, spillway.box)
    records = [orjson.loads(data) for _key, data in read_stream(moto, first)]
    assert sorted(r["attributes"]["event_uuid"] for r in records) == sorted(sent)
    for record in records:  # Pinpoint's event stream envelope
        assert record["event_type"] == "purchase"
        assert record["application"]["app_id"] == app_id
        assert record["event_version"] == "3.1"
        assert record["attributes"]["screen"].startswith("s")
        assert "price" in record["metrics"]
        assert record["endpoint"]["User"]["UserId"].startswith("user-")

    # Events sent with Pinpoint's PutEvents arrive too, in the same envelope.
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    batch = {
        "device-a": {
            "Endpoint": {"ChannelType": "GCM", "User": {"UserId": "pinpoint-user"}},
            "Events": {
                f"e{i}": {
                    "EventType": "_session.start",
                    "Timestamp": now,
                    "Attributes": {"level": str(i)},
                    "Metrics": {"score": float(i)},
                }
                for i in range(3)
            },
        }
    }
    answer = app.client.put_events(ApplicationId=app_id, EventsRequest={"BatchItem": batch})
    results = answer["EventsResponse"]["Results"]["device-a"]["EventsItemResponse"]
    assert {r["StatusCode"] for r in results.values()} == {202}
    deliver(spillway.engine, spillway.box)
    records = [orjson.loads(data) for _key, data in read_stream(moto, first)]
    pinpoint = [r for r in records if r["event_type"] == "_session.start"]
    assert len(records) == 15 and len(pinpoint) == 3
    assert sorted(r["attributes"]["level"] for r in pinpoint) == ["0", "1", "2"]
    assert sorted(r["metrics"]["score"] for r in pinpoint) == [0.0, 1.0, 2.0]
    assert {r["application"]["app_id"] for r in pinpoint} == {app_id}
    assert {r["endpoint"]["User"]["UserId"] for r in pinpoint} == {"pinpoint-user"}

    # Another stream replaces the first: one destination and export still, later events go
    # to the new stream only.
    moved = app.client.put_event_stream(
        ApplicationId=app_id, WriteEventStream={**request, "DestinationStreamArn": arns[1]}
    )["EventStream"]
    assert moved["DestinationStreamArn"] == arns[1]
    destinations, exports = event_stream_parts(spillway.engine, app.project.id)
    assert len(destinations) == 1 and len(exports) == 1
    later = send(spillway.engine, app.project.id, 5, "later")
    deliver(spillway.engine, spillway.box)
    assert len(read_stream(moto, first)) == 15
    assert sorted(
        orjson.loads(d)["attributes"]["event_uuid"] for _k, d in read_stream(moto, second)
    ) == sorted(later)

    with pytest.raises(botocore.exceptions.ClientError) as bad:
        app.client.put_event_stream(
            ApplicationId=app_id,
            WriteEventStream={**request, "DestinationStreamArn": "arn:aws:sqs:us-east-1:1:q"},
        )
    assert code(bad) == "BadRequestException"
    assert "arn:aws:kinesis:<region>:<account-id>:stream/<name>" in str(bad.value)
    assert "deliverystream/<name>" in str(bad.value)

    deleted = app.client.delete_event_stream(ApplicationId=app_id)["EventStream"]
    assert deleted["DestinationStreamArn"] == arns[1]
    assert event_stream_parts(spillway.engine, app.project.id) == ([], [])
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        app.client.get_event_stream(ApplicationId=app_id)
    assert code(gone) == "NotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        app.client.delete_event_stream(ApplicationId=app_id)
    assert code(gone) == "NotFoundException"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_role_that_cannot_reach_the_stream_leaves_the_old_stream(
    spillway: Spillway, s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = s3_world.moto
    app = spillway.app("norole")
    name = create_stream(moto, shards=1)
    arn = stream_arn(moto, name)
    good = role(moto, [app.project.external_id], allow("kinesis:*", "*"))
    operate(monkeypatch, s3_world, good)  # the operator may not assume "other"
    app_id = app.project.app_id
    app.client.put_event_stream(
        ApplicationId=app_id, WriteEventStream={"DestinationStreamArn": arn, "RoleArn": good}
    )
    other = role(moto, [app.project.external_id], allow("kinesis:*", "*"))
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        app.client.put_event_stream(
            ApplicationId=app_id, WriteEventStream={"DestinationStreamArn": arn, "RoleArn": other}
        )
    assert code(refused) == "BadRequestException"
    assert app.client.get_event_stream(ApplicationId=app_id)["EventStream"]["RoleArn"] == good


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_firehose_delivery_stream_arn_streams_to_firehose(
    spillway: Spillway, s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = s3_world.moto
    app = spillway.app("firehose")
    name = "spw-" + uuid.uuid4().hex[:10]
    firehose: Any = moto.client("firehose")
    arn = str(
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose-delivery",
                "BucketARN": f"arn:aws:s3:::{s3_world.bucket}",
                "Prefix": "firehose/",
            },
        )["DeliveryStreamARN"]
    )
    role_arn = role(moto, [app.project.external_id], allow("firehose:*", "*"))
    operate(monkeypatch, s3_world, role_arn)
    shown = app.client.put_event_stream(
        ApplicationId=app.project.app_id,
        WriteEventStream={"DestinationStreamArn": arn, "RoleArn": role_arn},
    )["EventStream"]
    assert shown["DestinationStreamArn"] == arn
    destinations, exports = event_stream_parts(spillway.engine, app.project.id)
    assert [d.kind for d in destinations] == ["firehose"] and len(exports) == 1

    sent = send(spillway.engine, app.project.id, 4, "signup")
    deliver(spillway.engine, spillway.box)
    records = [
        r for key in s3_world_keys(s3_world, "firehose/") for r in lines(read(s3_world, key))
    ]
    assert sorted(r["attributes"]["event_uuid"] for r in records) == sorted(sent)
    assert {r["application"]["app_id"] for r in records} == {app.project.app_id}


# --- jobs ---------------------------------------------------------------------------------------


def tick_until_ended(spillway: Spillway, get: Any, max_ticks: int = 20) -> dict[str, Any]:
    """Poll a job through the API, ticking the job runner between polls, until it ends."""
    runner = jobs_service.runner(spillway.engine, spillway.box)
    for _ in range(max_ticks):
        shown: dict[str, Any] = get()
        if shown["JobStatus"] in ("COMPLETED", "FAILED"):
            return shown
        runner.tick()
    raise AssertionError(f"the job did not end: {shown}")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_export_job_to_s3_then_import_into_a_second_app(
    spillway: Spillway, s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = spillway.app("source"), spillway.app("target")
    bucket = f"arn:aws:s3:::{s3_world.bucket}"
    role_arn = role(
        s3_world.moto,
        [source.project.external_id, target.project.external_id],
        allow("s3:*", [bucket, f"{bucket}/*"]),
    )
    operate(monkeypatch, s3_world, role_arn)
    sent = seed(spillway.engine, source.project.id, 1_500, users=400)
    app_id = source.project.app_id
    request = {"RoleArn": role_arn, "S3UrlPrefix": f"s3://{s3_world.bucket}/pinpoint/out"}

    with pytest.raises(botocore.exceptions.ClientError) as refused:
        source.read_client.create_export_job(ApplicationId=app_id, ExportJobRequest=request)
    assert code(refused) == "ForbiddenException"

    created = source.client.create_export_job(ApplicationId=app_id, ExportJobRequest=request)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    job = created["ExportJobResponse"]
    assert job["ApplicationId"] == app_id and job["Type"] == "EXPORT"
    assert job["JobStatus"] == "CREATED" and job["Definition"] == request
    assert job["CreationDate"].endswith("Z")
    done = tick_until_ended(
        spillway,
        lambda: source.read_client.get_export_job(ApplicationId=app_id, JobId=job["Id"])[
            "ExportJobResponse"
        ],
    )
    assert done["JobStatus"] == "COMPLETED", done["Failures"]
    assert done["TotalProcessed"] == 1_500 and done["TotalFailures"] == 0
    assert done["CompletedPieces"] == done["TotalPieces"] >= 1 and done["FailedPieces"] == 0
    assert done["CompletionDate"].endswith("Z") and done["Failures"] == []

    pieces = [k for k in s3_world_keys(s3_world, "pinpoint/out/") if k.endswith(".gz")]
    assert pieces
    records = [r for key in pieces for r in lines(read(s3_world, key))]
    assert Counter(r["Id"] for r in records) == Counter(sent.keys())  # every endpoint once
    assert {r["ApplicationId"] for r in records} == {app_id}

    imported = target.client.create_import_job(
        ApplicationId=target.project.app_id,
        ImportJobRequest={
            "Format": "JSON",
            "S3Url": f"s3://{s3_world.bucket}/pinpoint/out/{job['Id']}",
            "RoleArn": role_arn,
            "DefineSegment": True,
            "SegmentName": "migrated",
            "RegisterEndpoints": True,
        },
    )
    assert imported["ResponseMetadata"]["HTTPStatusCode"] == 201
    ijob = imported["ImportJobResponse"]
    assert ijob["Type"] == "IMPORT" and ijob["Definition"]["Format"] == "JSON"
    finished = tick_until_ended(
        spillway,
        lambda: target.client.get_import_job(ApplicationId=target.project.app_id, JobId=ijob["Id"])[
            "ImportJobResponse"
        ],
    )
    assert finished["JobStatus"] == "COMPLETED", finished["Failures"]
    assert finished["TotalProcessed"] == 1_500
    assert stored(spillway.engine, target.project.id) == stored(spillway.engine, source.project.id)
    listed = target.client.get_import_jobs(ApplicationId=target.project.app_id)
    assert [j["Id"] for j in listed["ImportJobsResponse"]["Item"]] == [ijob["Id"]]


def s3_world_keys(s3_world: S3World, prefix: str) -> list[str]:
    s3: Any = s3_world.moto.client("s3")
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_world.bucket, Prefix=prefix):
        found += [o["Key"] for o in page.get("Contents", [])]
    return sorted(found)


def read(s3_world: S3World, key: str) -> bytes:
    data = s3_world.raw_read(key)
    assert data is not None, key
    return data


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_export_jobs_page_by_token_and_by_segment(
    spillway: Spillway, s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = spillway.app("paging")
    app_id = app.project.app_id
    role_arn = role(s3_world.moto, [app.project.external_id], allow("s3:*", "*"))
    request = {"RoleArn": role_arn, "S3UrlPrefix": f"s3://{s3_world.bucket}/p"}
    segment = segments.create(
        spillway.engine, Actor("test", app.project.id), "vip", EndpointFilter()
    )
    made = [
        app.client.create_export_job(ApplicationId=app_id, ExportJobRequest=request)[
            "ExportJobResponse"
        ]["Id"]
        for _ in range(4)
    ]
    in_segment = app.client.create_export_job(
        ApplicationId=app_id,
        ExportJobRequest={**request, "SegmentId": segment.id, "SegmentVersion": 1},
    )["ExportJobResponse"]
    assert in_segment["Definition"]["SegmentId"] == segment.id
    assert in_segment["Definition"]["SegmentVersion"] == 1

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        args: dict[str, Any] = {"ApplicationId": app_id, "PageSize": "2"}
        if token:
            args["Token"] = token
        page = app.read_client.get_export_jobs(**args)["ExportJobsResponse"]
        assert len(page["Item"]) <= 2
        seen += [j["Id"] for j in page["Item"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted([*made, in_segment["Id"]])  # each job once

    by_segment = app.client.get_segment_export_jobs(ApplicationId=app_id, SegmentId=segment.id)
    assert [j["Id"] for j in by_segment["ExportJobsResponse"]["Item"]] == [in_segment["Id"]]
    assert "NextToken" not in by_segment["ExportJobsResponse"]

    # A job cancelled in Spillway is FAILED to a Pinpoint client, saying why.
    jobs_service.cancel(spillway.engine, Actor("test", app.project.id), made[0], "export")
    shown = app.client.get_export_job(ApplicationId=app_id, JobId=made[0])["ExportJobResponse"]
    assert shown["JobStatus"] == "FAILED"
    assert any("cancelled" in f for f in shown["Failures"])

    with pytest.raises(botocore.exceptions.ClientError) as missing:
        app.client.get_export_job(ApplicationId=app_id, JobId=uuid.uuid4().hex)
    assert code(missing) == "NotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as bad:
        app.client.get_export_jobs(ApplicationId=app_id, PageSize="0")
    assert code(bad) == "BadRequestException"
