"""The declared schema. Migrations in ``migrations/versions`` must build exactly this."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# 64-bit on PostgreSQL; plain INTEGER on SQLite so the column aliases the rowid.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # Public id: 32 hex characters, the shape of a Pinpoint application id.
    sa.Column("app_id", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    # Issued per project for cross-account role assumption; not a secret, shown to the user.
    sa.Column("external_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # Pinpoint's app tags (migration 0011): a map of strings, kept and shown back.
    sa.Column("tags", sa.JSON, nullable=True),
    sqlite_autoincrement=True,
)

integration_keys = sa.Table(
    "integration_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    # NULL for an operator key (migration 0011): bound to no project, it acts on every app
    # through the Pinpoint-compatible API.
    sa.Column("project_id", BigId, sa.ForeignKey("projects.id"), nullable=True, index=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    # SHA-256 of the secret: enough for bearer auth, since secrets are 240 random bits.
    sa.Column("secret_hash", sa.String(64), nullable=False),
    # The secret sealed with the service key: SigV4 verification needs the secret itself.
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

events = sa.Table(
    "events",
    metadata,
    # The ingest sequence: exports move a cursor along it (DESIGN.md invariant 1).
    # AUTOINCREMENT on SQLite so a value is never reused, even after pruning everything.
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("project_id", BigId, nullable=False),
    sa.Column("received_at", sa.BigInteger, nullable=False),  # epoch milliseconds
    sa.Column("event_time", sa.BigInteger, nullable=False),  # epoch milliseconds
    # The UUID's 16 bytes (migration 0013): half the unique index of its text, memcmp to compare.
    sa.Column("event_uuid", sa.LargeBinary(16), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("event_name", sa.String(256), nullable=False),
    sa.Column("uid", sa.String(256), nullable=False),
    # The event object of the seed-001 record, as compact JSON bytes, ready to splice.
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("project_id", "event_uuid"),
    sa.Index(None, "received_at"),
    # Exports and streams read a project's events forward from a cursor (migration 0005).
    sa.Index(None, "project_id", "seq"),
    sqlite_autoincrement=True,
)

endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("project_id", BigId, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("endpoint_id", sa.String(256), primary_key=True),
    sa.Column("user_id", sa.String(256), nullable=True, index=True),
    sa.Column("channel_type", sa.String(32), nullable=True),
    sa.Column("address", sa.String(512), nullable=True),
    sa.Column("endpoint_status", sa.String(16), nullable=False),
    sa.Column("opt_out", sa.String(16), nullable=False),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("user_attributes", sa.JSON, nullable=False),
    sa.Column("demographic", sa.JSON, nullable=False),
    sa.Column("location", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("effective_date", sa.String(40), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # The endpoint's line in a Pinpoint export but for ApplicationId, in two parts
    # (``engine/jobs/shapes.pinpoint_parts``), written with the endpoint so an export job
    # copies bytes instead of building JSON (migration 0012). NULL: not built yet (a row written
    # by an older version); the partial index finds those cheaply.
    sa.Column("pinpoint_head", sa.LargeBinary, nullable=True),
    sa.Column("pinpoint_tail", sa.LargeBinary, nullable=True),
    sa.Index(
        "ix_endpoints_pinpoint_missing",
        "project_id",
        sqlite_where=sa.text("pinpoint_head IS NULL"),
        postgresql_where=sa.text("pinpoint_head IS NULL"),
    ),
)

# Saved endpoint filters (migration 0009): ``filter`` is services.segments.EndpointFilter as JSON.
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", BigId, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("filter", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),
    # One live segment per name in a project; it also serves listing a project's live ones.
    sa.Index(
        "uq_segments_project_id_name",
        "project_id",
        "name",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
)

# What the admin and the service did, for people to read later. Never holds a secret.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("project_id", BigId, nullable=True, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(128), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
)

destinations = sa.Table(
    "destinations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", BigId, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    # Sealed with the service key (secrets.SecretBox); the masked view is kept beside it.
    sa.Column("credentials_sealed", sa.LargeBinary, nullable=False),
    sa.Column("credentials_public", sa.JSON, nullable=False),
    sa.Column("credentials_version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_validation", sa.JSON, nullable=True),
    sa.Column("validated_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),
    # One live destination per name in a project (migration 0006); deleted ones keep theirs.
    sa.Index(
        "uq_destinations_project_id_name",
        "project_id",
        "name",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
)

exports = sa.Table(
    "exports",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", BigId, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column(
        "destination_id",
        sa.String(32),
        sa.ForeignKey("destinations.id"),
        nullable=False,
        index=True,
    ),
    sa.Column("frequency", sa.String(32), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | failing | disabled
    sa.Column("status_reason", sa.Text, nullable=True),
    sa.Column("cursor_seq", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),
    # Scheduling state (migration 0003). start_seq: the cursor when the export was created;
    # backfills stay at or below it, so they never overlap the regular files.
    sa.Column("start_seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_window_end", sa.BigInteger, nullable=True),  # epoch seconds
    sa.Column("next_attempt_at", sa.BigInteger, nullable=True),  # epoch ms
    # One worker per export at a time: whoever holds an unexpired lease.
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.BigInteger, nullable=True),  # epoch ms
    # Where the export starts (migration 0007): "now", "retention" or epoch seconds, as asked
    # at creation; start_at is the receive time (epoch ms) it covers from (NULL: created_at).
    sa.Column("start", sa.String(16), nullable=False, server_default="now"),
    sa.Column("start_at", sa.BigInteger, nullable=True),
    # One live export per name on a destination (migration 0006): the name is its path prefix.
    sa.Index(
        "uq_exports_destination_id_name",
        "destination_id",
        "name",
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    ),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("export_id", sa.String(32), sa.ForeignKey("exports.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # scheduled | manual | backfill
    sa.Column("window_end", sa.BigInteger, nullable=False),  # epoch seconds: names the files
    # Backfills select by received time below the export's start_seq.
    sa.Column("range_start_ms", sa.BigInteger, nullable=True),
    sa.Column("range_end_ms", sa.BigInteger, nullable=True),
    # Fixed at the first attempt, so every retry writes the same bytes.
    sa.Column("seq_from", sa.BigInteger, nullable=True),
    sa.Column("seq_to", sa.BigInteger, nullable=True),
    sa.Column("settings", sa.JSON, nullable=False),  # snapshot of the export's settings
    sa.Column("status", sa.String(16), nullable=False),  # queued | running | succeeded | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("events", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=True),
    sa.Column("finished_at", sa.BigInteger, nullable=True),
    sa.Column("duration_ms", sa.BigInteger, nullable=True),
    # How an export is doing (migration 0008): its open runs, its last success, each found
    # through the index whatever the length of its history.
    sa.Index(None, "export_id", "status", "finished_at"),
    # A window (or backfill) is queued once; every run-now is a run of its own (migration 0007).
    sa.Index(
        "uq_runs_export_id_kind_window_end",
        "export_id",
        "kind",
        "window_end",
        unique=True,
        sqlite_where=sa.text("kind <> 'manual'"),
        postgresql_where=sa.text("kind <> 'manual'"),
    ),
)

# Stream exports (migration 0004): what the delivery loop has done, for lag and metrics.
stream_state = sa.Table(
    "stream_state",
    metadata,
    sa.Column("export_id", sa.String(32), sa.ForeignKey("exports.id"), primary_key=True),
    # The last sequence of the batch being sent: after a crash, records between the cursor
    # and here may already have reached the stream (counted as redelivered when resent).
    sa.Column("inflight_to", sa.BigInteger, nullable=False),
    sa.Column("records_sent", sa.BigInteger, nullable=False),
    sa.Column("records_retried", sa.BigInteger, nullable=False),
    sa.Column("dead_lettered", sa.BigInteger, nullable=False),
    sa.Column("redelivered", sa.BigInteger, nullable=False),
    sa.Column("last_sent_at", sa.BigInteger, nullable=True),  # epoch ms
)

# Records a stream service can never accept (too large): kept with the reason, not retried.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("export_id", sa.String(32), sa.ForeignKey("exports.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("event_uuid", sa.String(36), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("export_id", "seq"),
)

# On-demand jobs (migration 0010): export endpoints, users or event counts to an object store,
# import endpoint definitions from one. Status and counters as Pinpoint names them; the lease
# columns as an export's (one worker per job at a time).
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("project_id", BigId, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),  # export | import
    sa.Column("what", sa.String(32), nullable=False),  # endpoints | users | event_counts
    sa.Column("status", sa.String(24), nullable=False),  # CREATED … COMPLETED | FAILED | …
    sa.Column("definition", sa.JSON, nullable=False),  # the request as accepted
    sa.Column("snapshot_at", sa.BigInteger, nullable=True),  # epoch ms: what the job reads
    sa.Column("total_pieces", sa.Integer, nullable=False),
    sa.Column("completed_pieces", sa.Integer, nullable=False),
    sa.Column("failed_pieces", sa.Integer, nullable=False),
    sa.Column("total_processed", sa.BigInteger, nullable=False),
    sa.Column("total_failures", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.JSON, nullable=False),  # messages, the first 100
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.BigInteger, nullable=True),  # epoch ms
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.BigInteger, nullable=True),  # epoch ms
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=True),
    sa.Column("completed_at", sa.BigInteger, nullable=True),
    # Listing newest first per project, and the worker's look for unfinished jobs.
    sa.Index("ix_jobs_project_id_created_at", "project_id", "created_at"),
    sa.Index("ix_jobs_status", "status"),
)

# A job's pieces, fixed when it is planned: an export piece is a range of the job's rows written
# to one key; an import piece is one object read. A retried piece rewrites the same key.
job_pieces = sa.Table(
    "job_pieces",
    metadata,
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("piece", sa.Integer, primary_key=True),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("first_row", sa.BigInteger, nullable=True),  # export: job_rows.row range
    sa.Column("last_row", sa.BigInteger, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | failed
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("finished_at", sa.BigInteger, nullable=True),
)

# An export job's snapshot: its records as they were when it was planned, numbered in output
# order. Pieces read ranges of it, so a rewritten piece has the same bytes; dropped when the
# job ends.
job_rows = sa.Table(
    "job_rows",
    metadata,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("row", sa.BigInteger, primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),  # one record, JSON
)
