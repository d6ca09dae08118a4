"""What Spillway keeps, as typed objects: built from rows at the store's edge (``from_row``),
read by the engine, the services and the edges (API, CLI) instead of column-name dictionaries.

The objects are frozen: a change goes through the store (``store.catalog.update_export`` and
friends) and the caller reads the object again. JSON columns that belong to a destination kind
(``config``, ``credentials_public``) stay mappings: their shape is the kind's to define
(``destinations/<kind>/config.py``). An export's settings, whose shape is Spillway's own, are
typed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from spillway.filters import EndpointFilter

# The snapshot flag of a run now: its files are named by its sequence range. (Runs queued by
# an older version, without it, keep the keys their first attempt used.)
RANGE_KEYS = "range_keys"
# A file is split past this many bytes unless the export says otherwise.
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024


def _mapping(row: Any) -> Mapping[str, Any]:
    """A row's columns by name, whatever form the row came in (Row, RowMapping, dict)."""
    return row._mapping if hasattr(row, "_mapping") else row  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Project:
    """A project: one customer's events, endpoints, destinations and keys."""

    id: int
    app_id: str  # the public 32-hex id (Pinpoint's ApplicationId)
    name: str
    external_id: str  # what the project's AWS trust policies must require
    created_at: int  # epoch ms
    tags: Mapping[str, str] = field(default_factory=dict)  # Pinpoint's app tags

    @classmethod
    def from_row(cls, row: Any) -> Project:
        m = _mapping(row)
        return cls(
            id=int(m["id"]),
            app_id=m["app_id"],
            name=m["name"],
            external_id=m["external_id"],
            created_at=int(m["created_at"]),
            tags=dict(m.get("tags") or {}),
        )


@dataclass(frozen=True, slots=True)
class Key:
    """An integration key as stored; the secret itself is never loaded here."""

    key_id: str
    project_id: int | None  # None: an operator key, bound to no project
    scope: str
    secret_hash: str
    revoked_at: int | None
    name: str | None = None
    created_at: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> Key:
        m = _mapping(row)
        return cls(
            key_id=m["key_id"],
            project_id=None if m["project_id"] is None else int(m["project_id"]),
            scope=m["scope"],
            secret_hash=m.get("secret_hash", ""),
            revoked_at=m.get("revoked_at"),
            name=m.get("name"),
            created_at=m.get("created_at"),
        )


@dataclass(frozen=True, slots=True)
class Destination:
    """A place files or records go: its kind, its kind's config, and sealed credentials."""

    id: str
    project_id: int
    name: str
    kind: str
    config: Mapping[str, Any]  # the kind's own shape (destinations/<kind>/config.py)
    features: Mapping[str, Any]  # read_back, cleanup, test_record
    credentials_sealed: bytes
    credentials_public: Mapping[str, Any]  # what may be shown: ids, masked secrets
    credentials_version: int
    status: str  # active | failing | deleted
    last_validation: Mapping[str, Any] | None
    validated_at: int | None
    created_at: int
    updated_at: int
    deleted_at: int | None

    @classmethod
    def from_row(cls, row: Any) -> Destination:
        m = _mapping(row)
        return cls(
            id=m["id"],
            project_id=int(m["project_id"]),
            name=m["name"],
            kind=m["kind"],
            config=dict(m["config"] or {}),
            features=dict(m["features"] or {}),
            credentials_sealed=bytes(m["credentials_sealed"]),
            credentials_public=dict(m["credentials_public"] or {}),
            credentials_version=int(m["credentials_version"]),
            status=m["status"],
            last_validation=m.get("last_validation"),
            validated_at=m.get("validated_at"),
            created_at=int(m["created_at"]),
            updated_at=int(m["updated_at"]),
            deleted_at=m.get("deleted_at"),
        )

    @property
    def folder(self) -> str:
        """The folder every export's files go under (empty: the bucket's root)."""
        return str(self.config.get("folder") or "")


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """What goes into an export's files or records and how they are encoded, as stored. The
    request models (``api/models.py``) validate a client's version of it; this is what was kept.
    """

    events: str | tuple[str, ...] = "all"  # "all" or the event names
    user_attributes: str | tuple[str, ...] = "all"  # "all", "none" or the attribute names
    device_attributes: bool = True
    format: str = "jsonl"  # jsonl | csv | parquet
    compression: str = "gzip"  # gzip | zstd | none
    pgp_public_key: str | None = None
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    webhook_url: str | None = None
    record_format: str = "spillway"  # spillway | pinpoint (streams)
    # Where a window's files go under the prefix: moengage (export_day=DD-MM-YYYY/) or hive
    # (dt=YYYY-MM-DD/hour=HH/, read as typed partitions by query engines). Settings stored
    # before it existed read as moengage, the layout they were written in.
    layout: str = "moengage"

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> ExportSettings:
        value = value or {}
        known = {name: value[name] for name in cls.__dataclass_fields__ if name in value}
        for name in ("events", "user_attributes"):
            if isinstance(known.get(name), list):
                known[name] = tuple(known[name])
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("events", "user_attributes"):
            if isinstance(out[name], tuple):
                out[name] = list(out[name])
        return out

    @property
    def event_names(self) -> list[str] | None:
        """The event names to deliver, or None for all."""
        return None if self.events == "all" else list(self.events)


@dataclass(frozen=True, slots=True)
class RunSettings:
    """A run's snapshot of its export's settings when it was queued, with where its files go."""

    export: ExportSettings
    prefix: str  # the key prefix of its files: <folder>_<name>, or <name>
    range_keys: bool = False  # a run now: files named by its sequence range

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> RunSettings:
        value = value or {}
        return cls(
            export=ExportSettings.from_json(value),
            prefix=str(value.get("prefix", "")),
            range_keys=bool(value.get(RANGE_KEYS)),
        )

    def to_json(self) -> dict[str, Any]:
        out = {**self.export.to_json(), "prefix": self.prefix}
        if self.range_keys:
            out[RANGE_KEYS] = True
        return out


@dataclass(frozen=True, slots=True)
class Export:
    """A scheduled file export or a stream: which events go to which destination, how often."""

    id: str
    project_id: int
    name: str
    destination_id: str
    frequency: str  # every_15_minutes | daily | weekly | stream
    settings: ExportSettings
    status: str  # active | failing | disabled
    status_reason: str | None
    cursor_seq: int  # the last ingest sequence delivered
    created_at: int  # epoch ms
    updated_at: int
    deleted_at: int | None = None
    start_seq: int = 0  # the cursor at creation: backfills stay at or below it
    last_window_end: int | None = None  # epoch seconds
    next_attempt_at: int | None = None  # epoch ms
    lease_owner: str | None = None
    lease_until: int | None = None  # epoch ms
    start: str = "now"  # "now", "retention" or epoch seconds, as asked at creation
    start_at: int | None = None  # the receive time (ms) it covers from (None: created_at)

    @classmethod
    def from_row(cls, row: Any) -> Export:
        m = _mapping(row)
        return cls(
            id=m["id"],
            project_id=int(m["project_id"]),
            name=m["name"],
            destination_id=m["destination_id"],
            frequency=m["frequency"],
            settings=ExportSettings.from_json(m["settings"]),
            status=m["status"],
            status_reason=m.get("status_reason"),
            cursor_seq=int(m["cursor_seq"]),
            created_at=int(m["created_at"]),
            updated_at=int(m["updated_at"]),
            deleted_at=m.get("deleted_at"),
            start_seq=int(m.get("start_seq") or 0),
            last_window_end=m.get("last_window_end"),
            next_attempt_at=m.get("next_attempt_at"),
            lease_owner=m.get("lease_owner"),
            lease_until=m.get("lease_until"),
            start=str(m.get("start") or "now"),
            start_at=m.get("start_at"),
        )

    @property
    def is_stream(self) -> bool:
        return self.frequency == "stream"

    @property
    def covers_from(self) -> int:
        """The receive time (epoch ms) the export covers from."""
        return min(self.created_at, self.start_at or self.created_at)


@dataclass(frozen=True, slots=True)
class Run:
    """One delivery of an export's files: a scheduled window, a run now or a backfill."""

    id: str
    export_id: str
    kind: str  # scheduled | manual | backfill
    window_end: int  # epoch seconds: names the files
    settings: RunSettings
    status: str  # queued | running | succeeded | failed
    attempts: int
    events: int
    bytes: int
    files: list[str] = field(default_factory=list)  # the keys written
    error: str | None = None
    created_at: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    duration_ms: int | None = None
    range_start_ms: int | None = None  # a backfill's range of receive times
    range_end_ms: int | None = None
    seq_from: int | None = None  # the ingest sequences it covers, fixed at its first attempt
    seq_to: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> Run:
        m = _mapping(row)
        return cls(
            id=m["id"],
            export_id=m["export_id"],
            kind=m["kind"],
            window_end=int(m["window_end"]),
            settings=RunSettings.from_json(m["settings"]),
            status=m["status"],
            attempts=int(m["attempts"]),
            events=int(m["events"]),
            bytes=int(m["bytes"]),
            files=list(m["files"] or []),
            error=m.get("error"),
            created_at=int(m.get("created_at") or 0),
            started_at=m.get("started_at"),
            finished_at=m.get("finished_at"),
            duration_ms=m.get("duration_ms"),
            range_start_ms=m.get("range_start_ms"),
            range_end_ms=m.get("range_end_ms"),
            seq_from=m.get("seq_from"),
            seq_to=m.get("seq_to"),
        )


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream export's delivery counters."""

    export_id: str
    inflight_to: int = 0  # the last sequence of a batch being sent (its cursor is behind)
    records_sent: int = 0
    records_retried: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    last_sent_at: int | None = None  # epoch ms

    @classmethod
    def from_row(cls, row: Any) -> StreamState:
        m = _mapping(row)
        known = {name: m[name] for name in cls.__dataclass_fields__ if name in m}
        return cls(**known)

    def but(self, **changes: Any) -> StreamState:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a stream could never accept (too large), kept with the reason."""

    export_id: str
    seq: int  # its event's ingest sequence
    event_uuid: str
    bytes: int
    reason: str
    created_at: int  # epoch ms

    @classmethod
    def from_row(cls, row: Any) -> DeadLetter:
        m = _mapping(row)
        return cls(
            export_id=m["export_id"],
            seq=int(m["seq"]),
            event_uuid=m["event_uuid"],
            bytes=int(m["bytes"]),
            reason=m["reason"],
            created_at=int(m["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: a key id (API) or 'cli'/'ui', and their project."""

    name: str
    project_id: int


# Job statuses, as Pinpoint names them (a subset: Spillway does not queue jobs behind others).
JOB_CREATED = "CREATED"
JOB_INITIALIZING = "INITIALIZING"
JOB_PROCESSING = "PROCESSING"
JOB_COMPLETED = "COMPLETED"
JOB_FAILED = "FAILED"
JOB_CANCELLED = "CANCELLED"
JOB_ENDED = frozenset({JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})


@dataclass(frozen=True, slots=True)
class Job:
    """An on-demand export or import: what it reads or writes, where, and how far it got."""

    id: str
    project_id: int
    type: str  # export | import
    what: str  # endpoints | users | event_counts
    status: str
    definition: Mapping[str, Any]  # the request as accepted (target, filter, format, …)
    snapshot_at: int | None
    total_pieces: int
    completed_pieces: int
    failed_pieces: int
    total_processed: int
    total_failures: int
    failures: list[str]
    attempts: int
    next_attempt_at: int | None
    lease_owner: str | None
    lease_until: int | None
    created_at: int
    updated_at: int
    started_at: int | None
    completed_at: int | None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        m = _mapping(row)
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})

    @property
    def ended(self) -> bool:
        return self.status in JOB_ENDED


@dataclass(frozen=True, slots=True)
class JobPiece:
    """One file of a job: written (export) or read (import) as a whole."""

    job_id: str
    piece: int
    key: str
    first_row: int | None
    last_row: int | None
    status: str  # pending | done | failed
    records: int
    failures: int
    bytes: int
    sha256: str | None
    finished_at: int | None

    @classmethod
    def from_row(cls, row: Any) -> JobPiece:
        m = _mapping(row)
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Segment:
    """A saved filter of a project."""

    id: str
    project_id: int
    name: str
    filter: EndpointFilter = field(default_factory=EndpointFilter)
    created_at: int = 0  # epoch ms
    updated_at: int = 0
    deleted_at: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> Segment:
        m = _mapping(row)
        return cls(
            id=m["id"],
            project_id=int(m["project_id"]),
            name=m["name"],
            filter=EndpointFilter.from_json(m["filter"]),
            created_at=int(m["created_at"]),
            updated_at=int(m["updated_at"]),
            deleted_at=m.get("deleted_at"),
        )


# The maps of an endpoint (JSON columns); an update merges them key by key.
ENDPOINT_MAPS = ("attributes", "user_attributes", "demographic", "location", "metrics")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint profile as stored (one project's; the project is the caller's). Its maps are
    plain dicts: treat them as read-only, an update builds a new endpoint
    (``dataclasses.replace``)."""

    endpoint_id: str
    user_id: str | None = None
    channel_type: str | None = None
    address: str | None = None
    endpoint_status: str = "ACTIVE"
    opt_out: str = "NONE"
    attributes: dict[str, Any] = field(default_factory=dict)
    user_attributes: dict[str, Any] = field(default_factory=dict)
    demographic: dict[str, Any] = field(default_factory=dict)
    location: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    effective_date: str | None = None
    created_at: int = 0  # epoch ms
    updated_at: int = 0

    @classmethod
    def from_row(cls, row: Any) -> Endpoint:
        m = _mapping(row)
        return cls(
            endpoint_id=m["endpoint_id"],
            user_id=m["user_id"],
            channel_type=m["channel_type"],
            address=m["address"],
            endpoint_status=m["endpoint_status"],
            opt_out=m["opt_out"],
            attributes=m["attributes"] or {},
            user_attributes=m["user_attributes"] or {},
            demographic=m["demographic"] or {},
            location=m["location"] or {},
            metrics=m["metrics"] or {},
            effective_date=m["effective_date"],
            created_at=int(m["created_at"]),
            updated_at=int(m["updated_at"]),
        )

    def columns(self) -> dict[str, Any]:
        """The stored columns (all but the project), by name."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
