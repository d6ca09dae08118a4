"""Scheduled exports end to end on a local folder: windows, layout, records, exactly once."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine

from spillway.api import models as api_models
from spillway.services import exports as export_service
from spillway.store import runs as q
from tests.integration.exporting import T0, data_files, delivered_uuids, make_setup, records

# Local destinations exist only with the operator's SPILLWAY_LOCAL_ROOT (each project in its own
# subfolder): make_setup puts its destination there.
pytestmark = pytest.mark.usefixtures("local_root")


def test_files_land_per_window_in_the_seed_layout(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    export = s.export()
    first = s.ingest(30, at=T0 + 120)  # inside the 00:00-00:15 window
    second = s.ingest(20, at=T0 + 16 * 60)  # inside 00:15-00:30
    s.clock.now = T0 + 31 * 60
    done = s.scheduler().tick()
    assert done == {"runs": 2, "failed": 0}
    files = data_files(s.root)
    names = [p.relative_to(s.root).as_posix() for p in files]
    assert names == [
        f"spillway_events/export_day=23-11-2026/event_exports_{T0 + 900}.json.gz",
        f"spillway_events/export_day=23-11-2026/event_exports_{T0 + 1800}.json.gz",
    ]
    assert [r["event"]["event_uuid"] for r in records(files[0])] == first
    assert [r["event"]["event_uuid"] for r in records(files[1])] == second
    record = records(files[0])[0]
    assert list(record) == ["app_name", "export_hour", "db_name", "event", "export_day"]
    assert record["app_name"] == "acme"
    assert record["export_hour"] == "0"
    assert record["export_day"] == "2026-11-23"
    assert set(record["event"]) >= {
        "uid",
        "event_type",
        "event_code",
        "event_name",
        "user_attributes",
        "event_source",
        "event_attributes",
        "event_uuid",
        "event_time",
        "device_attributes",
    }
    manifest = orjson.loads(
        (
            s.root / f"spillway_events/export_day=23-11-2026/event_exports_{T0 + 900}.manifest.json"
        ).read_bytes()
    )
    assert manifest["records"] == 30
    assert manifest["files"][0]["key"].endswith(f"{T0 + 900}.json.gz")
    with engine.connect() as conn:
        history = q.list_runs(conn, export.id)
    assert [r.status for r in history] == ["succeeded", "succeeded"]
    assert history[0].events == 20


def test_gzip_bytes_are_reproducible(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    s.export("one")
    s.export("two")
    s.ingest(200, at=T0 + 100)
    s.clock.now = T0 + 901
    s.scheduler().tick()
    one, two = (p for p in data_files(s.root))
    assert one.read_bytes() == two.read_bytes()
    assert gzip.decompress(one.read_bytes()).count(b"\n") == 200


def test_late_event_lands_in_the_next_run(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    s.export()
    # Events that happened inside the first window and arrived at once.
    on_time = s.ingest(5, at=T0 + 100, event_time=T0 + 90)
    s.clock.now = T0 + 901
    s.scheduler().tick()
    # An event that happened three days before the first window (a phone back online),
    # received after that window was delivered: not lost, in the next file, by ingest order.
    happened = T0 - 3 * 86_400
    late = s.ingest(1, at=T0 + 1000, event_time=happened)
    s.clock.now = T0 + 1801
    s.scheduler().tick()
    files = data_files(s.root)
    assert [p.name for p in files] == [
        f"event_exports_{T0 + 900}.json.gz",
        f"event_exports_{T0 + 1800}.json.gz",
    ]
    first = records(files[0])
    assert [r["event"]["event_uuid"] for r in first] == on_time
    assert all(T0 <= r["event"]["event_time"] < T0 + 900 for r in first)
    [record] = records(files[1])
    assert record["event"]["event_uuid"] == late[0]
    assert record["event"]["event_time"] == happened  # its own time, older than both windows
    assert record["export_day"] == "2026-11-23"  # the day it was delivered


def test_split_runs_number_every_part(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    s.export(max_file_bytes=20_000)
    uuids = s.ingest(300, at=T0 + 100)
    s.clock.now = T0 + 901
    s.scheduler().tick()
    files = data_files(s.root)
    assert len(files) > 2
    assert [p.name for p in files[:2]] == [
        f"event_exports_{T0 + 900}_1.json.gz",
        f"event_exports_{T0 + 900}_2.json.gz",
    ]
    assert delivered_uuids(s.root) == uuids


def test_events_and_attribute_selection(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    s.export(events=["Purchase", "Email Sent"], user_attributes=["city"], device_attributes=False)
    s.ingest(300, at=T0 + 100)
    s.clock.now = T0 + 901
    s.scheduler().tick()
    got = [r["event"] for p in data_files(s.root) for r in records(p)]
    assert got and {e["event_name"] for e in got} <= {"Purchase", "Email Sent"}
    assert all(set(e["user_attributes"]) == {"city"} for e in got)
    assert all(e["device_attributes"] == {} for e in got)


def test_frequency_change_loses_and_repeats_nothing(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    export = s.export(frequency="every_15_minutes")
    sent = s.ingest(10, at=T0 + 100)
    s.clock.now = T0 + 901
    s.scheduler().tick()
    export_service.update(engine, s.actor, export.id, api_models.ExportPatch(frequency="daily"))
    sent += s.ingest(10, at=T0 + 1000)
    sent += s.ingest(10, at=T0 + 40_000)
    s.clock.now = T0 + 86_400 + 5
    s.scheduler().tick()
    export_service.update(engine, s.actor, export.id, api_models.ExportPatch(frequency="weekly"))
    sent += s.ingest(10, at=T0 + 90_000)
    s.clock.now = T0 + 7 * 86_400 + 5
    s.scheduler().tick()
    assert Counter(delivered_uuids(s.root)) == Counter(sent)
    names = [p.name for p in data_files(s.root)]
    assert names == [
        f"event_exports_{T0 + 900}.json.gz",
        f"event_exports_{T0 + 86_400}.json.gz",
        f"event_exports_{T0 + 7 * 86_400}.json.gz",
    ]


def test_manual_run_delivers_everything_now(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    export = s.export()
    sent = s.ingest(7, at=T0 + 100)
    run_id = export_service.run_now(engine, s.actor, export.id, now=int((T0 + 200) * 1000))
    s.clock.now = T0 + 200
    s.scheduler().tick()
    with engine.connect() as conn:
        run = q.get_run(conn, run_id)
    assert run is not None and run.status == "succeeded"
    assert delivered_uuids(s.root) == sent
    # The window that later closes over the same time has nothing new: no duplicate.
    s.clock.now = T0 + 901
    s.scheduler().tick()
    assert delivered_uuids(s.root) == sent


def test_backfill_covers_history_in_its_own_path(engine: Engine, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    history = s.ingest(12, at=T0 - 3 * 86_400)
    export = s.export()
    fresh = s.ingest(5, at=T0 + 100)
    answer = export_service.backfill(
        engine,
        s.actor,
        export.id,
        api_models.BackfillIn(start=T0 - 10 * 86_400, end=T0 + 3600),
        retention_days=90,
        now=int(s.clock.now * 1000),
    )
    s.clock.now = T0 + 901
    s.scheduler().tick()
    backfilled = [p for p in data_files(s.root) if "_backfill/" in p.as_posix()]
    regular = [p for p in data_files(s.root) if "_backfill/" not in p.as_posix()]
    assert [r["event"]["event_uuid"] for p in backfilled for r in records(p)] == history
    assert [r["event"]["event_uuid"] for p in regular for r in records(p)] == fresh
    assert all(answer.prefix in p.relative_to(s.root).as_posix() for p in backfilled)
