"""The job loop: the worker runs it beside exports. Each unfinished job is served under its
lease (one worker per job): planned (its pieces and, for an export, its snapshot), then its
pieces in order, each recorded done in a transaction fenced by the lease, then finished.

A job killed at any point resumes where it stood: planning starts over (nothing was written
yet), processing at the first unfinished piece (a half-written piece was never recorded, and
is written again to the same key with the same bytes). A terminal error (access denied, bucket
gone) ends the job FAILED with the reason; transient ones back off and retry, a few times.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Engine

from spillway import destinations as registry
from spillway.destinations.base import ObjectStore
from spillway.engine import retry
from spillway.engine.jobs import pieces as piece_io
from spillway.engine.jobs import plan
from spillway.engine.targets import open_target, tenant_of
from spillway.errors import InputError, TerminalError, TransientError
from spillway.model import (
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_CREATED,
    JOB_FAILED,
    JOB_INITIALIZING,
    JOB_PROCESSING,
    Job,
    JobPiece,
)
from spillway.secrets import SecretBox
from spillway.store import catalog, leases
from spillway.store import jobs as job_store
from spillway.store.db import now_ms, write
from spillway.store.projects import project_by_id
from spillway.store.schema import jobs as jobs_table

log = logging.getLogger(__name__)

# Upserts one import piece makes per transaction.
IMPORT_BATCH = 500
# Snapshot records written per transaction while planning.
PLAN_BATCH = 5_000
# The most endpoints a segment defined by an import lists by id.
MAX_SEGMENT_IDS = 10_000  # a SQL IN list well within every database's parameter limit
# An import piece keeps the ids it stored as snapshot rows from piece number times this.
PIECE_ROWS = 1_000_000_000
# How many times a transient failure is retried before the job fails.
MAX_ATTEMPTS = 5

# Upserts endpoint definitions (Pinpoint's shape) for a project; per item, why it was refused
# (None: stored). The profiles service provides it, with the endpoint API's merge rules.
ImportItems = Callable[[Engine, int, list[dict[str, Any]]], list[str | None]]
# Creates a segment of listed endpoints (project, name, endpoint ids); why not, or None.
DefineSegment = Callable[[Engine, int, str, list[str]], str | None]


class JobCancelled(Exception):
    """The job was cancelled while it ran: stop at the next piece boundary."""


@dataclass
class JobRunner:
    """Serves due jobs; ``import_items`` upserts parsed endpoint definitions (the profiles
    service's merge rules) and says, per item, why it was refused (None: stored)."""

    engine: Engine
    box: SecretBox
    import_items: ImportItems
    owner: str = ""
    lease_ttl_ms: int = 60_000
    matches_for: Callable[[Mapping[str, Any] | None], plan.Matches | None] = lambda _f: None
    define_segment: DefineSegment | None = None

    interval_seconds: float = 5.0

    def __post_init__(self) -> None:
        self.owner = self.owner or f"jobs-{secrets.token_hex(6)}"
        self._wake = threading.Event()

    def wake(self) -> None:
        """Look for jobs now (one was queued through the API)."""
        self._wake.set()

    def run_forever(self, stop: threading.Event) -> None:
        """Serve jobs until ``stop`` is set, in a thread of its own: a long job never holds up
        the exports' schedule."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive any single failure
                log.exception("job pass failed; retrying in %.0fs", self.interval_seconds)
            self._wake.wait(self.interval_seconds)
            self._wake.clear()

    def serve_one(self, job_id: str) -> str | None:
        """Run one job now if no other worker holds it (``spillway jobs … --wait``); its
        outcome, or None when it is not finished by this call."""
        with self.engine.connect() as conn:
            job = job_store.job_by_id(conn, job_id)
        if job is None or job.ended:
            return None if job is None else job.status
        with self._held(job.id) as held:
            return self._serve(job) if held else None

    def tick(self) -> dict[str, int]:
        """Serve every due job once; counts of jobs finished and failed in this pass."""
        done = {"jobs_completed": 0, "jobs_failed": 0}
        with self.engine.connect() as conn:
            due = job_store.due_jobs(conn, now_ms())
        for job in due:
            with self._held(job.id) as held:
                if not held:
                    continue
                outcome = self._serve(job)
            if outcome == JOB_COMPLETED:
                done["jobs_completed"] += 1
            elif outcome == JOB_FAILED:
                done["jobs_failed"] += 1
        return done

    # Leases.

    @contextmanager
    def _held(self, job_id: str) -> Iterator[bool]:
        with write(self.engine) as conn:
            held = leases.claim(conn, jobs_table, job_id, self.owner, now_ms(), self.lease_ttl_ms)
        if not held:
            yield False
            return
        try:
            yield True
        finally:
            with write(self.engine) as conn:
                leases.release(conn, jobs_table, job_id, self.owner)

    def _renew(self, conn: Connection, job: Job) -> None:
        """Extend the job's lease in ``conn``'s transaction; LeaseLost once another worker
        has taken the job over."""
        if not leases.renew(conn, jobs_table, job.id, self.owner, now_ms(), self.lease_ttl_ms):
            raise leases.LeaseLost(f"lease on job {job.id} was taken by another worker")

    # One job.

    def _serve(self, job: Job) -> str | None:
        try:
            if job.status in (JOB_CREATED, JOB_INITIALIZING):
                job = self._plan(job)
            if job.status == JOB_PROCESSING:
                self._process(job)
                return JOB_COMPLETED
        except (leases.LeaseLost, JobCancelled):
            return None
        except (TerminalError, InputError) as exc:
            self._end(job, JOB_FAILED, str(exc))
            return JOB_FAILED
        except TransientError as exc:
            return self._back_off(job, str(exc))
        except Exception as exc:  # a bug must not stop other jobs, nor hide
            log.exception("job %s failed unexpectedly", job.id)
            self._end(job, JOB_FAILED, f"internal error ({type(exc).__name__}); see the server log")
            return JOB_FAILED
        return None

    def _back_off(self, job: Job, reason: str) -> str | None:
        attempts = job.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            self._end(job, JOB_FAILED, f"{reason} (gave up after {attempts} attempts)")
            return JOB_FAILED
        delay = retry.SCHEDULED.delay_ms(attempts, terminal=False)
        with write(self.engine) as conn:
            job_store.update_job(
                conn, job.id, {"attempts": attempts, "next_attempt_at": now_ms() + delay}
            )
            job_store.add_failures(conn, job, [f"attempt {attempts}: {reason}"], 0)
        return None

    def _end(self, job: Job, status: str, reason: str | None) -> None:
        with write(self.engine) as conn:
            leases.fence(conn, jobs_table, job.id, self.owner, now_ms())
            if job_store.status(conn, job.id) == JOB_CANCELLED:
                status, reason = JOB_CANCELLED, None
            values: dict[str, Any] = {"status": status, "completed_at": now_ms()}
            job_store.update_job(conn, job.id, values)
            if reason:
                job_store.add_failures(conn, job, [reason], 0)
            job_store.drop_rows(conn, job.id)

    def _check_cancel(self, job: Job) -> None:
        """Stop at a piece boundary once the job was cancelled (its snapshot goes)."""
        with self.engine.connect() as conn:
            cancelled = job_store.status(conn, job.id) == JOB_CANCELLED
        if cancelled:
            with write(self.engine) as conn:
                job_store.drop_rows(conn, job.id)
            raise JobCancelled(job.id)

    # Targets.

    def _target(self, job: Job) -> tuple[ObjectStore, str]:
        """The object store the job writes to or reads from, and the key prefix in it."""
        definition = job.definition
        destination_id = definition.get("destination_id")
        if destination_id:
            with self.engine.connect() as conn:
                destination = catalog.destination(conn, job.project_id, destination_id)
            if destination is None:
                raise TerminalError(
                    f"destination {destination_id} was deleted; create the job again with a "
                    "destination that exists"
                )
            target = open_target(self.engine, self.box, destination)
            if not isinstance(target, ObjectStore):
                raise TerminalError("jobs write to object stores, not to streams")
            base = "/".join(p for p in (destination.folder, definition.get("folder") or "") if p)
            return target, base
        bucket, prefix = split_s3_url(str(definition["s3_url"]))
        parsed = registry.parse(
            "s3",
            {"bucket": bucket, "region": definition.get("region") or "us-east-1"},
            {"mode": "role", "role_arn": definition["role_arn"]},
            tenant_of(self.engine, job.project_id),
        )
        built = registry.build(parsed, tenant_of(self.engine, job.project_id))
        assert isinstance(built, ObjectStore)
        return built, prefix

    # Planning.

    def _plan(self, job: Job) -> Job:
        now = now_ms()
        with write(self.engine) as conn:
            self._renew(conn, job)
            job_store.replace_plan(conn, job.id)
            job_store.update_job(
                conn,
                job.id,
                {
                    "status": JOB_INITIALIZING,
                    "started_at": job.started_at or now,
                    "snapshot_at": now,
                },
            )
        target, base = self._target(job)
        try:
            if job.type == "import":
                planned = self._plan_import(job, target, base)
            else:
                planned = self._plan_export(job, base)
        finally:
            target.close()
        with write(self.engine) as conn:
            self._check_cancel_in(conn, job)
            self._renew(conn, job)
            job_store.insert_pieces(conn, job.id, planned)
            job_store.update_job(
                conn, job.id, {"status": JOB_PROCESSING, "total_pieces": len(planned)}
            )
            found = job_store.job_by_id(conn, job.id)
        assert found is not None
        return found

    def _check_cancel_in(self, conn: Any, job: Job) -> None:
        if job_store.status(conn, job.id) == JOB_CANCELLED:
            raise JobCancelled(job.id)

    def _records(self, job: Job, conn: Any) -> Iterator[bytes]:
        definition = job.definition
        if job.what == "event_counts":
            return plan.event_count_records(
                conn, job.project_id, int(definition["start_ms"]), int(definition["end_ms"])
            )
        matches = self.matches_for(definition.get("filter"))
        if job.what == "users":
            return plan.user_records(conn, job.project_id, matches)
        project = project_by_id(conn, job.project_id)
        assert project is not None
        return plan.endpoint_records(conn, job.project_id, project.app_id, matches)

    def _plan_export(self, job: Job, base: str) -> list[dict[str, Any]]:
        """Snapshot the job's records, then cut them into pieces of at most
        ``max_records_per_piece`` with keys fixed now."""
        per_piece = int(job.definition.get("max_records_per_piece") or 100_000)
        suffix = piece_io.SUFFIX[
            (job.definition.get("format", "jsonl"), job.definition.get("compression", "gzip"))
        ]
        folder = "/".join(p for p in (base, job.id) if p)

        def renew(conn: Connection) -> None:
            self._renew(conn, job)

        # Every endpoint as jsonl.gz, on SQLite: the pieces are encoded now, their bytes are
        # the snapshot (``plan.encode_endpoints``).
        encoded = plan.encode_endpoints(self.engine, job, per_piece, renew)
        if encoded is not None:
            return [
                {"key": f"{folder}/{job.what}-{n:05d}{suffix}", **piece.planned()}
                for n, piece in enumerate(encoded, start=1)
            ]
        # Every endpoint otherwise, on SQLite: copied by the database, no record through Python.
        copied = plan.snapshot_endpoints(self.engine, job, renew)
        count = copied or 0
        batch: list[bytes] = []
        # One read transaction: on PostgreSQL a consistent view for the whole snapshot.
        with self.engine.connect() as reading:
            for body in self._records(job, reading) if copied is None else ():
                batch.append(body)
                if len(batch) == PLAN_BATCH:
                    self._store_rows(job, count + 1, batch)
                    count += len(batch)
                    batch = []
        if batch:
            self._store_rows(job, count + 1, batch)
            count += len(batch)
        total = max(1, math.ceil(count / per_piece))  # an empty job still writes one (empty) piece
        return [
            {
                "key": f"{folder}/{job.what}-{n:05d}{suffix}",
                "first_row": (n - 1) * per_piece + 1,
                "last_row": min(n * per_piece, count),
            }
            for n in range(1, total + 1)
        ]

    def _store_rows(self, job: Job, first: int, bodies: list[bytes]) -> None:
        with write(self.engine) as conn:
            self._renew(conn, job)
            job_store.insert_rows(conn, job.id, first, bodies)

    def _plan_import(self, job: Job, target: ObjectStore, base: str) -> list[dict[str, Any]]:
        """One piece per object under the prefix (a manifest is not data)."""
        prefix = "/".join(p for p in (base, job.definition.get("prefix") or "") if p)
        keys = [
            key
            for key in target.list_objects(prefix)
            if not key.endswith("manifest.json") and not key.endswith("/")
        ]
        if not keys:
            raise TerminalError(f"no objects under {prefix or 'the bucket root'!r} to import")
        return [{"key": key} for key in keys]

    # Processing.

    def _process(self, job: Job) -> None:
        with self.engine.connect() as conn:
            planned = job_store.pieces(conn, job.id)
        target, _base = self._target(job)
        try:
            for piece in planned:
                if piece.status != "pending":
                    continue
                self._check_cancel(job)
                if job.type == "import":
                    self._import_piece(job, target, piece)
                else:
                    self._export_piece(job, target, piece)
            with self.engine.connect() as conn:
                unfinished = [p.piece for p in job_store.pieces(conn, job.id) if p.status != "done"]
            if unfinished:  # never COMPLETED with a piece missing
                raise TerminalError(
                    f"pieces {unfinished[:10]} were not written; start the job again"
                )
            if job.type == "export":
                self._write_manifest(job, target, planned)
        finally:
            target.close()
        if job.type == "import" and job.definition.get("define_segment"):
            self._define_segment(job, str(job.definition["define_segment"]))
        with write(self.engine) as conn:
            leases.fence(conn, jobs_table, job.id, self.owner, now_ms())
            self._check_cancel_in(conn, job)
            job_store.update_job(conn, job.id, {"status": JOB_COMPLETED, "completed_at": now_ms()})
            job_store.drop_rows(conn, job.id)

    def _define_segment(self, job: Job, name: str) -> None:
        """Create the segment of the endpoints the import stored (their ids were kept with
        each piece); a problem is said in the job's failures, not a reason to fail it."""
        with self.engine.connect() as conn:
            ids = sorted({body.decode() for body in job_store.rows(conn, job.id, 0, 2**62)})
            now = job_store.job_by_id(conn, job.id)
        imported = now.total_processed if now is not None else len(ids)
        if imported > MAX_SEGMENT_IDS:
            problem: str | None = (
                f"segment {name!r} not defined: {imported:,} endpoints were imported, a segment "
                f"of listed endpoints holds at most {MAX_SEGMENT_IDS:,}; define one by "
                "attributes instead"
            )
        elif self.define_segment is None:
            problem = f"segment {name!r} not defined: segments are not available here"
        else:
            problem = self.define_segment(self.engine, job.project_id, name, ids)
        if problem:
            with write(self.engine) as conn:
                job_store.add_failures(conn, job, [problem], 0)

    def _export_piece(self, job: Job, target: ObjectStore, piece: JobPiece) -> None:
        first, last = piece.first_row or 1, piece.last_row or 0
        # The records stream from the snapshot into the encoder a block at a time (a whole
        # piece held in a list was most of the job's peak memory).
        with self.engine.connect() as conn:
            kept = None
            if piece.sha256 is not None:  # encoded when the job was planned: its bytes, as kept
                kept = piece_io.Written(piece.records, piece.bytes, piece.sha256)
                bodies = job_store.blocks(conn, job.id, first, max(first, last))
            else:
                bodies = job_store.rows(conn, job.id, first, last) if last >= first else iter(())
            written = piece_io.write_piece(
                target,
                piece.key,
                bodies,
                job.definition.get("format", "jsonl"),
                job.definition.get("compression", "gzip"),
                kept,
            )
        with write(self.engine) as conn:
            leases.fence(conn, jobs_table, job.id, self.owner, now_ms())
            self._renew(conn, job)
            job_store.finish_piece(
                conn,
                job.id,
                piece.piece,
                ok=True,
                records=written.records,
                failures=0,
                size=written.size,
                sha256=written.sha256,
            )

    def _write_manifest(self, job: Job, target: ObjectStore, planned: list[JobPiece]) -> None:
        with self.engine.connect() as conn:
            done = job_store.pieces(conn, job.id)
        manifest = {
            "job_id": job.id,
            "what": job.what,
            "format": job.definition.get("format", "jsonl"),
            "compression": job.definition.get("compression", "gzip"),
            "snapshot_at": job.snapshot_at,
            "records": sum(p.records for p in done),
            "pieces": [
                {"key": p.key, "records": p.records, "bytes": p.bytes, "sha256": p.sha256}
                for p in done
            ],
        }
        key = (
            planned[0].key.rsplit("/", 1)[0] + "/manifest.json"
            if planned
            else f"{job.id}/manifest.json"
        )
        target.put_object(
            key, orjson.dumps(manifest, option=orjson.OPT_INDENT_2), content_type="application/json"
        )

    def _import_piece(self, job: Job, target: ObjectStore, piece: JobPiece) -> None:
        data = target.read_object(piece.key)
        file_format = "csv" if job.definition.get("format") == "csv" else "json"
        stored: list[bytes] = []  # the ids of the endpoints stored (for define_segment)
        problems: list[tuple[int, str]] = []  # (line, reason)
        batch: list[tuple[int, dict[str, Any]]] = []

        def flush() -> None:
            results = self.import_items(self.engine, job.project_id, [item for _, item in batch])
            for (number, item), error in zip(batch, results, strict=True):
                if error is None:
                    stored.append(str(item["Id"]).encode())
                else:
                    problems.append((number, error))
            batch.clear()

        for line in piece_io.read_definitions(data, file_format):
            if line.item is None:
                problems.append((line.number, line.error or "unreadable"))
                continue
            batch.append((line.number, line.item))
            if len(batch) == IMPORT_BATCH:
                flush()
        if batch:
            flush()
        messages = [f"{piece.key} line {number}: {reason}" for number, reason in sorted(problems)]
        with write(self.engine) as conn:
            leases.fence(conn, jobs_table, job.id, self.owner, now_ms())
            self._renew(conn, job)
            job_store.finish_piece(
                conn,
                job.id,
                piece.piece,
                ok=True,
                records=len(stored),
                failures=len(problems),
                size=len(data),
                sha256=None,
            )
            if job.definition.get("define_segment") and len(stored) <= MAX_SEGMENT_IDS:
                # Kept with the piece, in its transaction: a piece imported again after a crash
                # never lists an endpoint twice.
                job_store.insert_rows(conn, job.id, piece.piece * PIECE_ROWS, stored)
            if problems:
                job_store.add_failures(conn, job, messages, len(problems))


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise InputError(f"{url!r} is not an s3:// URL")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


class JobThread:
    """Runs a :class:`JobRunner` in a thread of its own beside the worker and the API."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=runner.run_forever, args=(self._stop,), name="spillway-jobs", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to stop and wait for the current piece (at most the join timeout)."""
        self._stop.set()
        self.runner.wake()
        self._thread.join(timeout=30)
