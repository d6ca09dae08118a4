"""A run's files are named and cut as they were when the runner measured the range before
writing (``runs.measure``: split when the payload bytes plus 120 per record pass
``max_file_bytes``), though it now decides while it reads the range once: the same keys and the
same bytes, at the limit's edges, when a record's frame is longer than the 120 bytes the rule
counts, and after a failure between two parts."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.engine import runner
from spillway.engine.records import RecordFrame
from spillway.errors import TransientError
from spillway.services import exports as export_service
from spillway.store import runs as q
from spillway.store.schema import projects
from tests.integration.exporting import T0, Setup, data_files, delivered_uuids, make_setup

# make_setup's local destination needs the operator's SPILLWAY_LOCAL_ROOT.
pytestmark = pytest.mark.usefixtures("local_root")

WINDOW_END = T0 + 900
BASE = f"event_exports_{WINDOW_END}"


def expected_names(s: Setup, limit: int) -> list[tuple[str, int]]:
    """(file name, records) of the window's files by the rule of the runner that measured first,
    worked out here record by record from the stored payloads."""
    with s.engine.connect() as conn:
        payloads = [p for chunk in q.stream_payloads(conn, s.project_id, 0, 10**12) for p in chunk]
        name, app_id = conn.execute(
            sa.select(projects.c.name, projects.c.app_id).where(projects.c.id == s.project_id)
        ).one()
    if sum(map(len, payloads)) + 120 * len(payloads) <= limit:
        return [(f"{BASE}.json.gz", len(payloads))]
    overhead = len(RecordFrame.for_run(name, app_id, WINDOW_END).head) + 30
    parts: list[int] = []
    planned = records = 0
    for payload in payloads:
        planned += len(payload) + overhead
        records += 1
        if planned >= limit:
            parts.append(records)
            planned = records = 0
    if records:
        parts.append(records)
    return [(f"{BASE}_{n}.json.gz", count) for n, count in enumerate(parts, 1)]


def delivered(s: Setup, export: str) -> list[tuple[str, int, str]]:
    """(file name, records, sha256) of the window's files as the manifest lists them, after
    checking that the files on disk are exactly these bytes."""
    [manifest] = s.root.rglob(f"spillway_{export}/**/{BASE}.manifest.json")
    files = orjson.loads(manifest.read_bytes())["files"]
    on_disk = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in data_files(s.root)
        if f"spillway_{export}/" in p.as_posix()
    }
    assert on_disk == {Path(f["key"]).name: f["sha256"] for f in files}
    return [(Path(f["key"]).name, f["records"], f["sha256"]) for f in files]


def totals(s: Setup) -> tuple[int, int]:
    """The rule's total (payload bytes + 120 per record) and the planned total by the frame."""
    with s.engine.connect() as conn:
        count, size = q.measure(conn, s.project_id, 0, 10**12)
        name, app_id = conn.execute(
            sa.select(projects.c.name, projects.c.app_id).where(projects.c.id == s.project_id)
        ).one()
    overhead = len(RecordFrame.for_run(name, app_id, WINDOW_END).head) + 30
    return size + 120 * count, size + overhead * count


def long_name(s: Setup, length: int) -> None:
    """A project name that makes each record's frame far longer than 120 bytes."""
    with s.engine.begin() as conn:
        conn.execute(
            projects.update().where(projects.c.id == s.project_id).values(name="x" * length)
        )


def as_text(uuids: list[str] | list[bytes]) -> list[str]:
    """Event ids as the files hold them, whichever form the ingest's rows carry."""
    return sorted(str(uuid.UUID(bytes=u)) if isinstance(u, bytes) else u for u in uuids)


def set_limit(s: Setup, export_id: str, limit: int) -> None:
    """The export's max_file_bytes, set once its data is known."""
    patch = api_models.ExportPatch(max_file_bytes=limit)
    export_service.update(s.engine, s.actor, export_id, patch)


# (events, project name length or 0, limit as a function of (rule's total, planned total))
CASES = {
    "many parts": (300, 0, lambda rule, planned: 4_000),
    "at the limit: one file": (300, 0, lambda rule, planned: rule),
    "one byte over: split": (300, 0, lambda rule, planned: rule - 1),
    "long frames, under the rule: one file": (300, 200, lambda rule, planned: rule),
    "long frames, decided after the first part filled": (
        12_000,
        200,
        lambda rule, planned: rule - 1,
    ),
    "long frames, many parts": (12_000, 200, lambda rule, planned: planned // 7),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(CASES))
def test_files_are_named_and_cut_as_when_the_range_was_measured_first(
    engine: Engine, tmp_path: Path, case: str
) -> None:
    events, name_length, limit_of = CASES[case]
    s = make_setup(engine, tmp_path)
    if name_length:
        long_name(s, name_length)
    export = s.export()  # before the events: an export starts at the store's high-water mark
    uuids = s.ingest(events, at=T0 + 100)
    limit = limit_of(*totals(s))
    set_limit(s, export.id, limit)
    s.clock.now = WINDOW_END + 1
    assert s.scheduler().tick() == {"runs": 1, "failed": 0}
    got = [(name, records) for name, records, _ in delivered(s, "events")]
    assert got == expected_names(s, limit)
    assert sorted(delivered_uuids(s.root)) == as_text(uuids)  # files sort _1, _10, _2...


@pytest.mark.timeout(120)
@pytest.mark.parametrize("hold_bytes", [None, 1], ids=["held", "measured"])
def test_a_failure_between_parts_is_retried_into_the_same_keys_and_bytes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hold_bytes: int | None
) -> None:
    # Long frames: the runner cannot name the first part when it fills, and holds the rows
    # read next until it knows (or, past what it may hold, measures the range as before).
    if hold_bytes is not None:
        monkeypatch.setattr(runner, "_HOLD_BYTES", hold_bytes)
    monkeypatch.setattr(runner, "_SPOOL_IN_MEMORY", 1_024)  # the first part spools to disk
    s = make_setup(engine, tmp_path)
    long_name(s, 200)  # the longest a name may be
    exports = [s.export("clean"), s.export("failing")]
    uuids = s.ingest(12_000, at=T0 + 100)
    rule, _ = totals(s)
    for export in exports:
        set_limit(s, export.id, rule - 1)  # one byte over: split, known only at the end

    passages = {"n": 0}

    def fail_in_second_part(checkpoint: str) -> None:
        if checkpoint == "between_parts":
            passages["n"] += 1
        names = [p.name for p in data_files(s.root) if "spillway_failing/" in p.as_posix()]
        if checkpoint == "between_parts" and names and passages["n"] < 10**6:
            passages["n"] = 10**6  # once
            raise TransientError("injected failure between parts")

    s.clock.now = WINDOW_END + 1
    first = s.scheduler(hook=fail_in_second_part).tick()
    assert first["failed"] == 1
    s.clock.now += 86_400  # past any back-off
    s.scheduler().tick()
    clean, retried = delivered(s, "clean"), delivered(s, "failing")
    assert retried == clean
    assert [(name, records) for name, records, _ in clean] == expected_names(s, rule - 1)
    assert len(clean) > 1
    assert sorted(delivered_uuids(s.root)) == as_text(uuids * 2)


@pytest.mark.timeout(120)
def test_a_large_first_file_is_not_parked_on_the_servers_disk(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no cheap ceiling (PostgreSQL, or a store larger than the limit) and a project's
    limit far above the run, the first file's bytes wait in a spool only up to a bound; past it
    the range is counted once and the file goes on to its object: the same single file."""
    monkeypatch.setattr(q, "payload_ceiling", lambda conn: None)
    monkeypatch.setattr(runner, "_SPOOL_IN_MEMORY", 1_024)
    monkeypatch.setattr(runner, "_SPOOL_MOST", 16 * 1024)
    counted: list[tuple[int, int]] = []
    measure = q.measure

    def counting(*args: object, **kwargs: object) -> tuple[int, int]:
        counted.append(measure(*args, **kwargs))  # type: ignore[arg-type]
        return counted[-1]

    monkeypatch.setattr(q, "measure", counting)
    s = make_setup(engine, tmp_path)
    export = s.export()
    uuids = s.ingest(12_000, at=T0 + 100)  # read in several chunks: the bound is checked between
    set_limit(s, export.id, 1024**4)  # a project's own choice: 1 TiB per file
    s.clock.now = WINDOW_END + 1
    assert s.scheduler().tick() == {"runs": 1, "failed": 0}
    assert [(name, records) for name, records, _ in delivered(s, "events")] == [
        (f"{BASE}.json.gz", 12_000)
    ]
    assert len(counted) == 1  # counted once, when the spool reached its bound
    assert sorted(delivered_uuids(s.root)) == as_text(uuids)
