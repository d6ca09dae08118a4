"""Kinesis against moto with IAM enforced: checks, round trips, partial failures via the proxy."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import orjson
import pytest
from pydantic import SecretStr

from spillway import destinations as registry
from spillway.destinations.aws.stream import status_check
from spillway.destinations.base import (
    Check,
    CheckStatus,
    DestinationError,
    Needs,
    StreamRecord,
    all_passed,
)
from spillway.destinations.kinesis.config import KinesisConfig
from spillway.destinations.kinesis.stream import KinesisStream
from spillway.destinations.s3.config import AccessKey, AssumeRole
from spillway.errors import TransientError
from tests.integration.destinations.case_s3 import (
    EXTERNAL_ID,
    S3World,
    allow,
    as_operator,
    policy,
)
from tests.server_flaky import THROUGHPUT, FlakyProxy, fail_every, fail_none, flaky_proxy
from tests.server_moto import Moto
from tests.servers import allow_endpoint, free_port

ORDER = ("credentials", "role", "external_id", "stream", "stream_active", "test_record")


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def admin_key(moto: Moto) -> AccessKey:
    return AccessKey(access_key_id=moto.admin_key, secret_access_key=SecretStr(moto.admin_secret))


def new_user(moto: Moto, *statements: dict[str, Any]) -> AccessKey:
    """An IAM user with exactly these policy statements (S3World.user leaves the bucket be)."""
    return S3World(moto, bucket="").user(*statements)


def records_in(moto: Moto, stream: str) -> list[tuple[str, bytes, str]]:
    """Every record in the stream as (shard id, data, partition key), shard by shard in order."""
    kinesis: Any = moto.client("kinesis")
    found = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            found.extend((shard["ShardId"], r["Data"], r["PartitionKey"]) for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return found


class Streams:
    """A fresh two-shard stream on moto, and Spillway streams pointed at it."""

    def __init__(self, moto: Moto) -> None:
        self.moto = moto
        self.name = "spw-" + uuid.uuid4().hex[:12]
        kinesis: Any = moto.client("kinesis")
        kinesis.create_stream(StreamName=self.name, ShardCount=2)
        summary = kinesis.describe_stream_summary(StreamName=self.name)
        self.arn = summary["StreamDescriptionSummary"]["StreamARN"]

    def make(self, credentials: Any = None, **overrides: Any) -> KinesisStream:
        values: dict[str, Any] = {"stream": self.name, "endpoint_url": self.moto.endpoint}
        values.update(overrides)
        return KinesisStream(
            KinesisConfig(**values), credentials or admin_key(self.moto), EXTERNAL_ID
        )

    def records(self) -> list[tuple[str, bytes, str]]:
        return records_in(self.moto, self.name)


@pytest.fixture
def streams(moto: Moto) -> Streams:
    return Streams(moto)


@pytest.fixture(scope="module")
def flaky(moto: Moto) -> Iterator[FlakyProxy]:
    with flaky_proxy(moto.endpoint, moto.admin_key, moto.admin_secret) as proxy:
        yield proxy


def events(count: int, users: int) -> list[StreamRecord]:
    """``count`` JSON records spread over ``users`` partition keys, numbered in send order."""
    return [
        StreamRecord(orjson.dumps({"n": n, "uid": f"uid-{n % users}"}), f"uid-{n % users}")
        for n in range(count)
    ]


def test_admin_validates_and_skips_the_test_record(streams: Streams) -> None:
    checks = streams.make().validate(Needs())
    assert tuple(c.name for c in checks) == ORDER
    named = by_name(checks)
    assert named["credentials"].status is CheckStatus.PASSED
    assert named["role"].status is CheckStatus.SKIPPED
    assert named["stream"].status is CheckStatus.PASSED
    assert "2 open shards" in named["stream"].message
    assert named["stream_active"].status is CheckStatus.PASSED
    assert named["test_record"].status is CheckStatus.SKIPPED
    assert "enable the test_record feature" in named["test_record"].message
    assert all_passed(checks)
    assert streams.records() == []


def test_wrong_secret_names_the_signature_mismatch(streams: Streams) -> None:
    wrong = AccessKey(access_key_id=streams.moto.admin_key, secret_access_key=SecretStr("y" * 40))
    checks = streams.make(wrong).validate(Needs(test_record=True))
    assert tuple(c.name for c in checks) == ORDER
    assert checks[0].status is CheckStatus.FAILED
    assert "SignatureDoesNotMatch" in checks[0].message
    assert all(c.status is CheckStatus.SKIPPED for c in checks[1:])
    assert streams.records() == []


def test_unknown_access_key_is_told_apart(streams: Streams) -> None:
    unknown = AccessKey(access_key_id="AKIAUNKNOWNUNKNOWN00", secret_access_key=SecretStr("z" * 40))
    check = streams.make(unknown).validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert "InvalidAccessKeyId" in check.message


def test_unknown_stream_fails_the_stream_check(streams: Streams) -> None:
    checks = by_name(streams.make(stream="spw-no-such-stream").validate(Needs(test_record=True)))
    assert checks["credentials"].status is CheckStatus.PASSED
    assert checks["stream"].status is CheckStatus.FAILED
    assert "spw-no-such-stream was not found in us-east-1" in checks["stream"].message
    assert checks["stream_active"].status is CheckStatus.SKIPPED
    assert checks["test_record"].status is CheckStatus.SKIPPED


def test_policy_on_another_stream_is_denied(streams: Streams) -> None:
    other = streams.arn.rsplit("/", 1)[0] + "/some-other-stream"
    user = new_user(streams.moto, allow("kinesis:*", other))
    stream = streams.make(user)
    checks = by_name(stream.validate(Needs()))
    assert checks["credentials"].status is CheckStatus.PASSED
    assert checks["stream"].status is CheckStatus.FAILED
    message = checks["stream"].message
    assert "access denied" in message
    assert "kinesis:DescribeStreamSummary" in message
    assert streams.name in message
    with pytest.raises(DestinationError, match="access denied"):
        stream.put_records(events(3, 1))


def test_the_documented_actions_are_enough(streams: Streams) -> None:
    # moto matches policies against the resource "*" only, so this proves the actions.
    user = new_user(
        streams.moto, allow(["kinesis:PutRecords", "kinesis:DescribeStreamSummary"], "*")
    )
    checks = streams.make(user).validate(Needs(test_record=True))
    assert all_passed(checks), [c.as_dict() for c in checks]


def test_records_arrive_on_both_shards_in_order_per_partition_key(streams: Streams) -> None:
    stream = streams.make()
    sent = events(400, users=37)
    try:
        for start in range(0, len(sent), 200):
            assert stream.put_records(sent[start : start + 200]) == [None] * 200
    finally:
        stream.close()
    found = streams.records()
    assert sorted((data, key) for _, data, key in found) == sorted(
        (r.data, r.partition_key) for r in sent
    )
    assert len({shard for shard, _, _ in found}) == 2
    per_key: dict[str, list[bytes]] = defaultdict(list)
    for _, data, key in found:
        per_key[key].append(data)
    for key, datas in per_key.items():
        assert datas == [r.data for r in sent if r.partition_key == key]


def test_a_stream_arn_works_like_its_name(streams: Streams) -> None:
    config = KinesisConfig(stream=streams.arn, endpoint_url=streams.moto.endpoint)
    assert config.region == "us-east-1"
    assert config.name == streams.name
    stream = streams.make(stream=streams.arn)
    assert all_passed(stream.validate(Needs()))
    assert stream.put_records(events(5, 2)) == [None] * 5
    assert len(streams.records()) == 5


def test_test_record_is_sent_once_and_only_when_enabled(streams: Streams) -> None:
    stream = streams.make()
    stream.validate(Needs())
    assert streams.records() == []
    check = by_name(stream.validate(Needs(test_record=True)))["test_record"]
    assert check.status is CheckStatus.PASSED
    assert "consumers of the stream will see it" in check.message
    found = streams.records()
    assert len(found) == 1
    _, data, key = found[0]
    assert key == "spillway-validation"
    assert orjson.loads(data)["spillway_validation"] is True


def test_whole_call_failures_are_terminal_or_transient(streams: Streams) -> None:
    with pytest.raises(DestinationError) as missing:
        streams.make(stream="spw-gone").put_records(events(1, 1))
    assert "spw-gone in us-east-1 does not exist" in str(missing.value)
    closed = f"http://127.0.0.1:{free_port()}"
    allow_endpoint(closed)  # listed, but nothing listens there
    nowhere = streams.make(endpoint_url=closed)
    with pytest.raises(TransientError, match="cannot reach the Kinesis endpoint"):
        nowhere.put_records(events(1, 1))


@pytest.mark.parametrize(
    ("code", "status", "terminal", "words"),
    [
        ("ProvisionedThroughputExceededException", 400, False, "ProvisionedThroughput"),
        ("LimitExceededException", 400, False, "LimitExceeded"),
        ("InternalFailure", 500, False, "InternalFailure"),
        ("SomethingNew", 503, False, "SomethingNew"),
        ("ResourceInUseException", 400, False, "is ACTIVE"),  # moto's stream: wait and retry
        ("AccessDeniedException", 400, True, "must allow kinesis:PutRecords"),
        ("UnrecognizedClientException", 400, True, "does not recognise the access key"),
        ("InvalidSignatureException", 400, True, "paste the secret again"),
        ("ExpiredTokenException", 400, True, "session token has expired"),
        ("KMSDisabledException", 400, True, "enable it"),
        ("KMSAccessDeniedException", 400, True, "kms:GenerateDataKey"),
        ("ResourceNotFoundException", 400, True, "does not exist"),
    ],
)
def test_whole_call_errors_are_sorted(
    streams: Streams, code: str, status: int, terminal: bool, words: str
) -> None:
    answer: Any = {
        "Error": {"Code": code, "Message": "from the service"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    error = streams.make().classify(botocore.exceptions.ClientError(answer, "PutRecords"))
    assert isinstance(error, DestinationError if terminal else TransientError)
    assert words in str(error)
    if terminal:
        assert f"{streams.name} in us-east-1" in str(error)


@pytest.mark.parametrize(
    ("status", "outcome", "words"),
    [
        ("ACTIVE", CheckStatus.PASSED, "is ACTIVE"),
        ("UPDATING", CheckStatus.PASSED, "accepts records"),
        ("CREATING", CheckStatus.FAILED, "retry validation in a minute"),
        ("DELETING", CheckStatus.FAILED, "being deleted"),
        ("CREATING_FAILED", CheckStatus.FAILED, "create it again"),
    ],
)
def test_stream_status_advice(status: str, outcome: CheckStatus, words: str) -> None:
    check = status_check("Kinesis data stream s in us-east-1", status)
    assert check.status is outcome
    assert words in check.message


def test_role_is_assumed_with_the_external_id(
    streams: Streams, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam: Any = streams.moto.client("iam")
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
        }
    )
    name = "SpillwayStream-" + uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="put",
        PolicyDocument=policy(allow(["kinesis:PutRecords", "kinesis:DescribeStreamSummary"], "*")),
    )
    service = new_user(streams.moto, allow("sts:AssumeRole", role["Arn"]))
    as_operator(monkeypatch, streams.moto, service)  # the operator's STS is moto
    stream = streams.make(AssumeRole(role_arn=role["Arn"]))
    checks = by_name(stream.validate(Needs()))
    assert checks["role"].status is CheckStatus.PASSED
    assert checks["external_id"].status is CheckStatus.SKIPPED  # moto ignores trust policies
    assert checks["stream"].status is CheckStatus.PASSED
    assert stream.put_records(events(3, 3)) == [None] * 3


def test_a_role_that_cannot_be_assumed_is_blamed_not_the_stream(
    streams: Streams, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = new_user(streams.moto)  # no sts:AssumeRole permission at all
    as_operator(monkeypatch, streams.moto, service)
    role = AssumeRole(role_arn="arn:aws:iam::123456789012:role/NotYetPropagated")
    checks = by_name(streams.make(role).validate(Needs()))
    assert checks["role"].status is CheckStatus.FAILED
    assert "could not assume" in checks["role"].message
    assert "retry validation in a minute" in checks["role"].message
    assert checks["stream"].status is CheckStatus.SKIPPED
    with pytest.raises(DestinationError, match=r"could not assume .*NotYetPropagated"):
        streams.make(role).put_records(events(1, 1))


def test_credentials_take_the_s3_shapes_and_are_masked() -> None:
    csv = "Access key ID,Secret access key\nAKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCY\n"
    parsed = registry.parse(
        "kinesis", {"stream": "events"}, {"mode": "credentials_csv", "csv": csv}
    )
    assert registry.public_credentials(parsed) == {
        "mode": "access_key",
        "access_key_id": "AKIA…MPLE",
        "source": "credentials_csv",
    }
    role = {"mode": "role", "role_arn": "arn:aws:iam::123456789012:role/SpillwayStream"}
    parsed = registry.parse("firehose", {"delivery_stream": "events"}, role)
    assert registry.public_credentials(parsed) == role


def test_the_flaky_proxy_fails_the_chosen_records(streams: Streams, flaky: FlakyProxy) -> None:
    flaky.reset(fail_every(7, calls=1))
    stream = streams.make(endpoint_url=flaky.endpoint)
    sent = events(100, users=10)
    results = stream.put_records(sent)
    failed_at = [i for i, code in enumerate(results) if code is not None]
    assert failed_at == list(range(6, 100, 7))
    assert {results[i] for i in failed_at} == {THROUGHPUT}
    acknowledged = {sent[i].data for i, code in enumerate(results) if code is None}
    assert {data for _, data, _ in streams.records()} == acknowledged

    retry = [sent[i] for i in failed_at]
    assert stream.put_records(retry) == [None] * len(retry)  # the second call is not failed
    assert [s.data for s in flaky.failed()] == [r.data for r in retry]
    assert [s.data for s in flaky.log if s.call == 1] == [r.data for r in retry]
    assert [s.partition_key for s in flaky.log if s.call == 1] == [r.partition_key for r in retry]
    assert sorted(data for _, data, _ in streams.records()) == sorted(r.data for r in sent)

    flaky.reset(fail_every(1))  # every record fails: nothing reaches moto
    assert stream.put_records(events(3, 1)) == [THROUGHPUT] * 3
    assert flaky.calls[0].status == 0
    assert len(streams.records()) == len(sent)

    flaky.reset(fail_none)  # whole-call errors and other requests pass through unchanged
    with pytest.raises(DestinationError, match="does not exist"):
        streams.make(stream="spw-gone", endpoint_url=flaky.endpoint).put_records(events(2, 1))
    assert all_passed(stream.validate(Needs()))
