"""Named queries for on-demand jobs: the job, its pieces and an export job's snapshot rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.model import JOB_ENDED, Job, JobPiece
from spillway.store.db import now_ms
from spillway.store.schema import job_pieces, job_rows, jobs

# How many failure messages a job keeps (Pinpoint's Failures list is a sample too).
MAX_FAILURES_KEPT = 100


def insert_job(conn: Connection, values: dict[str, Any]) -> Job:
    """Store a new job (status CREATED, counters at zero) and return it."""
    now = now_ms()
    row = {
        "status": "CREATED",
        "snapshot_at": None,
        "total_pieces": 0,
        "completed_pieces": 0,
        "failed_pieces": 0,
        "total_processed": 0,
        "total_failures": 0,
        "failures": [],
        "attempts": 0,
        "next_attempt_at": None,
        "lease_owner": None,
        "lease_until": None,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "completed_at": None,
        **values,
    }
    conn.execute(jobs.insert().values(**row))
    return Job.from_row(row)


def job(conn: Connection, project_id: int, job_id: str, job_type: str | None = None) -> Job | None:
    """A job of the project (of one type when given), or None."""
    query = sa.select(jobs).where(jobs.c.id == job_id, jobs.c.project_id == project_id)
    if job_type is not None:
        query = query.where(jobs.c.type == job_type)
    row = conn.execute(query).first()
    return None if row is None else Job.from_row(row)


def job_by_id(conn: Connection, job_id: str) -> Job | None:
    """Any job by id (for the worker, which serves every project)."""
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    return None if row is None else Job.from_row(row)


def list_jobs(
    conn: Connection, project_id: int, job_type: str, limit: int, after: str | None = None
) -> list[Job]:
    """The project's jobs of a type, newest first; ``after`` is the last id of the previous
    page (a job of another project or type pages from the start)."""
    query = sa.select(jobs).where(jobs.c.project_id == project_id, jobs.c.type == job_type)
    if after is not None:
        cursor = conn.execute(
            sa.select(jobs.c.created_at).where(jobs.c.id == after, jobs.c.project_id == project_id)
        ).scalar_one_or_none()
        if cursor is not None:
            query = query.where(
                sa.or_(
                    jobs.c.created_at < cursor,
                    sa.and_(jobs.c.created_at == cursor, jobs.c.id < after),
                )
            )
    rows = conn.execute(query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit))
    return [Job.from_row(row) for row in rows]


def due_jobs(conn: Connection, now: int, limit: int = 100) -> list[Job]:
    """Unfinished jobs whose back-off has passed, oldest first."""
    rows = conn.execute(
        sa.select(jobs)
        .where(
            jobs.c.status.not_in(sorted(JOB_ENDED)),
            sa.or_(jobs.c.next_attempt_at.is_(None), jobs.c.next_attempt_at <= now),
        )
        .order_by(jobs.c.created_at, jobs.c.id)
        .limit(limit)
    )
    return [Job.from_row(row) for row in rows]


def unfinished_count(conn: Connection, project_id: int) -> int:
    """How many of the project's jobs have not ended."""
    found = conn.execute(
        sa.select(sa.func.count())
        .select_from(jobs)
        .where(jobs.c.project_id == project_id, jobs.c.status.not_in(sorted(JOB_ENDED)))
    ).scalar_one()
    return int(found)


def update_job(conn: Connection, job_id: str, values: dict[str, Any]) -> None:
    """Change a job's columns."""
    conn.execute(jobs.update().where(jobs.c.id == job_id).values(updated_at=now_ms(), **values))


def cancel(conn: Connection, job_id: str) -> bool:
    """Mark an unfinished job cancelled; False when it had ended already."""
    now = now_ms()
    result = conn.execute(
        jobs.update()
        .where(jobs.c.id == job_id, jobs.c.status.not_in(sorted(JOB_ENDED)))
        .values(status="CANCELLED", completed_at=now, updated_at=now)
    )
    return result.rowcount == 1


def status(conn: Connection, job_id: str) -> str | None:
    """The job's status now (a cancel may have come in while it ran)."""
    found = conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id)).scalar_one_or_none()
    return None if found is None else str(found)


def add_failures(conn: Connection, job: Job, messages: Sequence[str], count: int) -> None:
    """Count ``count`` failed records and keep the first messages, up to the cap."""
    current = (
        conn.execute(sa.select(jobs.c.failures).where(jobs.c.id == job.id)).scalar_one_or_none()
        or []
    )
    room = MAX_FAILURES_KEPT - len(current)
    values: dict[str, Any] = {"total_failures": jobs.c.total_failures + count}
    if room > 0 and messages:
        values["failures"] = [*current, *messages[:room]]
    update_job(conn, job.id, values)


# Pieces.


def replace_plan(conn: Connection, job_id: str) -> None:
    """Forget a plan made before (a job killed while planning plans again from scratch)."""
    conn.execute(job_rows.delete().where(job_rows.c.job_id == job_id))
    conn.execute(job_pieces.delete().where(job_pieces.c.job_id == job_id))


def insert_pieces(conn: Connection, job_id: str, pieces: Sequence[dict[str, Any]]) -> None:
    """Fix the job's pieces: each a dict with ``key`` (and ``first_row``/``last_row``; and
    ``records``, ``bytes``, ``sha256`` for a piece encoded when planned)."""
    if not pieces:
        return
    conn.execute(
        job_pieces.insert(),
        [
            {
                "job_id": job_id,
                "piece": number,
                "key": piece["key"],
                "first_row": piece.get("first_row"),
                "last_row": piece.get("last_row"),
                "status": "pending",
                "records": piece.get("records", 0),
                "failures": 0,
                "bytes": piece.get("bytes", 0),
                "sha256": piece.get("sha256"),
                "finished_at": None,
            }
            for number, piece in enumerate(pieces, start=1)
        ],
    )


def pieces(conn: Connection, job_id: str) -> list[JobPiece]:
    """The job's pieces in order."""
    rows = conn.execute(
        sa.select(job_pieces).where(job_pieces.c.job_id == job_id).order_by(job_pieces.c.piece)
    )
    return [JobPiece.from_row(row) for row in rows]


def finish_piece(
    conn: Connection,
    job_id: str,
    piece: int,
    *,
    ok: bool,
    records: int,
    failures: int,
    size: int,
    sha256: str | None,
) -> None:
    """Record a piece as done (or failed) and add it to the job's counters, in the caller's
    transaction; a piece already finished is left alone (counted once)."""
    result = conn.execute(
        job_pieces.update()
        .where(
            job_pieces.c.job_id == job_id,
            job_pieces.c.piece == piece,
            job_pieces.c.status == "pending",
        )
        .values(
            status="done" if ok else "failed",
            records=records,
            failures=failures,
            bytes=size,
            sha256=sha256,
            finished_at=now_ms(),
        )
    )
    if result.rowcount != 1:
        return
    done = jobs.c.completed_pieces + 1 if ok else jobs.c.completed_pieces
    failed = jobs.c.failed_pieces if ok else jobs.c.failed_pieces + 1
    update_job(
        conn,
        job_id,
        {
            "completed_pieces": done,
            "failed_pieces": failed,
            "total_processed": jobs.c.total_processed + records,
        },
    )


# An export job's snapshot rows. Records are kept in blocks: one row per ``insert_rows`` call,
# numbered by its first record, its body the records joined by newlines (a record is one JSON
# document on one line, as orjson writes it). A row per record cost more to insert and read
# back than building the record did.


def insert_rows(conn: Connection, job_id: str, first_row: int, bodies: Sequence[bytes]) -> None:
    """Add records to the snapshot, numbered from ``first_row``, as one block."""
    if not bodies:
        return
    block = b"\n".join(bodies)
    if block.count(b"\n") != len(bodies) - 1:
        raise ValueError("a snapshot record must not contain a newline")
    conn.execute(job_rows.insert(), [{"job_id": job_id, "row": first_row, "body": block}])


def rows(conn: Connection, job_id: str, first: int, last: int) -> Iterator[bytes]:
    """The snapshot's records ``first..last`` in order."""
    # The block holding ``first`` starts at or before it: the greatest block start <= first.
    start = (
        sa.select(sa.func.max(job_rows.c.row))
        .where(job_rows.c.job_id == job_id, job_rows.c.row <= first)
        .scalar_subquery()
    )
    result = conn.execution_options(yield_per=4).execute(
        sa.select(job_rows.c.row, job_rows.c.body)
        .where(
            job_rows.c.job_id == job_id,
            job_rows.c.row >= sa.func.coalesce(start, first),
            job_rows.c.row <= last,
        )
        .order_by(job_rows.c.row)
    )
    for number, body in result:
        records = bytes(body).split(b"\n")
        yield from records[max(first - number, 0) : last - number + 1]
    # A piece's blocks are read once: free the page cache they filled (64 MiB a connection)
    # instead of keeping it beside the next piece's records.
    release_cache(conn)


def release_cache(conn: Connection) -> None:
    """Give back the memory of SQLite's page cache on this connection (pages a pass over a
    snapshot or a table will not read again)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA shrink_memory")


# An export of every endpoint of a project, on SQLite: the database copies each endpoint's stored
# line parts into the snapshot, a block at a time, with no row passing through Python. A block
# is the endpoints after ``:after`` in id order, up to ``:block`` of them; ``group_concat`` joins
# them in the order the ordered subquery hands them over (a subquery with ORDER BY is never
# flattened into an aggregate), and ``plan`` checks the result against the Python path in tests.
_BLOCK_BOUNDS = """
SELECT count(*), max(endpoint_id) FROM (
    SELECT endpoint_id FROM endpoints
    WHERE project_id = :project_id AND endpoint_id > :after
    ORDER BY endpoint_id LIMIT :block
)
"""
_BLOCK_COPY = """
INSERT INTO job_rows (job_id, "row", body)
SELECT :job_id, :first_row, CAST(group_concat(line, char(10)) AS BLOB) FROM (
    SELECT pinpoint_head || :middle || pinpoint_tail AS line FROM endpoints
    WHERE project_id = :project_id AND endpoint_id > :after AND endpoint_id <= :last
    ORDER BY endpoint_id LIMIT :block
)
"""


def copies_endpoint_lines(conn: Connection) -> bool:
    """Whether ``copy_endpoint_block`` serves this database (SQLite); elsewhere the snapshot
    is written from Python (the same bytes)."""
    return conn.dialect.name == "sqlite"


def copy_endpoint_block(
    conn: Connection,
    job_id: str,
    project_id: int,
    *,
    first_row: int,
    after: str,
    middle: bytes,
    block: int,
) -> tuple[int, str]:
    """Copy the next block of the project's endpoint lines (``head + middle + tail``, every
    endpoint's parts already stored) into the snapshot as records from ``first_row``; how many
    were copied and the last endpoint id (``after`` again when none were)."""
    params: dict[str, Any] = {"project_id": project_id, "after": after, "block": block}
    count, last = conn.execute(sa.text(_BLOCK_BOUNDS), params).one()
    if not count:
        return 0, after
    params |= {"job_id": job_id, "first_row": first_row, "middle": middle, "last": last}
    conn.execute(sa.text(_BLOCK_COPY), params)
    return int(count), str(last)


# The same lines, read a chunk at a time already joined (one newline after each line), for an
# export job that encodes its pieces while it plans.
_CHUNK = """
SELECT count(*), max(endpoint_id), CAST(group_concat(line, char(10)) || char(10) AS BLOB) FROM (
    SELECT endpoint_id, pinpoint_head || :middle || pinpoint_tail AS line FROM endpoints
    WHERE project_id = :project_id AND endpoint_id > :after
    ORDER BY endpoint_id LIMIT :limit
)
"""


def endpoint_line_chunk(
    conn: Connection, project_id: int, *, after: str, middle: bytes, limit: int
) -> tuple[int, str, bytes]:
    """The next (up to) ``limit`` endpoint lines after ``after`` in id order, as one JSON lines
    text: how many, the last endpoint id, the text (SQLite, every line's parts stored)."""
    params = {"project_id": project_id, "after": after, "middle": middle, "limit": limit}
    count, last, text = conn.execute(sa.text(_CHUNK), params).one()
    return (int(count), str(last), bytes(text)) if count else (0, after, b"")


def insert_block(conn: Connection, job_id: str, row: int, data: bytes) -> None:
    """Keep a block of a piece encoded while planning (its rows are numbered within the piece's
    record range, in order)."""
    conn.execute(job_rows.insert(), [{"job_id": job_id, "row": row, "body": data}])


def blocks(conn: Connection, job_id: str, first: int, last: int) -> Iterator[bytes]:
    """The blocks kept with ``insert_block`` numbered ``first..last``, in order."""
    result = conn.execution_options(yield_per=4).execute(
        sa.select(job_rows.c.body)
        .where(job_rows.c.job_id == job_id, job_rows.c.row >= first, job_rows.c.row <= last)
        .order_by(job_rows.c.row)
    )
    for (body,) in result:
        yield bytes(body)
    release_cache(conn)


def drop_rows(conn: Connection, job_id: str) -> None:
    """The snapshot is not needed once the job has ended."""
    conn.execute(job_rows.delete().where(job_rows.c.job_id == job_id))
