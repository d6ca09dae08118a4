"""One attempt of one run: events of a sequence range → files → manifest → cursor.

Exactly once (DESIGN.md invariants 2 and 6): the range is fixed at the first attempt; keys and
bytes depend only on the range and the run's settings snapshot; the manifest is written last;
the cursor moves in the same transaction that marks the run succeeded, and only while this
worker still holds the export's lease. A crash anywhere therefore leads to a rerun of the same
run that rewrites the same keys, never to a gap or a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Engine

from spillway import metrics
from spillway.destinations.base import ObjectStore, ObjectWriter
from spillway.engine.encode import FileEncoder, FileSpec, open_encoder
from spillway.engine.lease import Lease
from spillway.engine.naming import manifest_key, run_base
from spillway.engine.records import RecordFrame, Selection
from spillway.model import DEFAULT_MAX_FILE_BYTES, Export, Run, RunSettings
from spillway.store import catalog, leases, runs
from spillway.store.db import now_ms, write

log = logging.getLogger(__name__)
# Checkpoints where tests inject failures: before upload, between parts, after the files but
# before the manifest, before the cursor commit.
Hook = Callable[[str], None]
__all__ = ["DEFAULT_MAX_FILE_BYTES", "Hook", "RunContext", "execute"]
_RECORD_OVERHEAD = 120  # the frame around each payload, roughly: only used to plan splits
_OCTET_STREAM = "application/octet-stream"
_SPOOL_IN_MEMORY = 8 * 1024 * 1024  # a first file's bytes beyond this wait on disk
_SPOOL_BLOCK = 8 * 1024 * 1024
_HOLD_BYTES = 64 * 1024 * 1024  # payloads held for an undecided split before measuring instead
# A first file's encoded bytes spooled (on the server's disk past _SPOOL_IN_MEMORY) while its
# name waits on the split: past this the range is measured instead, so a project's large
# max_file_bytes never parks a whole file on the operator's disk before it is uploaded.
_SPOOL_MOST = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a run needs besides its rows."""

    engine: Engine
    target: ObjectStore
    export_id: str
    project_id: int
    app_name: str
    db_name: str
    owner: str
    lease_ttl_ms: int = 120_000
    hook: Hook = field(default=lambda _: None)
    cleanup: bool = False

    @property
    def lease(self) -> Lease:
        """The run's hold on its export's lease, to renew and to fence commits with."""
        return Lease(self.engine, self.export_id, self.owner, self.lease_ttl_ms)


# What may follow a run's base in the key of one of its own objects: a part number, then the
# suffix (``.json.gz``, ``.parquet.gpg``, ``.manifest.json``, ...). Anything else sharing the
# prefix (``event_exports_<end>_manual_...`` next to ``event_exports_<end>``) is another run's.
_OWN_KEY = re.compile(r"(_[0-9]+)?\.[A-Za-z0-9.]+")


def execute(ctx: RunContext, export: Export, run: Run) -> dict[str, Any]:
    """Deliver one run; returns the run's final columns. Raises on any failure.

    Every attempt is counted in ``/metrics`` (``spillway_export_runs_total`` by outcome; a lost
    lease is no outcome: another worker carries on), and a run that succeeds is logged at INFO.
    """
    try:
        result = _deliver(ctx, export, run)
    except leases.LeaseLost:
        raise
    except Exception:
        metrics.count_run(export.id, "failed")
        raise
    metrics.count_run(export.id, "succeeded", result["events"])
    log.info(
        "export %s (%s): run %s (%s) succeeded: events=%d bytes=%d files=%d duration=%.3fs",
        export.id,
        export.name,
        run.id,
        run.kind,
        result["events"],
        result["bytes"],
        len(result["files"]),
        result["duration_ms"] / 1000,
    )
    return result


def _deliver(ctx: RunContext, export: Export, run: Run) -> dict[str, Any]:
    started = time.monotonic()
    settings = run.settings
    seq_from, seq_to = _fix_range(ctx, export, run)
    names = settings.export.event_names
    received = None
    if run.kind == "backfill":
        assert run.range_start_ms is not None and run.range_end_ms is not None
        received = (run.range_start_ms, run.range_end_ms)
    files: list[dict[str, Any]] = []
    window_end = run.window_end
    base = run_base(run, seq_from, seq_to)
    # One connection for all the run's reads, so one SQLite page cache fills, not one for
    # each pooled connection the reads would otherwise rotate through.
    with ctx.engine.connect() as reads:
        files = _write_files(
            ctx, reads, settings, base, window_end, seq_from, seq_to, names, received
        )
    if files:
        ctx.hook("before_manifest")
        manifest = {
            "export_id": export.id,
            "run_kind": run.kind,
            "window_end": window_end,
            "sequence_range": {"after": seq_from, "through": seq_to},
            "format": settings.export.format,
            "compression": settings.export.compression,
            "encrypted": bool(settings.export.pgp_public_key),
            "records": sum(f["records"] for f in files),
            "files": files,
        }
        manifest_at = manifest_key(run, base)
        ctx.target.put_object(
            manifest_at,
            orjson.dumps(manifest, option=orjson.OPT_INDENT_2),
            content_type="application/json",
        )
        if ctx.cleanup:
            _remove_leftovers(ctx, base, {f["key"] for f in files} | {manifest_at})
    ctx.hook("before_commit")
    result = {
        "status": "succeeded",
        "events": sum(f["records"] for f in files),
        "bytes": sum(f["bytes"] for f in files),
        "files": [f["key"] for f in files],
        "error": None,
        "finished_at": now_ms(),
        "duration_ms": int((time.monotonic() - started) * 1000),
    }
    with write(ctx.engine) as conn:
        ctx.lease.fence(conn)
        runs.update_run(conn, run.id, result)
        if run.kind != "backfill":
            moves: dict[str, Any] = {"cursor_seq": seq_to}
            if run.kind == "scheduled":
                # Never backwards: the scheduler may already have marked later empty windows.
                moves["last_window_end"] = max(window_end, runs.last_window_end(conn, export.id))
            catalog.update_export(conn, export.id, moves)
    return result


def _fix_range(ctx: RunContext, export: Export, run: Run) -> tuple[int, int]:
    """The run's sequence range: chosen once, at its first attempt, then reused."""
    if run.seq_from is not None and run.seq_to is not None:
        return int(run.seq_from), int(run.seq_to)
    with write(ctx.engine) as conn:
        if run.kind == "backfill":
            seq_from, seq_to = 0, export.start_seq
        else:
            seq_from = export.cursor_seq
            if run.kind == "scheduled":
                seq_to = runs.high_water_before(conn, run.window_end * 1000)
            else:
                seq_to = runs.high_water_now(conn)
            seq_to = max(seq_from, seq_to)
        ctx.lease.fence(conn)
        runs.update_run(conn, run.id, {"seq_from": seq_from, "seq_to": seq_to})
    return seq_from, seq_to


class _Output:
    """Counts and hashes a file's bytes on their way to its object. Until the run knows whether
    it splits (which names the file), the bytes wait in a local spool: memory first, then a
    temporary file, so a large first file never sits in memory."""

    def __init__(self, renew: Callable[[], None]) -> None:
        self._renew = renew
        self.sha = hashlib.sha256()
        self.size = 0
        self.writer: ObjectWriter | None = None
        self._spool: tempfile.SpooledTemporaryFile[bytes] | None = None

    def write(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        self.size += len(chunk)
        if self.writer is not None:
            self.writer.write(chunk)
        else:
            if self._spool is None:  # closed by `attach` or `abort`
                self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
                    _SPOOL_IN_MEMORY, prefix="spillway-"
                )
            self._spool.write(chunk)
        self._renew()

    def attach(self, writer: ObjectWriter) -> None:
        """From now on the bytes go to ``writer``, the spooled ones first."""
        spool, self._spool, self.writer = self._spool, None, writer
        if spool is None:
            return
        with spool:
            spool.seek(0)
            while block := spool.read(_SPOOL_BLOCK):
                writer.write(block)
                self._renew()

    def abort(self) -> None:
        """Drop what was written, wherever it is."""
        if self.writer is not None:
            self.writer.abort()
        if self._spool is not None:
            self._spool.close()
            self._spool = None


@dataclass(slots=True)
class _File:
    """One file of a run while it is written."""

    number: int
    output: _Output
    encoder: FileEncoder
    key: str = ""
    records: int = 0
    planned: int = 0
    renewed: float = field(default_factory=time.monotonic)


class _Split:
    """Whether a run's files are split: the rule `runs.measure` answered before any file was
    written (payload bytes + ``_RECORD_OVERHEAD`` per record over the limit), now decided from
    the rows as they are read, so the range is scanned once. ``known`` stays None until decided:
    True as soon as the running total passes the limit, False at the end of the range, or at once
    when the store's ceiling for the range's payload bytes (None: no cheap ceiling) is under it."""

    def __init__(self, limit: int, ceiling: int | None, most_rows: int) -> None:
        self.limit = limit
        self.seen = 0
        self.known: bool | None = None
        if ceiling is not None and ceiling + most_rows * _RECORD_OVERHEAD <= limit:
            self.known = False

    def count(self, chunk: list[bytes]) -> None:
        """Add a chunk of the range's payloads to the running total."""
        if self.known is None:
            self.seen += sum(map(len, chunk)) + _RECORD_OVERHEAD * len(chunk)
            if self.seen > self.limit:
                self.known = True


def _decided(
    chunks: Iterator[list[bytes]],
    split: _Split,
    crosses: Callable[[list[bytes]], bool],
    measure: Callable[[], bool],
) -> Iterator[list[bytes]]:
    """The range's chunks, each handed on only once the first file may take it: a chunk that
    would carry the first file past its limit while the split is still undecided (possible
    where a record's frame is longer than ``_RECORD_OVERHEAD``) waits, with the chunks after it,
    until the decision. Held chunks are bounded: past ``_HOLD_BYTES`` the range is measured."""
    held: list[list[bytes]] = []
    held_bytes = 0
    for chunk in chunks:
        split.count(chunk)
        if split.known is None and (held or crosses(chunk)):
            held.append(chunk)
            held_bytes += sum(map(len, chunk))
            if held_bytes <= _HOLD_BYTES:
                continue
            split.known = measure()
        else:
            held.append(chunk)
        yield from held
        held.clear()
        held_bytes = 0
    if split.known is None:
        split.known = False  # the whole range fits: one file
    yield from held


def _write_files(
    ctx: RunContext,
    reads: Connection,
    settings: RunSettings,
    base: str,
    window_end: int,
    seq_from: int,
    seq_to: int,
    names: list[str] | None,
    received: tuple[int, int] | None,
) -> list[dict[str, Any]]:
    spec = FileSpec.of(settings.export)
    selection = Selection.of(settings.export)
    limit = settings.export.max_file_bytes
    overhead = len(RecordFrame.for_run(ctx.app_name, ctx.db_name, window_end).head) + 30
    split = _Split(limit, runs.payload_ceiling(reads), seq_to - seq_from)
    reads.rollback()
    files: list[dict[str, Any]] = []
    current: _File | None = None

    def renew() -> None:
        _renew_lease(ctx, current)

    def open_file() -> _File:
        ctx.hook("before_upload")
        output = _Output(renew)
        encoder = open_encoder(
            spec,
            output,
            app_name=ctx.app_name,
            db_name=ctx.db_name,
            window_end=window_end,
            selection=selection,
        )
        return _File(len(files) + 1, output, encoder)

    def name_file(item: _File) -> None:
        """Once the split is known: the file's key, and its object (spooled bytes first)."""
        if item.key or split.known is None:
            return
        item.key = f"{base}_{item.number}{spec.suffix}" if split.known else f"{base}{spec.suffix}"
        item.output.attach(ctx.target.open_object(item.key, content_type=_OCTET_STREAM))

    def close_file(item: _File) -> None:
        item.encoder.finish()
        name_file(item)
        assert item.output.writer is not None
        item.output.writer.commit()
        files.append(
            {
                "key": item.key,
                "records": item.records,
                "bytes": item.output.size,
                "sha256": item.output.sha.hexdigest(),
            }
        )

    def crosses(chunk: list[bytes]) -> bool:
        planned = 0 if current is None else current.planned
        return planned + sum(map(len, chunk)) + overhead * len(chunk) >= limit

    def measure() -> bool:
        count, size = runs.measure(reads, ctx.project_id, seq_from, seq_to, names, received)
        reads.rollback()
        return size + count * _RECORD_OVERHEAD > limit

    rows = runs.stream_payloads(reads, ctx.project_id, seq_from, seq_to, names, received)
    try:
        for chunk in _decided(rows, split, crosses, measure):
            start = 0
            while start < len(chunk):
                if current is None:
                    current = open_file()
                if split.known is None and current.output.size > _SPOOL_MOST:
                    split.known = measure()
                name_file(current)
                splitting = bool(split.known)
                # Fill the current file up to the limit (by planned record bytes: a rule that
                # depends only on the data, so every attempt splits at the same events).
                end = start
                planned = current.planned
                rest = chunk[start:] if start else chunk
                whole = planned + sum(map(len, rest)) + overhead * len(rest)
                if whole < limit or not splitting:  # the common case: no record-by-record walk
                    end, planned = len(chunk), whole
                first = end == start and current.records == 0
                while end < len(chunk) and (planned < limit or first):
                    first = False
                    planned += len(chunk[end]) + overhead
                    end += 1
                current.encoder.add(chunk if end - start == len(chunk) else chunk[start:end])
                current.records += end - start
                current.planned = planned
                start = end
                ctx.hook("between_parts")
                if planned >= limit and splitting:
                    close_file(current)
                    current = None
        if current is not None:
            close_file(current)
            current = None
    except BaseException:
        if current is not None:
            current.output.abort()
        raise
    return files


def _renew_lease(ctx: RunContext, current: _File | None) -> None:
    """Keep the lease while a long run writes (at most a few times per lease period)."""
    if current is None:
        return
    now = time.monotonic()
    if now - current.renewed < ctx.lease_ttl_ms / 4000:
        return
    current.renewed = now
    ctx.lease.renew()


def _remove_leftovers(ctx: RunContext, base: str, keep: set[str]) -> None:
    """Delete objects of this run's name that the manifest does not list (older attempts);
    never another run's, even where its name starts with this one's."""
    for key in ctx.target.list_objects(base):
        if key not in keep and key.startswith(base) and _OWN_KEY.fullmatch(key[len(base) :]):
            ctx.target.delete_object(key)
