"""Stream exports against moto's Kinesis and Firehose (IAM auth enforced): at least once, in
order per user, nothing silently dropped."""

from __future__ import annotations

import gzip
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.api import views
from spillway.destinations.base import all_passed
from spillway.errors import InputError
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.store import streams as sq
from spillway.store.db import create_engine, migrate
from tests.integration.streaming import (
    StreamSetup,
    create_stream,
    event_uuid,
    make_stream_setup,
    read_stream,
)
from tests.server_flaky import fail_every, fail_random, flaky_proxy
from tests.server_moto import Moto


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'spillway.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def setup(sqlite_engine: Engine, moto: Moto) -> StreamSetup:
    return make_stream_setup(sqlite_engine, moto)


def assert_in_order_per_user(setup: StreamSetup, records: list[tuple[str, bytes]]) -> None:
    got: dict[str, list[str]] = defaultdict(list)
    for key, data in records:
        got[key].append(event_uuid(data))
    expected = setup.expected_by_user()
    assert set(got) == set(expected)
    for uid, events in expected.items():
        assert got[uid] == events, f"events of {uid} out of order or missing"


def test_50k_events_of_1000_users_arrive_in_order(setup: StreamSetup, moto: Moto) -> None:
    name = create_stream(moto, shards=4)
    export = setup.export(setup.destination("kinesis", {"stream": name}))
    for _ in range(10):
        setup.ingest(5_000, users=1_000)
    delivery = setup.delivery()
    assert setup.drain(delivery) == 50_000
    records = read_stream(moto, name)
    assert len(records) == 50_000
    assert_in_order_per_user(setup, records)
    shown = views.export(
        setup.engine, export_service.get(setup.engine, setup.project_id, export.id)
    )
    assert shown["lag"] == {"events": 0, "seconds": 0}
    assert shown["delivery"]["records_sent"] == 50_000
    assert shown["delivery"]["dead_lettered"] == 0
    first = orjson.loads(records[0][1])
    assert set(first) == {"app_name", "export_hour", "db_name", "event", "export_day"}


def test_events_of_several_projects_share_one_stream(sqlite_engine: Engine, moto: Moto) -> None:
    name = create_stream(moto, shards=2)
    first, second = make_stream_setup(sqlite_engine, moto), make_stream_setup(sqlite_engine, moto)
    for setup in (first, second):
        setup.export(setup.destination("kinesis", {"stream": name}))
        setup.ingest(300, users=20)
    first.drain(first.delivery())
    records = read_stream(moto, name)
    apps = Counter(orjson.loads(data)["db_name"] for _, data in records)
    assert len(apps) == 2 and set(apps.values()) == {300}


def test_pinpoint_record_format(setup: StreamSetup, moto: Moto) -> None:
    name = create_stream(moto, shards=1)
    setup.export(setup.destination("kinesis", {"stream": name}), record_format="pinpoint")
    # Received a known moment after the event happened (event_time is 1_795_400_000 s).
    received_ms = 1_795_400_000_000 + 3_600_000 + 123
    setup.ingest_raw(
        [
            {
                "event_name": "purchase",
                "uid": "user-7",
                "event_time": 1_795_400_000,
                "event_attributes": {"sku": "a-1", "price": 9.5},
                "user_attributes": {"plan": "pro"},
                "device_attributes": {"platform": "ANDROID", "model": "Pixel 8"},
            }
        ],
        received_ms=received_ms,
    )
    setup.drain(setup.delivery())
    [(key, data)] = read_stream(moto, name)
    record = orjson.loads(data)
    assert key == "user-7"
    assert record["event_type"] == "purchase"
    assert record["event_timestamp"] == 1_795_400_000_000
    # Pinpoint's arrival_timestamp: when the server received the event, in epoch ms (neither
    # the event's own time nor the moment of delivery).
    assert record["arrival_timestamp"] == received_ms
    assert record["attributes"]["sku"] == "a-1" and record["metrics"] == {"price": 9.5}
    assert record["device"]["platform"]["name"] == "android"
    assert record["endpoint"]["User"] == {"UserId": "user-7", "UserAttributes": {"plan": ["pro"]}}
    assert {"application", "client", "session", "event_version"} <= set(record)


def test_oversized_event_is_dead_lettered_and_the_stream_goes_on(
    setup: StreamSetup, moto: Moto
) -> None:
    name = create_stream(moto, shards=1)
    export = setup.export(setup.destination("kinesis", {"stream": name}))
    before = setup.ingest(5, users=3)
    [huge] = setup.ingest_raw(
        [{"event_name": "blob", "uid": "user-big", "event_attributes": {"x": "y" * 1_100_000}}]
    )
    after = setup.ingest(5, users=3)
    setup.drain(setup.delivery())
    delivered = [event_uuid(data) for _, data in read_stream(moto, name)]
    assert sorted(delivered) == sorted(before + after)
    with setup.engine.connect() as conn:
        [letter] = sq.list_dead_letters(conn, export.id)
    assert letter.event_uuid == huge
    assert "1,048,576 bytes per record" in letter.reason
    shown = views.export(
        setup.engine, export_service.get(setup.engine, setup.project_id, export.id)
    )
    assert shown["delivery"]["dead_lettered"] == 1
    assert shown["lag"]["events"] == 0


def test_missing_stream_makes_the_export_failing_then_it_catches_up(
    setup: StreamSetup, moto: Moto
) -> None:
    name = "spw-later-" + uuid.uuid4().hex[:6]
    destination = setup.destination("kinesis", {"stream": name}, force=True)
    export = setup.export(destination)
    uuids = setup.ingest(50, users=5)
    delivery = setup.delivery()
    assert delivery.pass_once() == 0
    row = export_service.get(setup.engine, setup.project_id, export.id)
    assert row.status == "failing"
    assert name in (row.status_reason or "")
    kinesis: Any = moto.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    # The fix is confirmed by validating the destination again: the export retries at once.
    checks = destination_service.validate_stored(
        setup.engine, setup.box, setup.actor, destination.id
    )
    assert all_passed(checks)
    setup.drain(delivery)
    assert sorted(event_uuid(d) for _, d in read_stream(moto, name)) == sorted(uuids)
    assert export_service.get(setup.engine, setup.project_id, export.id).status == "active"


def test_stream_exports_need_stream_destinations(setup: StreamSetup, moto: Moto) -> None:
    name = create_stream(moto, shards=1)
    destination = setup.destination("kinesis", {"stream": name})
    with pytest.raises(InputError, match='set frequency to "stream"'):
        export_service.create(
            setup.engine,
            setup.actor,
            api_models.ExportIn(name="files", destination_id=destination.id, frequency="daily"),
        )


def test_firehose_into_s3_holds_every_event_one_per_line(setup: StreamSetup, moto: Moto) -> None:
    s3: Any = moto.client("s3")
    iam: Any = moto.client("iam")
    firehose: Any = moto.client("firehose")
    bucket = "spw-fh-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    role = iam.create_role(
        RoleName="fh-" + uuid.uuid4().hex[:8],
        AssumeRolePolicyDocument=orjson.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "firehose.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ).decode(),
    )["Role"]["Arn"]
    stream = "spw-fh-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": role,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "events/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
        },
    )
    setup.export(setup.destination("firehose", {"delivery_stream": stream}))
    uuids = setup.ingest(1_200, users=50)
    setup.drain(setup.delivery())
    lines: list[bytes] = []
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        lines += [line for line in body.split(b"\n") if line]
    assert sorted(event_uuid(line) for line in lines) == sorted(uuids)


def test_partial_failures_resend_exactly_the_failed_records(setup: StreamSetup, moto: Moto) -> None:
    name = create_stream(moto, shards=2)
    with flaky_proxy(moto.endpoint, moto.admin_key, moto.admin_secret) as proxy:
        destination = setup.destination("kinesis", {"stream": name, "endpoint_url": proxy.endpoint})
        export = setup.export(destination)
        uuids = setup.ingest(3_000, users=100)
        proxy.reset(fail_random(seed=7, rate=0.2, calls=12))
        setup.drain(setup.delivery(sleep=lambda _: None))
        failed = proxy.failed()
        assert failed, "the proxy failed nothing: the test proves nothing"
        # Every record went through once, plus exactly one resend per failure.
        forwarded = Counter(seen.data for seen in proxy.forwarded())
        assert sum(forwarded.values()) == 3_000 and set(forwarded.values()) == {1}
        sent = Counter(seen.data for seen in proxy.log)
        assert sent - forwarded == Counter(seen.data for seen in failed)
        # A resend carries the failed records of the call before, in their order, first.
        by_call: dict[int, list[bytes]] = defaultdict(list)
        for seen in proxy.log:
            by_call[seen.call].append(seen.data)
        for call in sorted(by_call)[:-1]:
            refused = [s.data for s in failed if s.call == call]
            if refused:
                assert by_call[call + 1] == refused
    delivered = [event_uuid(data) for _, data in read_stream(moto, name)]
    assert sorted(delivered) == sorted(uuids)
    shown = views.export(
        setup.engine, export_service.get(setup.engine, setup.project_id, export.id)
    )
    assert shown["delivery"]["records_retried"] == len(failed)


def test_firehose_partial_failures_lose_nothing(setup: StreamSetup, moto: Moto) -> None:
    firehose: Any = moto.client("firehose")
    s3: Any = moto.client("s3")
    bucket = "spw-fhp-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    stream = "spw-fhp-" + uuid.uuid4().hex[:8]
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
        },
    )
    with flaky_proxy(moto.endpoint, moto.admin_key, moto.admin_secret) as proxy:
        setup.export(
            setup.destination(
                "firehose", {"delivery_stream": stream, "endpoint_url": proxy.endpoint}
            )
        )
        uuids = setup.ingest(1_000, users=30)
        proxy.reset(fail_every(3, calls=4, code="ServiceUnavailableException"))
        setup.drain(setup.delivery(sleep=lambda _: None))
        assert len(proxy.failed()) > 100
    lines = []
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        lines += [line for line in body.split(b"\n") if line]
    assert sorted(event_uuid(line) for line in lines) == sorted(uuids)
