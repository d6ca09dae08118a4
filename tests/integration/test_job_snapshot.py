"""An export job's snapshot of every endpoint, copied by SQLite from the lines stored with the
endpoints, holds exactly the bytes the Python path builds (``shapes.to_pinpoint`` as orjson
writes it), in the same order, also for endpoints stored without their line (an older version
wrote them)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from sqlalchemy.engine import Connection, Engine

from spillway.api.models import EndpointIn
from spillway.engine.jobs import pieces as piece_io
from spillway.engine.jobs import plan
from spillway.engine.jobs.shapes import to_pinpoint
from spillway.model import Job
from spillway.services import profiles
from spillway.services.projects import create_project
from spillway.store import endpoints as endpoint_store
from spillway.store import jobs as job_store
from spillway.store.db import create_engine, migrate, write
from spillway.store.schema import endpoints


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path}/db")
    migrate(engine)
    yield engine
    engine.dispose()


def item(i: int) -> EndpointIn:
    fields = {
        "channel_type": "EMAIL" if i % 2 else "GCM",
        "address": f"café{i}@example.com" if i % 3 == 0 else f"token-{i}",
        "user_id": None if i % 7 == 0 else f"ü-{i % 5}",
        "attributes": {"plan": ["pro"], "ünïcode": ["ナ", "\u2028"]},
        "metrics": {"score": i * 1.5, "big": 1e20},
        "demographic": {"timezone": "Europe/Paris", "platform": "ios"},
        "location": {"latitude": -8.0476, "country": "BR"},
        "effective_date": "2026-11-01T00:00:00Z" if i % 2 else None,
    }
    return EndpointIn.model_validate(fields)


def export_job(project_id: int) -> Job:
    """An export job of every endpoint, as the runner would hold it."""
    return Job.from_row(
        {
            "id": "j1",
            "project_id": project_id,
            "type": "export",
            "what": "endpoints",
            "status": "CREATED",
            "definition": {},
            **dict.fromkeys(("snapshot_at", "next_attempt_at", "lease_owner", "lease_until")),
            **dict.fromkeys(("started_at", "completed_at")),
            **dict.fromkeys(("total_pieces", "completed_pieces", "failed_pieces"), 0),
            **dict.fromkeys(("total_processed", "total_failures", "attempts"), 0),
            "failures": [],
            "created_at": 0,
            "updated_at": 0,
        }
    )


def snapshot(engine: Engine, project_id: int) -> list[bytes]:
    job = export_job(project_id)

    def renew(_conn: Connection) -> None:
        return None

    count = plan.snapshot_endpoints(engine, job, renew)
    with engine.connect() as conn:
        found = list(job_store.rows(conn, job.id, 1, 10**9))
    assert count == len(found)
    return found


def test_the_copied_snapshot_has_the_python_paths_bytes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = create_project(engine, "p")
    ids = [f"ep-{i:05d}" for i in range(1, 23)]
    profiles.upsert(engine, project.id, [(e, item(i)) for i, e in enumerate(ids)])
    profiles.upsert_many(engine, project.id, [(ids[3], EndpointIn(user_id="changed"))])
    with write(engine) as conn:  # as an older version left them: no line stored
        conn.execute(
            endpoints.update()
            .where(endpoints.c.endpoint_id.in_(ids[5:9]))
            .values(pinpoint_head=None, pinpoint_tail=None)
        )
    # Small blocks and transactions, so that blocks and their boundaries are exercised.
    monkeypatch.setattr(plan, "BLOCK", 4)
    monkeypatch.setattr(plan, "BLOCKS_PER_TRANSACTION", 2)
    copied = snapshot(engine, project.id)
    with engine.connect() as conn:
        stored = endpoint_store.list_endpoints(conn, project.id, limit=1000)
        built = list(plan.endpoint_records(conn, project.id, project.app_id, None))
    expected = [orjson.dumps(to_pinpoint(e, project.app_id)) for e in stored]
    assert len(expected) == len(ids)
    assert copied == expected
    assert built == expected
    assert orjson.loads(copied[3])["User"]["UserId"] == "changed"


class Target:
    """An object store that keeps what is written, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    @contextlib.contextmanager
    def open_object(self, key: str, content_type: str) -> Iterator[io.BytesIO]:
        out = io.BytesIO()
        yield out
        self.objects[key] = out.getvalue()


@pytest.mark.parametrize(("endpoints", "per_piece"), [(22, 5), (20, 5), (0, 5), (7, 100)])
def test_pieces_encoded_while_planning_have_the_bytes_of_pieces_encoded_later(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, endpoints: int, per_piece: int
) -> None:
    project = create_project(engine, "p")
    ids = [f"ep-{i:05d}" for i in range(endpoints)]
    if ids:
        profiles.upsert(engine, project.id, [(e, item(i)) for i, e in enumerate(ids)])
    # Chunks that do not divide a piece, and a block per chunk.
    monkeypatch.setattr(piece_io, "CHUNK", 3)
    monkeypatch.setattr(plan, "ENCODED_BLOCK", 1)
    job = export_job(project.id)
    encoded = plan.encode_endpoints(engine, job, per_piece, lambda _conn: None)
    assert encoded is not None
    with engine.connect() as conn:
        lines = list(plan.endpoint_records(conn, project.id, project.app_id, None))
    expected_pieces = max(1, -(-len(lines) // per_piece))  # an empty job: one empty piece
    assert len(encoded) == expected_pieces
    target = Target()
    for n, piece in enumerate(encoded):
        records = lines[n * per_piece : (n + 1) * per_piece]
        later = piece_io.write_piece(cast(Any, target), f"later-{n}", records, "jsonl", "gzip")
        assert piece.written == later
        assert (piece.first_row, piece.last_row) == (
            n * per_piece + 1,
            n * per_piece + len(records),
        )
        with engine.connect() as conn:
            kept = job_store.blocks(
                conn, job.id, piece.first_row, max(piece.first_row, piece.last_row)
            )
            uploaded = piece_io.write_piece(
                cast(Any, target), f"kept-{n}", kept, "jsonl", "gzip", piece.written
            )
        assert uploaded == later
        assert target.objects[f"kept-{n}"] == target.objects[f"later-{n}"]
