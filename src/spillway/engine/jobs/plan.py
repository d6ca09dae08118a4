"""What an export job writes, read once when the job is planned (its snapshot) and numbered in
output order: every piece is then a fixed range of those records, so a piece written again after
a crash has the same bytes, and an endpoint changed while the job runs appears once, as it was
when the job was planned.

An export of every endpoint copies the line each endpoint was stored with (``shapes.
pinpoint_parts``, kept by the write path) instead of building JSON: as jsonl.gz on SQLite its
pieces are encoded while planning and the compressed bytes are the snapshot
(``encode_endpoints``); in another format on SQLite the database copies the lines into the
snapshot (``snapshot_endpoints``); otherwise, and with a filter, the lines are read from Python
(``endpoint_records``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Engine

from spillway.engine.jobs import pieces
from spillway.engine.jobs.pieces import Sink, Written
from spillway.engine.jobs.shapes import application_id_member, iso_time, pinpoint_parts
from spillway.model import Endpoint, Job
from spillway.store import endpoints as endpoint_store
from spillway.store import jobs as job_store
from spillway.store import reports
from spillway.store.db import write
from spillway.store.projects import project_by_id

Matches = Callable[[Endpoint], bool]
Row = tuple[Any, ...]
# Records copied into the snapshot per statement, and statements per write transaction (each
# transaction renews the job's lease and holds SQLite's write lock for a moment only).
BLOCK = 5_000
BLOCKS_PER_TRANSACTION = 20

# Positions in a row of ``reports.endpoint_pages``.
_NAMES = reports.ENDPOINT_COLUMNS
(_ID, _USER, _CHANNEL, _ADDRESS, _STATUS, _OPT_OUT, _EFFECTIVE, _CREATED, _UPDATED) = range(9)
_JSON = range(9, 14)
(_HEAD, _TAIL) = (14, 15)
_loads = orjson.loads


def _endpoint(row: Row) -> Endpoint:
    """A row of ``reports.endpoint_pages`` as the endpoint it stores (what filters look at)."""
    return Endpoint(
        endpoint_id=row[_ID],
        user_id=row[_USER],
        channel_type=row[_CHANNEL],
        address=row[_ADDRESS],
        endpoint_status=row[_STATUS],
        opt_out=row[_OPT_OUT],
        effective_date=row[_EFFECTIVE],
        created_at=int(row[_CREATED]),
        updated_at=int(row[_UPDATED]),
        **{_NAMES[i]: _loads(row[i]) or {} for i in _JSON},
    )


def _selected(
    conn: Connection, project_id: int, matches: Matches | None
) -> Iterator[list[tuple[Row, Endpoint | None]]]:
    """Pages of the endpoints the filter selects, each row with its endpoint when a filter
    needed one (None without a filter: the fast path builds nothing it does not write)."""
    for page in reports.endpoint_pages(conn, project_id):
        if matches is None:
            yield [(row, None) for row in page]
            continue
        endpoints = ((row, _endpoint(row)) for row in page)
        yield [(row, endpoint) for row, endpoint in endpoints if matches(endpoint)]


def _endpoints(conn: Connection, project_id: int, matches: Matches | None) -> Iterator[Endpoint]:
    """The project's endpoints the filter selects, in endpoint id order."""
    for page in _selected(conn, project_id, matches):
        for row, endpoint in page:
            yield endpoint if endpoint is not None else _endpoint(row)


def _line(row: Row, endpoint: Endpoint | None, middle: bytes) -> bytes:
    """The endpoint's export line: its stored parts around ApplicationId, or built now when it
    was stored without them (an older version wrote it)."""
    if row[_HEAD] is not None:
        return bytes(row[_HEAD]) + middle + bytes(row[_TAIL])
    head, tail = pinpoint_parts(endpoint or _endpoint(row))
    return head + middle + tail


def endpoint_records(
    conn: Connection, project_id: int, application_id: str, matches: Matches | None
) -> Iterator[bytes]:
    """One Pinpoint endpoint definition per record (``shapes.to_pinpoint``, as JSON)."""
    middle = application_id_member(application_id)
    for page in _selected(conn, project_id, matches):
        yield from [_line(row, endpoint, middle) for row, endpoint in page]


def snapshot_endpoints(engine: Engine, job: Job, renew: Callable[[Connection], None]) -> int | None:
    """Snapshot every endpoint of the job's project in the database itself (an ``endpoints``
    export without a filter, on SQLite): the stored line parts are copied into the job's
    snapshot rows, the same records ``endpoint_records`` gives. How many were copied; None
    when this job or database is not served this way (the caller writes the records).

    One write transaction per ``BLOCKS_PER_TRANSACTION`` blocks, each renewing the lease:
    paging by endpoint id, an endpoint changed meanwhile is copied once, as it was when its
    block was copied."""
    if job.what != "endpoints" or job.definition.get("filter"):
        return None
    with engine.connect() as conn:
        if not job_store.copies_endpoint_lines(conn):
            return None
        project = project_by_id(conn, job.project_id)
    assert project is not None
    middle = application_id_member(project.app_id)
    with write(engine) as conn:
        renew(conn)
        endpoint_store.fill_missing_lines(conn, job.project_id, pinpoint_parts)
    count, after, done = 0, "", False
    while not done:
        with write(engine) as conn:
            renew(conn)
            for _ in range(BLOCKS_PER_TRANSACTION):
                copied, after = job_store.copy_endpoint_block(
                    conn, job.id, job.project_id, first_row=count + 1, after=after,
                    middle=middle, block=BLOCK,
                )  # fmt: skip
                count += copied
                if copied < BLOCK:
                    done = True
                    break
            # The pages read will not be read again: free this connection's page cache.
            job_store.release_cache(conn)
    return count


@dataclass(frozen=True, slots=True)
class EncodedPiece:
    """A piece encoded while the job was planned: its record range and what it holds."""

    first_row: int
    last_row: int
    written: Written

    def planned(self) -> dict[str, Any]:
        """The piece as ``job_store.insert_pieces`` takes it (a piece with its sha256 set was
        encoded when planned: ``job_store.blocks`` holds its bytes)."""
        return {
            "first_row": self.first_row,
            "last_row": self.last_row,
            "records": self.written.records,
            "bytes": self.written.size,
            "sha256": self.written.sha256,
        }


# Encoded bytes kept per snapshot row (and per write transaction) while planning.
ENCODED_BLOCK = 8 * 1024 * 1024


def encode_endpoints(
    engine: Engine, job: Job, per_piece: int, renew: Callable[[Connection], None]
) -> list[EncodedPiece] | None:
    """Plan an export of every endpoint (jsonl, gzip, no filter, on SQLite) by encoding its
    pieces now: the database joins each chunk of stored lines, the chunk is compressed, and
    the compressed bytes are the snapshot (a tenth of the records' size, written once, read
    once). The same chunks of ``pieces.CHUNK`` records as ``pieces.write_piece`` compresses,
    so the same bytes. None when this job or database is not served this way."""
    definition = job.definition
    if job.what != "endpoints" or definition.get("filter"):
        return None
    if (definition.get("format", "jsonl"), definition.get("compression", "gzip")) != (
        "jsonl",
        "gzip",
    ):
        return None
    with engine.connect() as conn:
        if not job_store.copies_endpoint_lines(conn):
            return None
        project = project_by_id(conn, job.project_id)
    assert project is not None
    with write(engine) as conn:
        renew(conn)
        endpoint_store.fill_missing_lines(conn, job.project_id, pinpoint_parts)
    middle = application_id_member(project.app_id)
    encoded: list[EncodedPiece] = []
    after = ""
    # One read transaction for every piece: a consistent view of the endpoints.
    with engine.connect() as reading:
        while True:
            first = len(encoded) * per_piece + 1
            # An empty job still writes one (empty) piece; otherwise there is no empty piece.
            piece, after = _encode_piece(
                engine, job, reading, first, per_piece, after, middle, renew, not encoded
            )
            if piece is None:
                break
            encoded.append(piece)
            if piece.written.records < per_piece:
                break
        job_store.release_cache(reading)
    return encoded


def _encode_piece(
    engine: Engine,
    job: Job,
    reading: Connection,
    first: int,
    per_piece: int,
    after: str,
    middle: bytes,
    renew: Callable[[Connection], None],
    empty_ok: bool,
) -> tuple[EncodedPiece | None, str]:
    """Encode the piece whose records start at ``first``; it (None: no records, and
    ``empty_ok`` false) and the last endpoint id read."""
    sink = Sink("gzip")
    pending: list[bytes] = []
    # The piece's blocks are numbered from its first record on, within its record range: a
    # block but the last holds at least ENCODED_BLOCK bytes, far more than a record
    # compresses to, so a piece has fewer blocks than records (or one, when empty).
    row = first

    def keep(data: bytes, force: bool = False) -> None:
        nonlocal row
        if data:
            pending.append(data)
        if pending and (force or sum(map(len, pending)) >= ENCODED_BLOCK):
            if row > max(first, first + sink.records - 1):
                raise RuntimeError(f"piece from record {first}: more blocks than records")
            with write(engine) as conn:
                renew(conn)
                job_store.insert_block(conn, job.id, row, b"".join(pending))
            row += 1
            pending.clear()

    while sink.records < per_piece:
        limit = min(pieces.CHUNK, per_piece - sink.records)
        count, after, text = job_store.endpoint_line_chunk(
            reading, job.project_id, after=after, middle=middle, limit=limit
        )
        if count == 0:
            break
        keep(sink.add(count, text))
        if count < limit:
            break
    if sink.records == 0 and not empty_ok:
        return None, after
    keep(sink.finish(), force=True)
    last = first + sink.records - 1
    return EncodedPiece(first, last, sink.written()), after


def user_records(conn: Connection, project_id: int, matches: Matches | None) -> Iterator[bytes]:
    """One row per user of the selected endpoints: their endpoint ids, user attributes merged
    over their endpoints (the most recently updated endpoint wins a clash), and their kept
    events: first and last event time and count. Users come from endpoints (``user_id``); events
    of a uid no endpoint names are not a user here."""
    users: dict[str, list[Endpoint]] = {}
    for endpoint in _endpoints(conn, project_id, matches):
        if endpoint.user_id:
            users.setdefault(endpoint.user_id, []).append(endpoint)
    stats = {
        uid: (first, last, count)
        for uid, first, last, count in reports.user_event_stats(conn, project_id)
        if uid in users
    }
    for user_id in sorted(users):
        owned = sorted(users[user_id], key=lambda e: (e.updated_at or 0, e.endpoint_id))
        merged: dict[str, Any] = {}
        for endpoint in owned:
            merged.update(endpoint.user_attributes or {})
        first, last, count = stats.get(user_id, (None, None, 0))
        yield orjson.dumps(
            {
                "user_id": user_id,
                "endpoints": sorted(e.endpoint_id for e in owned),
                "user_attributes": merged,
                "first_event_at": iso_time(first),
                "last_event_at": iso_time(last),
                "event_count": count,
            }
        )


def event_count_records(
    conn: Connection, project_id: int, start_ms: int, end_ms: int
) -> Iterator[bytes]:
    """Events and distinct users per UTC day and event name, for event times in the range."""
    for day, name, count, users in reports.daily_event_counts(conn, project_id, start_ms, end_ms):
        date = dt.datetime.fromtimestamp(day * 86_400, tz=dt.UTC).strftime("%Y-%m-%d")
        yield orjson.dumps({"day": date, "event_name": name, "events": count, "users": users})
