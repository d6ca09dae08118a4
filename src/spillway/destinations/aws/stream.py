"""What Kinesis Data Streams and Firehose share.

One client per stream, built on first use and reused; per-record results mapped to ``None`` or
the service's error code; whole-call errors sorted into transient and terminal; and the ordered
checks: credentials → role → external_id → stream → stream_active → test_record.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from botocore.config import Config as BotoConfig

from spillway.destinations.aws import client as aws
from spillway.destinations.aws.client import AwsAuth, Failure, error_code
from spillway.destinations.aws.config import StreamConfig
from spillway.destinations.aws.identity import after_identity, identity_checks
from spillway.destinations.base import (
    Check,
    CheckStatus,
    DestinationError,
    Needs,
    RecordStream,
    StreamLimits,
    StreamRecord,
    skip_rest,
)
from spillway.errors import SpillwayError, TransientError

STREAM_CONFIG = BotoConfig(
    # One attempt: the delivery loop retries with its own backoff, and it must see partial
    # failures itself rather than have botocore resend a whole batch.
    retries={"mode": "standard", "max_attempts": 1},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=16,
    tcp_keepalive=True,
    # The delivery loop already packs batches within the service limits; botocore's own
    # validation of 500 records costs more CPU than encoding them.
    parameter_validation=False,
)
TEST_PARTITION_KEY = "spillway-validation"
_LATER = ("stream", "stream_active", "test_record")
# What to do about each KMS refusal (a throttled key is transient and needs nothing).
_KMS_ADVICE = {
    "KMSDisabledException": "the key is disabled: enable it",
    "KMSNotFoundException": "the key was not found: it may be deleted or in another region",
    "KMSInvalidStateException": "the key is not usable (pending deletion or import?)",
    "KMSAccessDeniedException": "its key policy must allow kms:GenerateDataKey for the "
    "identity Spillway uses",
    "KMSOptInRequired": "the account is not subscribed to KMS",
    "InvalidKMSResourceException": "Firehose cannot use the key: check it is enabled and "
    "that its policy lets Firehose use it",
}


@dataclass(frozen=True, slots=True)
class StreamService:
    """What a record stream kind tells the code every AWS stream shares about its service."""

    kind: str  # the destination kind
    limits: StreamLimits  # its batch limits
    name: str  # boto3's service name
    label: str  # the service, for messages
    actions: str  # the IAM actions Spillway needs, for access-denied advice
    success_key: str  # the key an acknowledged entry of the answer carries


@dataclass(frozen=True, slots=True)
class Description:
    """What the service says about the stream, for the stream and stream_active checks."""

    status: str  # ACTIVE, UPDATING, CREATING, DELETING, CREATING_FAILED, …
    summary: str  # shards, destination, encryption: shown when the stream exists
    problem: str | None = None  # why Spillway cannot put into it although it exists


def status_check(where: str, status: str) -> Check:
    """The stream_active step for a stream in ``status``."""
    if status == "ACTIVE":
        return Check.passed("stream_active", f"{where} is ACTIVE")
    if status == "UPDATING":
        return Check.passed(
            "stream_active", f"{where} is UPDATING; it accepts records while it updates"
        )
    if status == "CREATING":
        return Check.failed(
            "stream_active", f"{where} is still being created: retry validation in a minute"
        )
    if status == "DELETING":
        return Check.failed(
            "stream_active",
            f"{where} is being deleted: create it again or choose another stream",
        )
    if status.endswith("_FAILED"):
        return Check.failed(
            "stream_active",
            f"{where} is {status}: see the reason in the AWS console, then delete it and "
            "create it again",
        )
    return Check.failed("stream_active", f"{where} is {status}, not ACTIVE")


class AwsRecordStream(RecordStream):
    """A Kinesis or Firehose stream: the shared client handling and checks."""

    service: ClassVar[StreamService]

    def __init_subclass__(cls, service: StreamService | None = None, **kwargs: Any) -> None:
        """``class KinesisStream(AwsRecordStream, service=KINESIS)``: the kind's description."""
        super().__init_subclass__(**kwargs)
        if service is not None:
            cls.service = service
            cls.kind = service.kind
            cls.limits = service.limits

    def __init__(
        self,
        config: StreamConfig,
        credentials: Any,
        external_id: str,
        *,
        refusal: str | None = None,
    ) -> None:
        self.config = config
        self.auth = AwsAuth(
            credentials,
            external_id,
            region=config.region,
            endpoint_url=config.endpoint_url,
            refusal=refusal,
        )
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """The stream, as messages name it."""
        return f"{self.config.what} {self.config.name} in {self.config.region}"

    @property
    def client(self) -> Any:
        """The service's client, built once (its connection pool is reused across calls)."""
        with self._lock:
            if self._client is None:
                self._client = self.auth.client(self.service.name, STREAM_CONFIG)
            return self._client

    @abc.abstractmethod
    def _put(self, records: list[StreamRecord]) -> list[dict[str, Any]]:
        """Send the batch; the answer's per-record entries, in order."""

    @abc.abstractmethod
    def _describe(self) -> Description:
        """Ask the service about the stream."""

    def put_records(self, records: list[StreamRecord]) -> list[str | None]:
        """Send one batch; per record, None (acknowledged) or the error code to retry on."""
        if not records:
            return []
        try:
            entries = self._put(records)
        except Failure as exc:
            raise self.classify(exc) from exc
        if len(entries) != len(records):
            raise TransientError(
                f"{self.where} answered {len(entries)} results for {len(records)} records; "
                "the whole batch will be sent again"
            )
        return [self._result(entry) for entry in entries]

    def _result(self, entry: dict[str, Any]) -> str | None:
        code = entry.get("ErrorCode")
        if code:
            return str(code)
        return None if entry.get(self.service.success_key) else "MissingResult"

    def explain(self, exc: BaseException) -> str:
        """A sentence a person can act on, naming the stream and its region."""
        return self._own_advice(exc) or f"{self.where}: {aws.explain(exc, self.service.label)}"

    def _own_advice(self, exc: BaseException) -> str | None:
        code = error_code(exc)
        if code == "ResourceNotFoundException":
            return (
                f"{self.where} does not exist (ResourceNotFoundException): check the name, the "
                "region and the AWS account"
            )
        if code in ("AccessDenied", "AccessDeniedException"):
            return (
                f"access denied on {self.where} ({code}): the IAM policy of the identity "
                f"Spillway uses must allow {self.service.actions} on it"
            )
        if code in _KMS_ADVICE:
            return f"the KMS key of {self.where} refused the request ({code}): {_KMS_ADVICE[code]}"
        return None

    def classify(self, exc: BaseException) -> Exception:
        """Wrap a whole-call error as transient (retry later) or terminal (a person must act)."""
        if error_code(exc) != "ResourceInUseException":
            return aws.classify(exc, self.explain(exc))
        # Not ACTIVE: being created or updated (wait) or being deleted (a person must act).
        try:
            status = self._describe().status
        except (SpillwayError, *Failure):
            status = "not ACTIVE"
        if status == "DELETING":
            return DestinationError(
                f"{self.where} is being deleted (ResourceInUseException): create it again or "
                "point the destination at another stream"
            )
        return TransientError(f"{self.where} is {status} (ResourceInUseException); retrying later")

    def validate(self, needs: Needs) -> list[Check]:
        """credentials → role → external_id → stream → stream_active → test_record."""
        checks = identity_checks(
            self.auth,
            service=self.service.label,
            target=f"your {self.config.what}",
            proof="the stream check",
        )
        stopped = after_identity(checks, _LATER)
        if stopped is not None:
            return stopped
        try:
            found = self._describe()
        except Failure as exc:
            checks.append(Check.failed("stream", self._not_described(exc)))
            return checks + skip_rest(_LATER[1:], "stream")
        if found.problem:
            checks.append(Check.failed("stream", found.problem))
            return checks + skip_rest(_LATER[1:], "stream")
        checks.append(Check.passed("stream", f"{self.where} exists ({found.summary})"))
        active = status_check(self.where, found.status)
        checks.append(active)
        if active.status is CheckStatus.FAILED:
            return checks + skip_rest(_LATER[2:], "stream_active")
        checks.append(self._test_record(needs))
        return checks

    def _not_described(self, exc: BaseException) -> str:
        config = self.config
        if error_code(exc) == "ResourceNotFoundException":
            return (
                f"{config.what} {config.name} was not found in {config.region}: check the name, "
                "the region (it must be the stream's) and the AWS account"
            )
        own = self._own_advice(exc)
        return own or f"could not look at {self.where}: {aws.explain(exc, self.service.label)}"

    def _test_record(self, needs: Needs) -> Check:
        if not needs.test_record:
            return Check.skipped(
                "test_record",
                "not sent: enable the test_record feature to send one test record (consumers "
                "of the stream will see it)",
            )
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        data = orjson.dumps({"spillway_validation": True, "at": at})
        try:
            code = self.put_records([StreamRecord(data, TEST_PARTITION_KEY)])[0]
        except SpillwayError as exc:
            return Check.failed("test_record", f"could not send a test record: {exc}")
        if code is not None:
            return Check.failed(
                "test_record",
                f"{self.where} did not take the test record ({code}); if it is throttled, "
                "retry validation in a minute",
            )
        key = (
            f" with partition key {TEST_PARTITION_KEY}" if self.limits.counts_partition_key else ""
        )
        return Check.passed(
            "test_record",
            f"sent one test record {data.decode()}{key}: consumers of the stream will see it "
            'once, marked "spillway_validation": true',
        )

    def close(self) -> None:
        """Close the client's connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
