"""The destination interface: what every object store offers the engine and the API.

An object store writes objects by streaming (``open_object`` → ``write`` … → ``commit`` or
``abort``), reads, lists and deletes them, and validates itself as an ordered list of checks.
Nothing here knows about HTTP or SQL.
"""

from __future__ import annotations

import abc
import contextvars
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

from spillway.errors import TerminalError

# One part size for every store, so memory per open object is bounded by one part whatever the
# object's size; above the 5 MiB S3 requires of every part but the last.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
# Where validation writes its test object, under the folder's prefix: one fixed key, replaced
# by each validation and deleted whenever the store allows it.
VALIDATION_FOLDER = "spillway-validation"
VALIDATION_OBJECT = f"{VALIDATION_FOLDER}/check.txt"


# Set while a destination validates itself: its clients then wait less and retry less, so a
# validation against an endpoint that never answers frees its thread in seconds, not minutes
# (the data path keeps its patient timeouts; the engine retries whole runs anyway).
_VALIDATING: contextvars.ContextVar[bool] = contextvars.ContextVar("validating", default=False)
VALIDATION_READ_TIMEOUT = 10.0


@contextmanager
def validating() -> Iterator[None]:
    """Mark the code inside as a validation (short client timeouts, one attempt)."""
    token = _VALIDATING.set(True)
    try:
        yield
    finally:
        _VALIDATING.reset(token)


def is_validating() -> bool:
    """Whether the current code runs inside :func:`validating`."""
    return _VALIDATING.get()


class CheckStatus(StrEnum):
    """The outcome of one validation step."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Check:
    """One validation step, with a message a person can act on."""

    name: str
    status: CheckStatus
    message: str

    @classmethod
    def passed(cls, name: str, message: str) -> Check:
        """A step that worked."""
        return cls(name, CheckStatus.PASSED, message)

    @classmethod
    def failed(cls, name: str, message: str) -> Check:
        """A step that did not work; the message says what to fix."""
        return cls(name, CheckStatus.FAILED, message)

    @classmethod
    def skipped(cls, name: str, message: str) -> Check:
        """A step not run; the message says why."""
        return cls(name, CheckStatus.SKIPPED, message)

    def as_dict(self) -> dict[str, str]:
        """The JSON shape the API, UI and CLI share."""
        return {"name": self.name, "status": self.status.value, "message": self.message}


def all_passed(checks: list[Check]) -> bool:
    """True when no check failed (skipped ones don't count against)."""
    return all(check.status is not CheckStatus.FAILED for check in checks)


def skip_rest(names: tuple[str, ...], failed: str) -> list[Check]:
    """The steps not run because the ``failed`` step failed."""
    return [Check.skipped(name, f"not run: the {failed} check failed") for name in names]


@dataclass(frozen=True, slots=True)
class Tenant:
    """The project a destination belongs to, as far as a destination needs to know it.

    ``app_id`` names the project's own subfolder of operator-owned space (local folders);
    ``name`` and ``app_id`` are what the operator's settings name projects by; ``external_id``
    is what an assumed role's trust policy requires.
    """

    app_id: str
    name: str
    external_id: str


@dataclass(frozen=True, slots=True)
class Needs:
    """Which operations beyond writing the configured features rely on."""

    read: bool = False  # read-back verification of uploaded files
    list: bool = False  # finding leftovers of failed attempts
    delete: bool = False  # removing those leftovers (and the validation object)
    test_record: bool = False  # streams: send one test record (consumers will see it)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a destination kind is and allows, read through the registry by the services, the
    API and the CLI: adding a kind touches its own folder, not theirs."""

    stream: bool  # a record stream (stream exports); otherwise an object store (file exports)
    updatable: tuple[str, ...]  # config fields an update may change (others: a new destination)
    auth_modes: tuple[str, ...]  # the credentials' ``mode`` values it takes
    location: Callable[[Mapping[str, Any]], str]  # its stored config → where it writes, for people
    multipart: bool = False  # writes large objects in parts (object stores)


def object_location(scheme: str, field: str) -> Callable[[Mapping[str, Any]], str]:
    """``scheme://<config[field]>/<folder>`` (no trailing slash without a folder)."""

    def location(config: Mapping[str, Any]) -> str:
        where = f"{scheme}://{config.get(field) or ''}"
        folder = str(config.get("folder") or "").strip("/")
        return f"{where}/{folder}" if folder else where

    return location


def stream_location(what: str, field: str) -> Callable[[Mapping[str, Any]], str]:
    """``<what> <config[field]> in <region>``, e.g. "kinesis stream events in eu-west-1"."""

    def location(config: Mapping[str, Any]) -> str:
        where = f"{what} {config.get(field) or ''}"
        region = config.get("region")
        return f"{where} in {region}" if region else where

    return location


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A committed object."""

    key: str
    size: int
    details: dict[str, Any]


class ObjectWriter(abc.ABC):
    """Streams one object; nothing is visible under ``key`` until :meth:`commit`."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.size = 0
        self._done = False

    def write(self, chunk: bytes) -> None:
        """Append bytes; large objects go up part by part as they fill."""
        if self._done:
            raise RuntimeError(f"object {self.key} is already committed or aborted")
        if chunk:
            self.size += len(chunk)
            self._write(chunk)

    def commit(self) -> StoredObject:
        """Make the object visible under its key (replacing any object there)."""
        if self._done:
            raise RuntimeError(f"object {self.key} is already committed or aborted")
        self._done = True
        return self._commit()

    def abort(self) -> None:
        """Drop everything written; no object appears. Safe to call more than once."""
        if not self._done:
            self._done = True
            self._abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.commit()

    @abc.abstractmethod
    def _write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def _commit(self) -> StoredObject: ...

    @abc.abstractmethod
    def _abort(self) -> None: ...


class PartBuffer:
    """Collects writes into parts of a fixed size, so memory stays at about one part."""

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> Iterator[bytes]:
        """Add bytes; yield every full part now available."""
        self._chunks.append(chunk)
        self._size += len(chunk)
        while self._size >= self.part_size:
            data = b"".join(self._chunks)
            part, rest = data[: self.part_size], data[self.part_size :]
            self._chunks = [rest] if rest else []
            self._size = len(rest)
            yield part

    def rest(self) -> bytes:
        """What is left (less than one part)."""
        data = b"".join(self._chunks)
        self._chunks, self._size = [], 0
        return data


class ObjectStore(abc.ABC):
    """A bucket-like destination: S3, GCS, Azure Blob, a local folder (streams: RecordStream)."""

    kind: ClassVar[str]

    def __init__(self, folder: str, *, part_size: int = DEFAULT_PART_SIZE) -> None:
        self.folder = folder.strip("/")
        self.part_size = part_size

    @abc.abstractmethod
    def open_object(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> ObjectWriter:
        """Start streaming an object to ``key`` (relative to the bucket)."""

    @abc.abstractmethod
    def read_object(self, key: str) -> bytes:
        """The whole object's bytes (for verification and tests: small objects)."""

    @abc.abstractmethod
    def list_objects(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""

    @abc.abstractmethod
    def delete_object(self, key: str) -> None:
        """Remove an object; no error when it is already gone."""

    @abc.abstractmethod
    def validate(self, needs: Needs) -> list[Check]:
        """Run the ordered checks of this kind against the real service."""

    def put_object(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Write a small object in one go."""
        writer = self.open_object(key, content_type=content_type)
        try:
            writer.write(data)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def validation_key(self) -> str:
        """The one key of the test object, under the prefix exports write to: every validation
        of this bucket and folder overwrites it, so validating never leaves a pile behind."""
        return f"{self.folder}_{VALIDATION_OBJECT}" if self.folder else VALIDATION_OBJECT

    def spare_validation_key(self) -> str:
        """A key of its own for one test object, for a store that may write but not replace
        (Cloud Storage without storage.objects.delete cannot overwrite the usual one)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"{VALIDATION_FOLDER}/test-{stamp}-{secrets.token_hex(4)}.txt"
        return f"{self.folder}_{name}" if self.folder else name

    def close(self) -> None:
        """Release clients and connections."""
        return None


class Objects(Protocol):
    """What the shared object checks use of a store: an :class:`ObjectStore` has it all. A
    kind's checks describe the store they validate as this plus what they read of it, so its
    ``checks`` module needs no import of its ``store`` (which calls the checks)."""

    def put_object(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> StoredObject: ...

    def read_object(self, key: str) -> bytes: ...

    def list_objects(self, prefix: str) -> list[str]: ...

    def delete_object(self, key: str) -> None: ...

    def validation_key(self) -> str: ...

    def spare_validation_key(self) -> str: ...


class Guarded(Objects, Protocol):
    """A store that knows why the operator's settings refuse it (None: they allow it) and puts
    its errors into words: what :func:`guarded_checks` reads."""

    refusal: str | None

    def explain(self, exc: BaseException) -> str: ...


class DestinationError(TerminalError):
    """A destination refused an operation for a reason a person must fix.

    Raised by a :class:`RecordStream`'s ``put_records``, it means the service refused the call
    as a whole: nothing of it was accepted.
    """


class CredentialsRejected(DestinationError):
    """The service refused the credentials themselves: an unknown, deleted or disabled key, a
    wrong secret, an expired token, a role Spillway may not assume.

    Every export of the destination meets the same refusal, so the destination turns
    ``failing`` with this reason (and ``active`` again once a write succeeds).
    """


def object_checks(store: Objects, needs: Needs, explain: Callable[[Exception], str]) -> list[Check]:
    """The write / read / list / delete steps every object store shares.

    ``explain`` turns a kind's exception into a sentence a person can act on. The test object
    has one fixed key per bucket and folder (:meth:`ObjectStore.validation_key`): each
    validation replaces it, and deletes it whenever the store allows, needed or not.
    """
    key = store.validation_key()
    body = b"Spillway validation object. Safe to delete.\n"
    checks: list[Check] = []
    refused = ""  # why the fixed key could not be replaced, when it could not
    try:
        store.put_object(key, body, content_type="text/plain")
    except Exception as exc:
        refused = explain(exc)
        # A store that may write but not replace (Cloud Storage without objects.delete) refuses
        # the fixed key once an earlier validation left it: a key of its own tells the two apart.
        spare = store.spare_validation_key()
        try:
            store.put_object(spare, body, content_type="text/plain")
        except Exception:
            checks.append(
                Check.failed("write", f"could not write a test object to {key}: {refused}")
            )
            return checks + skip_rest(("read", "list", "delete"), "write")
        key = spare
    if not refused:
        checks.append(Check.passed("write", f"wrote test object {key}"))
    else:
        checks.append(
            Check.passed(
                "write",
                f"wrote test object {key}; writing {store.validation_key()} failed ({refused}). "
                "If that is because an earlier test object is there and may not be replaced, a "
                "retried run could not replace a file it already wrote either",
            )
        )

    if needs.read:
        try:
            same = store.read_object(key) == body
            checks.append(
                Check.passed("read", "read the test object back, byte for byte")
                if same
                else Check.failed(
                    "read", f"read {key} back but its bytes differ from what was written"
                )
            )
        except Exception as exc:
            checks.append(Check.failed("read", f"could not read {key}: {explain(exc)}"))
    else:
        checks.append(Check.skipped("read", "not needed: read-back verification is off"))

    if needs.list:
        try:
            prefix = key.rsplit("/", 1)[0] + "/"
            found = key in store.list_objects(prefix)
            checks.append(
                Check.passed("list", f"listed {prefix} and found the test object")
                if found
                else Check.failed("list", f"listed {prefix} but the test object was not there")
            )
        except Exception as exc:
            checks.append(Check.failed("list", f"could not list objects: {explain(exc)}"))
    else:
        checks.append(Check.skipped("list", "not needed: cleanup of failed attempts is off"))

    try:
        store.delete_object(key)
    except Exception as exc:
        if needs.delete:
            checks.append(
                Check.failed(
                    "delete", f"could not delete {key} (it is left in place): {explain(exc)}"
                )
            )
        else:
            checks.append(
                Check.skipped(
                    "delete",
                    f"not needed: cleanup is off, so the test object stays at {key} (the next "
                    "validation replaces it)",
                )
            )
    else:
        checks.append(Check.passed("delete", "deleted the test object"))
    return checks


OBJECT_CHECKS = ("write", "read", "list", "delete")


def bucket_checks(
    store: Objects,
    needs: Needs,
    *,
    refusal: str | None,
    credentials: Callable[[], Check],
    bucket: Callable[[], Check],
    explain: Callable[[Exception], str],
) -> list[Check]:
    """credentials → bucket → :func:`object_checks`, each step run only when the one before did
    not fail (the rest are skipped, saying why). ``refusal``: why the operator's settings do not
    allow this store; it fails the credentials step without sending anything."""
    first = Check.failed("credentials", refusal) if refusal is not None else credentials()
    if first.status is CheckStatus.FAILED:
        return [first, *skip_rest(("bucket", *OBJECT_CHECKS), "credentials")]
    second = bucket()
    if second.status is CheckStatus.FAILED:
        return [first, second, *skip_rest(OBJECT_CHECKS, "bucket")]
    return [first, second, *object_checks(store, needs, explain)]


def guarded_checks(
    store: Guarded, needs: Needs, credentials: Callable[[], Check], bucket: Callable[[], Check]
) -> list[Check]:
    """:func:`bucket_checks` with the store's own refusal and explanations."""
    return bucket_checks(
        store,
        needs,
        refusal=store.refusal,
        credentials=credentials,
        bucket=bucket,
        explain=store.explain,
    )


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """A record service's batch limits (Kinesis PutRecords, Firehose PutRecordBatch)."""

    max_records: int  # records per call
    max_call_bytes: int  # bytes per call (data, plus partition keys where they count)
    max_record_bytes: int  # bytes per record (plus its partition key where it counts)
    counts_partition_key: bool  # Kinesis counts the key's UTF-8 bytes against both limits
    newline: bool  # Firehose: terminate each record with "\n" so S3 objects hold one per line

    def record_size(self, data: bytes, partition_key: str) -> int:
        """What one record weighs against the limits."""
        size = len(data) + (1 if self.newline else 0)
        if self.counts_partition_key:
            size += len(partition_key.encode())
        return size


KINESIS_LIMITS = StreamLimits(500, 5 * 1024 * 1024, 1024 * 1024, True, False)
FIREHOSE_LIMITS = StreamLimits(500, 4 * 1024 * 1024, 1000 * 1024, False, True)


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record to send: its bytes (newline not included) and its partition key (the uid)."""

    data: bytes
    partition_key: str


class RecordStream(abc.ABC):
    """A record destination: Kinesis Data Streams, Firehose.

    ``put_records`` sends one batch within :attr:`limits` and returns, per record in order,
    ``None`` when it was acknowledged or the service's error code when it was not (to be resent).
    A failure of the whole call raises :class:`TransientError` (throttling, 5xx, timeouts) or
    :class:`DestinationError` (access denied, stream missing or deleted, bad credentials).
    """

    kind: ClassVar[str]
    limits: ClassVar[StreamLimits]

    @abc.abstractmethod
    def put_records(self, records: list[StreamRecord]) -> list[str | None]:
        """Send one batch; per record, None (acknowledged) or the error code to retry on."""

    @abc.abstractmethod
    def validate(self, needs: Needs) -> list[Check]:
        """Run the ordered checks of this kind against the real service."""

    def close(self) -> None:
        """Release clients and connections."""
        return None


Destination = ObjectStore | RecordStream
