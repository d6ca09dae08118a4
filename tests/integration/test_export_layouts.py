"""Hourly windows, the hive layout, and the DDL that query engines read the files with.

The hive layout's files are read by DuckDB into typed ``dt`` and ``hour`` partitions; the
statement ``GET /api/v1/exports/{id}/ddl?engine=duckdb`` answers is run as given against the
files and counts every event delivered (windows, a run now and a backfill alike).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from spillway.api import models as api_models
from spillway.api.app import create_app
from spillway.engine import ddl
from spillway.engine.encode import CSV_COLUMNS
from spillway.engine.windows import Frequency, due_ends, next_end
from spillway.model import ExportSettings
from spillway.secrets import SecretBox
from spillway.services import exports as export_service
from spillway.services.projects import Scope, create_key
from spillway.settings import Settings
from tests.integration.exporting import T0, Setup, data_files, delivered_uuids, make_setup

pytestmark = pytest.mark.usefixtures("local_root")
HOUR = 3_600


# --- hourly windows ----------------------------------------------------------------------


def test_hourly_windows_end_on_the_hour() -> None:
    hourly = Frequency("hourly")
    assert next_end(hourly, T0) == T0 + HOUR
    assert next_end(hourly, T0 + 1) == T0 + HOUR
    assert next_end(hourly, T0 + HOUR - 1) == T0 + HOUR
    assert due_ends(hourly, T0 + 900, T0 + 3 * HOUR + 5) == [
        T0 + HOUR,
        T0 + 2 * HOUR,
        T0 + 3 * HOUR,
    ]
    assert all(end % HOUR == 0 for end in due_ends(hourly, T0 + 1234, T0 + 50 * HOUR))


def test_hourly_export_writes_one_file_per_hour(engine: Any, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    s.export(frequency="hourly")
    first = s.ingest(5, at=T0 + 120)
    second = s.ingest(4, at=T0 + HOUR + 10)
    s.clock.now = T0 + 2 * HOUR + 5
    assert s.scheduler().tick() == {"runs": 2, "failed": 0}
    names = [p.relative_to(s.root).as_posix() for p in data_files(s.root)]
    assert names == [
        f"spillway_events/export_day=23-11-2026/event_exports_{T0 + HOUR}.json.gz",
        f"spillway_events/export_day=23-11-2026/event_exports_{T0 + 2 * HOUR}.json.gz",
    ]
    assert delivered_uuids(s.root) == first + second


def test_frequency_change_to_and_from_hourly_loses_and_repeats_nothing(
    engine: Any, tmp_path: Path
) -> None:
    s = make_setup(engine, tmp_path)
    export = s.export(frequency="every_15_minutes")
    sent = s.ingest(10, at=T0 + 100)
    s.clock.now = T0 + 901
    s.scheduler().tick()
    export_service.update(engine, s.actor, export.id, api_models.ExportPatch(frequency="hourly"))
    sent += s.ingest(10, at=T0 + 1000)  # 00:16, after the last 15-minute window
    sent += s.ingest(10, at=T0 + HOUR + 100)
    s.clock.now = T0 + 2 * HOUR + 5
    s.scheduler().tick()
    export_service.update(engine, s.actor, export.id, api_models.ExportPatch(frequency="daily"))
    sent += s.ingest(10, at=T0 + 2 * HOUR + 100)
    s.clock.now = T0 + 86_400 + 5
    s.scheduler().tick()
    export_service.update(engine, s.actor, export.id, api_models.ExportPatch(frequency="hourly"))
    sent += s.ingest(10, at=T0 + 86_400 + 200)
    s.clock.now = T0 + 86_400 + HOUR + 5
    s.scheduler().tick()
    assert Counter(delivered_uuids(s.root)) == Counter(sent)
    assert [p.name for p in data_files(s.root)] == [
        f"event_exports_{T0 + 900}.json.gz",
        f"event_exports_{T0 + HOUR}.json.gz",
        f"event_exports_{T0 + 2 * HOUR}.json.gz",
        f"event_exports_{T0 + 86_400}.json.gz",
        f"event_exports_{T0 + 86_400 + HOUR}.json.gz",
    ]


# --- the hive layout ---------------------------------------------------------------------


def test_hive_layout_keys_and_typed_partitions(engine: Any, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    history = s.ingest(3, at=T0 - 86_400)
    export = s.export(frequency="hourly", layout="hive")
    first = s.ingest(6, at=T0 + 120)
    second = s.ingest(4, at=T0 + HOUR + 10)
    export_service.backfill(
        engine,
        s.actor,
        export.id,
        api_models.BackfillIn(start=T0 - 2 * 86_400, end=T0),
        retention_days=90,
        now=int(s.clock.now * 1000),
    )
    s.clock.now = T0 + 2 * HOUR + 5
    s.scheduler().tick()
    keys = sorted(p.relative_to(s.root).as_posix() for p in s.root.rglob("*") if p.is_file())
    data = [k for k in keys if "/dt=" in k and "/_" not in k]
    assert data[1:] == [
        f"spillway_events/dt=2026-11-23/hour=01/event_exports_{T0 + HOUR}.json.gz",
        f"spillway_events/dt=2026-11-23/hour=02/event_exports_{T0 + 2 * HOUR}.json.gz",
    ]
    assert data[0].startswith(f"spillway_events/dt=2026-11-23/hour=00/event_exports_{T0}_backfill_")
    # Manifests are hidden (a leading underscore) beside the files they list.
    assert f"spillway_events/dt=2026-11-23/hour=01/_event_exports_{T0 + HOUR}.manifest.json" in keys
    assert data == sorted(data)  # zero-padded: keys sort by time

    rows = duckdb.sql(
        f"""select dt, hour, event.event_uuid::varchar as id
            from read_json_auto('{s.root}/spillway_events/*/*/event_exports_*.json.gz',
                                hive_partitioning = true,
                                hive_types = {{'hour': 'INTEGER'}})"""
    )
    assert rows is not None
    # dt is detected as a DATE; hour=01 stays text unless typed (DuckDB keeps zero-padded
    # values as they are), hence hive_types, as the DDL endpoint's statement has it.
    assert [str(t) for t in rows.types[:2]] == ["DATE", "INTEGER"]
    got = rows.fetchall()
    assert Counter(r[2] for r in got) == Counter(history + first + second)
    assert {(r[0], r[1]) for r in got if r[2] in first} == {(dt.date(2026, 11, 23), 1)}
    assert {(r[0], r[1]) for r in got if r[2] in second} == {(dt.date(2026, 11, 23), 2)}


def test_layout_change_applies_from_the_next_window(engine: Any, tmp_path: Path) -> None:
    s = make_setup(engine, tmp_path)
    export = s.export(frequency="hourly")
    sent = s.ingest(5, at=T0 + 100)
    s.clock.now = T0 + HOUR + 5
    s.scheduler().tick()
    before = {p: p.read_bytes() for p in s.root.rglob("*") if p.is_file()}
    changed = export_service.update(
        engine, s.actor, export.id, api_models.ExportPatch(layout="hive")
    )
    assert changed.settings.layout == "hive"
    sent += s.ingest(5, at=T0 + HOUR + 100)
    s.clock.now = T0 + 2 * HOUR + 5
    s.scheduler().tick()
    assert {p: p.read_bytes() for p in before} == before  # files written stay as they were
    assert [p.relative_to(s.root).as_posix() for p in data_files(s.root)] == [
        f"spillway_events/dt=2026-11-23/hour=02/event_exports_{T0 + 2 * HOUR}.json.gz",
        f"spillway_events/export_day=23-11-2026/event_exports_{T0 + HOUR}.json.gz",
    ]
    assert Counter(delivered_uuids(s.root)) == Counter(sent)


# --- the DDL endpoint --------------------------------------------------------------------


@dataclass
class World:
    s: Setup
    client: TestClient
    headers: dict[str, str]


@pytest.fixture
def world(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The API and a scheduler on one database, both on the setup's hand-moved clock."""
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url)
    app = create_app(settings)
    engine = app.state.context.engine
    s = make_setup(engine, tmp_path)
    monkeypatch.setattr(export_service, "now_ms", lambda: int(s.clock.now * 1000))
    token = create_key(engine, SecretBox(settings.service_key()), "acme", Scope.WRITE).token
    try:
        with TestClient(app) as client:
            yield World(s, client, {"Authorization": f"Bearer {token}"})
    finally:
        engine.dispose()


def _create(w: World, **body: Any) -> dict[str, Any]:
    body = {"name": "events", "destination_id": w.s.destination.id, **body}
    response = w.client.post("/api/v1/exports", json=body, headers=w.headers)
    assert response.status_code == 201, response.text
    shown: dict[str, Any] = response.json()
    return shown


def _ddl(w: World, export_id: str, engine: str) -> Any:
    return w.client.get(f"/api/v1/exports/{export_id}/ddl?engine={engine}", headers=w.headers)


@pytest.mark.parametrize(
    ("file_format", "compression", "layout"),
    [
        ("jsonl", "gzip", "hive"),
        ("jsonl", "none", "hive"),
        ("csv", "none", "hive"),
        ("parquet", "zstd", "hive"),
        ("jsonl", "none", "moengage"),
        ("csv", "zstd", "moengage"),
    ],
)
def test_duckdb_statement_counts_every_exported_event(
    world: World, file_format: str, compression: str, layout: str
) -> None:
    s = world.s
    history = s.ingest(4, at=T0 - 86_400)
    shown = _create(
        world, frequency="hourly", format=file_format, compression=compression, layout=layout
    )
    assert shown["layout"] == layout
    hive = layout == "hive"
    assert ("/dt=<YYYY-MM-DD>/hour=<HH>/" in shown["path"]) is hive
    assert ("/dt=2026-11-23/hour=01/" in shown["next_file"]) is hive
    sent = s.ingest(7, at=T0 + 120) + s.ingest(5, at=T0 + HOUR + 10)
    run_now = world.client.post(f"/api/v1/exports/{shown['id']}/run", headers=world.headers)
    assert run_now.status_code == 202
    sent += s.ingest(3, at=T0 + HOUR + 20)
    s.clock.now = T0 + 2 * HOUR + 5
    backfill = world.client.post(
        f"/api/v1/exports/{shown['id']}/backfill",
        json={"start": T0 - 2 * 86_400, "end": T0},
        headers=world.headers,
    )
    assert backfill.status_code == 202, backfill.text
    s.scheduler().tick()

    answer = _ddl(world, shown["id"], "duckdb")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["location"] == (s.root / "spillway_events").as_posix()
    con = duckdb.connect()
    con.execute(body["statement"])
    # Backfills are in the table's own tree in the hive layout; the moengage layout keeps
    # them apart (under <prefix>_backfill/), outside the view.
    expected = sent + history if hive else sent
    (count,) = con.execute("select count(*) from events").fetchone() or (0,)
    assert count == len(expected)
    ids = [r[0] for r in con.execute("select event_uuid from events").fetchall()]
    assert Counter(ids) == Counter(expected)
    described = {r[0]: r[1] for r in con.execute("describe events").fetchall()}
    assert list(described)[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    assert described["event_time"] == "DOUBLE"
    if hive:
        assert (described["dt"], described["hour"]) == ("DATE", "INTEGER")
        hours = con.execute(
            "select hour, count(*) from events where dt = DATE '2026-11-23' group by 1"
        )
        assert sum(dict(hours.fetchall()).values()) == len(expected)
    else:
        assert "dt" not in described
        assert con.execute("select distinct export_day from events").fetchall() == [("2026-11-23",)]


def test_ddl_refuses_what_engines_cannot_read(world: World) -> None:
    plain = _create(world, layout="moengage")
    for engine in ("athena", "bigquery"):
        answer = _ddl(world, plain["id"], engine)
        assert answer.status_code == 422, answer.text
        assert "manifest" in answer.json()["message"]
    hive = _create(world, name="hive-events", layout="hive")
    answer = _ddl(world, hive["id"], "athena")
    assert answer.status_code == 422 and "S3" in answer.json()["message"]
    assert _ddl(world, hive["id"], "presto").status_code == 422
    assert _ddl(world, "nope", "duckdb").status_code == 404


def test_ddl_refuses_encrypted_exports(world: World) -> None:
    shown = _create(world, layout="hive")
    # Store a key as if it had passed gpg's checks (they are tested elsewhere).
    from spillway.store import catalog
    from spillway.store.db import write

    with write(world.s.engine) as conn:
        export = catalog.export(conn, world.s.project_id, shown["id"])
        assert export is not None
        settings = {**export.settings.to_json(), "pgp_public_key": "-----BEGIN PGP…"}
        catalog.update_export(conn, shown["id"], {"settings": settings})
    answer = _ddl(world, shown["id"], "duckdb")
    assert answer.status_code == 422
    assert "PGP-encrypted" in answer.json()["message"]


# --- Athena and BigQuery: the shape of their statements ----------------------------------


def _column_names(statement: str, start: str, stop: str) -> list[str]:
    block = statement.split(start, 1)[1].split(stop, 1)[0]
    return [line.strip().split()[0].strip("`") for line in block.strip().splitlines()]


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
def test_athena_and_bigquery_statements_list_the_format_fields(file_format: str) -> None:
    settings = ExportSettings(format=file_format, compression="gzip", layout="hive")
    fields = list(ddl.JSONL_FIELDS if file_format == "jsonl" else CSV_COLUMNS)

    athena = ddl.statement("athena", "events", settings, "s3", "s3://acme/spillway_events")
    assert athena.statement.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `events` (")
    assert _column_names(athena.statement, "(\n", "\n)") == fields
    assert [c.name for c in athena.columns] == fields
    assert "PARTITIONED BY (`dt` date, `hour` int)" in athena.statement
    assert "LOCATION 's3://acme/spillway_events/'" in athena.statement
    assert "'s3://acme/spillway_events/dt=${dt}/hour=${hour}/'" in athena.statement
    serde = {"jsonl": "JsonSerDe", "csv": "OpenCSVSerde", "parquet": "STORED AS PARQUET"}
    assert serde[file_format] in athena.statement

    bigquery = ddl.statement("bigquery", "events", settings, "gcs", "gs://acme/spillway_events")
    assert bigquery.statement.startswith("CREATE EXTERNAL TABLE `events` (")
    assert _column_names(bigquery.statement, "(\n", "\n)") == fields
    assert "WITH PARTITION COLUMNS (\n  dt DATE,\n  hour INT64\n)" in bigquery.statement
    suffix = {"jsonl": ".json.gz", "csv": ".csv.gz", "parquet": ".parquet"}[file_format]
    assert f"uris = ['gs://acme/spillway_events/*{suffix}']" in bigquery.statement
    assert "hive_partition_uri_prefix = 'gs://acme/spillway_events'" in bigquery.statement
    assert "event_time FLOAT64" in bigquery.statement  # a column, or a field of event


def test_bigquery_refuses_zstd_and_locations_follow_the_store() -> None:
    zstd = ExportSettings(format="csv", compression="zstd", layout="hive")
    with pytest.raises(ddl.Refused, match="zstd"):
        ddl.statement("bigquery", "events", zstd, "gcs", "gs://acme/p")
    with pytest.raises(ddl.Refused, match="Cloud Storage"):
        ddl.statement("bigquery", "events", ExportSettings(layout="hive"), "s3", "s3://a/p")
    duck = ddl.statement("duckdb", "my-events.v2", zstd, "azure_blob", "az://acct/c/p")
    assert duck.statement.startswith("CREATE OR REPLACE VIEW my_events_v2 AS")
    assert "read_csv('az://acct/c/p/*/*/event_exports_*.csv.zst'" in duck.statement


# --- the UI's create form ----------------------------------------------------------------


def test_create_form_offers_hourly_and_hive_and_posts_them() -> None:
    from spillway.ui import exports as ui
    from spillway.ui.render import FormState

    assert "hourly" in dict(ui.FREQUENCIES) and set(dict(ui.LAYOUTS)) == {"moengage", "hive"}
    path = ui.output_path("spillway", "events", "hourly", "parquet", "gzip", False, "hive")
    assert path.startswith("spillway_events/dt=") and "/hour=" in path
    assert path.endswith(".parquet")
    posted = {"name": "events", "frequency": "hourly", "layout": "hive", "start": "now"}
    body = ui._body(posted, FormState(values=posted))
    checked = api_models.ExportIn.model_validate({**body, "destination_id": "d"})
    assert (checked.frequency, checked.layout) == ("hourly", "hive")
