"""Firehose against moto with IAM enforced: a Direct PUT delivery stream into a moto bucket.

moto delivers each PutRecordBatch at once, as one S3 object holding the batch's records end to
end; Spillway terminates every record with a newline, so the objects hold one JSON per line.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from spillway.destinations.base import (
    Check,
    CheckStatus,
    DestinationError,
    Needs,
    StreamRecord,
    all_passed,
)
from spillway.destinations.firehose.config import FirehoseConfig
from spillway.destinations.firehose.stream import FirehoseStream
from spillway.destinations.s3.config import AccessKey
from tests.integration.destinations.case_s3 import EXTERNAL_ID, allow, policy
from tests.server_flaky import fail_random, flaky_proxy
from tests.server_moto import Moto

ORDER = ("credentials", "role", "external_id", "stream", "stream_active", "test_record")
ROLE = "arn:aws:iam::123456789012:role/firehose-delivery"


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


class Delivery:
    """A fresh bucket and a Direct PUT delivery stream into it, and Spillway streams on it."""

    def __init__(self, moto: Moto) -> None:
        self.moto = moto
        token = uuid.uuid4().hex[:12]
        self.bucket, self.name = f"spw-fh-{token}", f"spw-{token}"
        s3: Any = moto.client("s3")
        s3.create_bucket(Bucket=self.bucket)
        firehose: Any = moto.client("firehose")
        firehose.create_delivery_stream(
            DeliveryStreamName=self.name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": ROLE,
                "BucketARN": f"arn:aws:s3:::{self.bucket}",
                "Prefix": "events/",
            },
        )

    def admin(self) -> AccessKey:
        return AccessKey(
            access_key_id=self.moto.admin_key, secret_access_key=SecretStr(self.moto.admin_secret)
        )

    def make(self, credentials: Any = None, **overrides: Any) -> FirehoseStream:
        values: dict[str, Any] = {"delivery_stream": self.name, "endpoint_url": self.moto.endpoint}
        values.update(overrides)
        return FirehoseStream(FirehoseConfig(**values), credentials or self.admin(), EXTERNAL_ID)

    def objects(self) -> list[bytes]:
        """Every object moto delivered into the bucket."""
        s3: Any = self.moto.client("s3")
        listing = s3.list_objects_v2(Bucket=self.bucket, Prefix="events/")
        keys = [item["Key"] for item in listing.get("Contents", [])]
        return [bytes(s3.get_object(Bucket=self.bucket, Key=k)["Body"].read()) for k in keys]

    def lines(self) -> Counter[bytes]:
        """The multiset of lines over all objects (each object must end with a newline)."""
        found: Counter[bytes] = Counter()
        for body in self.objects():
            assert body.endswith(b"\n")
            found.update(body[:-1].split(b"\n"))
        return found


@pytest.fixture
def delivery(moto: Moto) -> Delivery:
    return Delivery(moto)


def events(count: int, start: int = 0) -> list[StreamRecord]:
    return [
        StreamRecord(orjson.dumps({"n": n, "event": "open", "note": "a\nb"}), f"uid-{n % 9}")
        for n in range(start, start + count)
    ]


def test_validation_names_the_destination_and_skips_the_test_record(delivery: Delivery) -> None:
    checks = delivery.make().validate(Needs())
    assert tuple(c.name for c in checks) == ORDER
    named = by_name(checks)
    assert named["stream"].status is CheckStatus.PASSED
    assert f"Amazon S3 (bucket {delivery.bucket})" in named["stream"].message
    assert named["stream_active"].status is CheckStatus.PASSED
    assert named["test_record"].status is CheckStatus.SKIPPED
    assert all_passed(checks)
    assert delivery.objects() == []


def test_wrong_secret_names_the_signature_mismatch(delivery: Delivery) -> None:
    wrong = AccessKey(access_key_id=delivery.moto.admin_key, secret_access_key=SecretStr("y" * 40))
    checks = delivery.make(wrong).validate(Needs(test_record=True))
    assert checks[0].status is CheckStatus.FAILED
    assert "SignatureDoesNotMatch" in checks[0].message
    assert all(c.status is CheckStatus.SKIPPED for c in checks[1:])


def test_unknown_delivery_stream_fails_the_stream_check(delivery: Delivery) -> None:
    checks = by_name(delivery.make(delivery_stream="spw-nothing").validate(Needs()))
    assert checks["stream"].status is CheckStatus.FAILED
    assert "spw-nothing was not found in us-east-1" in checks["stream"].message
    assert checks["stream_active"].status is CheckStatus.SKIPPED


def test_policy_without_firehose_actions_is_denied(delivery: Delivery) -> None:
    iam: Any = delivery.moto.client("iam")
    name = "f-" + uuid.uuid4().hex[:10]
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName="p", PolicyDocument=policy(allow("kinesis:*", "*"))
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    user = AccessKey(
        access_key_id=key["AccessKeyId"], secret_access_key=SecretStr(key["SecretAccessKey"])
    )
    stream = delivery.make(user)
    check = by_name(stream.validate(Needs()))["stream"]
    assert check.status is CheckStatus.FAILED
    assert "firehose:DescribeDeliveryStream" in check.message
    with pytest.raises(DestinationError, match="firehose:PutRecordBatch"):
        stream.put_records(events(2))


def test_a_delivery_stream_fed_by_kinesis_is_refused(delivery: Delivery) -> None:
    kinesis: Any = delivery.moto.client("kinesis")
    source = "spw-src-" + uuid.uuid4().hex[:8]
    kinesis.create_stream(StreamName=source, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=source)["StreamDescriptionSummary"]
    firehose: Any = delivery.moto.client("firehose")
    name = delivery.name + "-k"
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": arn["StreamARN"], "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE,
            "BucketARN": f"arn:aws:s3:::{delivery.bucket}",
        },
    )
    check = by_name(delivery.make(delivery_stream=name).validate(Needs()))["stream"]
    assert check.status is CheckStatus.FAILED
    assert "reads from the Kinesis data stream" in check.message
    assert "kind kinesis" in check.message


def test_every_record_lands_in_s3_one_json_per_line(delivery: Delivery) -> None:
    stream = delivery.make()
    sent = events(300)
    try:
        for start in range(0, len(sent), 120):
            batch = sent[start : start + 120]
            assert stream.put_records(batch) == [None] * len(batch)
    finally:
        stream.close()
    assert len(delivery.objects()) == 3  # moto writes one object per call
    lines = delivery.lines()
    assert lines == Counter(r.data for r in sent)
    assert all(orjson.loads(line)["note"] == "a\nb" for line in lines)


def test_test_record_is_delivered_once_when_enabled(delivery: Delivery) -> None:
    stream = delivery.make()
    stream.validate(Needs())
    assert delivery.objects() == []
    check = by_name(stream.validate(Needs(test_record=True)))["test_record"]
    assert check.status is CheckStatus.PASSED
    lines = list(delivery.lines().elements())
    assert len(lines) == 1
    assert orjson.loads(lines[0])["spillway_validation"] is True


def test_partial_failures_are_reported_and_resent(delivery: Delivery) -> None:
    moto = delivery.moto
    with flaky_proxy(moto.endpoint, moto.admin_key, moto.admin_secret) as flaky:
        flaky.choose = fail_random(seed=5, rate=0.2, calls=1)
        stream = delivery.make(endpoint_url=flaky.endpoint)
        sent = events(200)
        results = stream.put_records(sent)
        failed = [i for i, code in enumerate(results) if code is not None]
        assert failed == [seen.position for seen in flaky.failed()]
        assert 10 < len(failed) < 80
        assert {results[i] for i in failed} <= {
            "ProvisionedThroughputExceededException",
            "ServiceUnavailableException",
        }
        acknowledged = Counter(sent[i].data for i, code in enumerate(results) if code is None)
        assert delivery.lines() == acknowledged

        retry = [sent[i] for i in failed]
        assert stream.put_records(retry) == [None] * len(retry)
        assert [s.data for s in flaky.log if s.call == 1] == [r.data + b"\n" for r in retry]
    assert delivery.lines() == Counter(r.data for r in sent)
