"""Every exported file reads back with the standard tools, end to end through an export run.

The unit tests check each encoder on its own; here the files are the ones a scheduled run wrote
(split into parts by a small ``max_file_bytes``, so each part must stand on its own), and they
are opened the way a customer would: ``gzip -dc``, ``zstd -dc``, ``gpg --decrypt``, pyarrow,
DuckDB and Python's csv module.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine

from spillway.demo import synthetic_events
from spillway.engine.encode import CSV_COLUMNS
from spillway.ingest import judge
from spillway.store.events import insert_events
from spillway.store.projects import project_by_id
from tests.integration.exporting import LIMITS, T0, Setup, data_files, make_setup
from tests.unit.test_pgp import GPG, Keyring, stop_agent

# Local destinations exist only with the operator's SPILLWAY_LOCAL_ROOT (each project in its own
# subfolder): make_setup puts its destination there.
pytestmark = pytest.mark.usefixtures("local_root")

# The two sample records of seed 001 (MoEngage's S3 export), as events.
SEED_EVENTS: list[dict[str, Any]] = [
    {
        "uid": "user id",
        "event_type": "USER_ACTION_EVENT",
        "event_code": "VIEW_RADAR",
        "event_name": "VIEW_RADAR",
        "user_attributes": {
            "moengage_user_id": "userid1",
            "user_attr1": "value1",
            "user_attr2": "value2",
        },
        "event_source": "MOENGAGE",
        "event_attributes": {"event_attr1": "value1", "event_attr2": "value2"},
        "event_uuid": "62045d15-8d5e-4cfd-ac49-5919bffb401d",
        "event_time": 1652820710,
        "device_attributes": {"moengage_device_id": "device id"},
    },
    {
        "uid": "user id",
        "event_type": "CAMPAIGN_EVENT",
        "event_code": "MOE_EMAIL_SENT",
        "event_name": "Email Sent",
        "user_attributes": {
            "moengage_user_id": "userid1",
            "user_attr1": "value1",
            "user_attr2": "value2",
        },
        "event_source": "MOENGAGE",
        "email_id": "test@xyz.com",
        "event_attributes": {
            "campaign_name": "Campaign name",
            "moe_campaign_tags": ["Tag1", "Tag2"],
            "campaign_type": "GENERAL",
            "moe_campaign_channel": "Email",
            "moe_delivery_type": "One Time",
            "campaign_id": "moengage campaign id",
            "campaign_channel": "EMAIL",
        },
        "event_uuid": "3b918064-08dc-47ae-b674-c23797475a8d",
        "event_time": 1653022310,
        "device_attributes": {"moengage_device_id": "device id if applicable"},
    },
]
RECORD_KEYS = ["app_name", "export_hour", "db_name", "event", "export_day"]
EVENT_KEYS = {
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
SMALL_FILES = 64 * 1024  # ~300 events make three or four parts
WINDOW_END = T0 + 900  # 2026-11-23 00:15 UTC


def make_keyring(home: Path) -> Keyring:
    """A fresh key pair (ed25519 + cv25519: quick to make) in ``home``, by the real gpg."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    ring = Keyring(home, "", "")
    fingerprint = ring.generate("Export <e@example.com>", "future-default", "default", "never")
    return Keyring(home, ring.export(fingerprint), fingerprint)


@pytest.fixture(scope="module")
def keyring() -> Iterator[Keyring]:
    if not os.path.exists(GPG):
        pytest.fail("gpg is needed for the PGP tests: apt install gnupg (make system-deps)")
    home = Path(tempfile.mkdtemp(prefix="gpgf-"))  # short: the agent's socket lives here
    try:
        yield make_keyring(home / "g")
    finally:
        stop_agent(home / "g")
        shutil.rmtree(home, ignore_errors=True)


def deliver(engine: Engine, tmp_path: Path, **settings: Any) -> tuple[Setup, list[dict[str, Any]]]:
    """One export with these settings, the seed's events and 300 more, one run; what was sent."""
    s = make_setup(engine, tmp_path)
    s.export(max_file_bytes=SMALL_FILES, **settings)
    sent = [*SEED_EVENTS, *synthetic_events(300, seed=11, users=50)]
    judged = judge(sent, (T0 + 100) * 1000, LIMITS)
    assert not judged.rejected
    insert_events(engine, s.project_id, (T0 + 100) * 1000, judged.rows)
    s.clock.now = WINDOW_END + 1
    assert s.scheduler().tick() == {"runs": 1, "failed": 0}
    return s, sent


def parts(s: Setup, suffix: str) -> list[Path]:
    """The run's files, part 1 first; they must be several, each with ``suffix``."""
    files = data_files(s.root)
    base = f"event_exports_{WINDOW_END}"
    assert [p.name for p in files] == [f"{base}_{n}{suffix}" for n in range(1, len(files) + 1)]
    assert len(files) >= 3
    assert all(p.parent.name == "export_day=23-11-2026" for p in files)
    return files


def tool(*args: str, data: bytes | None = None, path: Path | None = None) -> bytes:
    """Run a standard command-line tool on a file or on bytes; its output."""
    done = subprocess.run(
        [*args, *([str(path)] if path else [])],
        input=data,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, f"{args[0]}: {done.stderr.decode(errors='replace')}"
    return done.stdout


def db_name(s: Setup) -> str:
    with s.engine.connect() as conn:
        project = project_by_id(conn, s.project_id)
    assert project is not None
    return project.app_id


def check_records(s: Setup, lines: list[bytes], sent: list[dict[str, Any]]) -> None:
    """JSON lines in the seed-001 shape, holding exactly the sent events, in order."""
    records = [orjson.loads(line) for line in lines]
    assert [r["event"]["event_uuid"] for r in records] == [e["event_uuid"] for e in sent]
    for record, event in zip(records, sent, strict=True):
        assert list(record) == RECORD_KEYS
        assert record["app_name"] == "acme"
        assert record["db_name"] == db_name(s)
        assert (record["export_hour"], record["export_day"]) == ("0", "2026-11-23")
        assert set(record["event"]) - {"email_id"} == EVENT_KEYS
        assert record["event"] == event
    assert records[1]["event"] == SEED_EVENTS[1]  # the seed's own example, field for field


@pytest.mark.parametrize(
    ("compression", "suffix", "command"),
    [
        ("gzip", ".json.gz", ["gzip", "-dc"]),
        ("zstd", ".json.zst", ["zstd", "-dc"]),
        ("none", ".json", ["cat"]),
    ],
)
def test_json_lines_decompress_with_the_standard_tools(
    engine: Engine, tmp_path: Path, compression: str, suffix: str, command: list[str]
) -> None:
    s, sent = deliver(engine, tmp_path, format="jsonl", compression=compression)
    lines: list[bytes] = []
    for path in parts(s, suffix):
        if compression == "gzip":
            tool("gzip", "-t", path=path)  # each part is a complete gzip file
        if shutil.which(command[0]) is None and compression == "zstd":
            import zstandard  # the zstd binary is optional on the test machine

            text = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        else:
            text = tool(*command, path=path)
        assert text.endswith(b"\n")
        lines += text.splitlines()
    check_records(s, lines, sent)


def test_pgp_files_decrypt_with_gpg_to_gzip(
    engine: Engine, tmp_path: Path, keyring: Keyring
) -> None:
    s, sent = deliver(engine, tmp_path, pgp_public_key=keyring.public_key)
    lines: list[bytes] = []
    for path in parts(s, ".json.gz.gpg"):
        inner = keyring.decrypt(path.read_bytes())
        assert inner[:2] == b"\x1f\x8b"  # what comes out is the gzip file
        lines += tool("gzip", "-dc", data=inner).splitlines()
    check_records(s, lines, sent)


def test_parquet_opens_with_pyarrow_and_duckdb(engine: Engine, tmp_path: Path) -> None:
    s, sent = deliver(engine, tmp_path, format="parquet")
    files = parts(s, ".parquet")
    uuids: list[str] = []
    for path in files:
        table = pq.read_table(path)
        assert table.column_names == list(CSV_COLUMNS)
        assert str(table.schema.field("event_time").type) == "double"
        uuids += table.column("event_uuid").to_pylist()
    assert uuids == [e["event_uuid"] for e in sent]

    sources = [str(p) for p in files]
    with duckdb.connect() as db:
        count, distinct, days = db.execute(
            "select count(*), count(distinct event_uuid), count(distinct export_day) "
            "from read_parquet(?)",
            [sources],
        ).fetchone() or (0, 0, 0)
        assert (count, distinct, days) == (len(sent), len(sent), 1)
        described = db.execute("describe select * from read_parquet(?)", [sources]).fetchall()
        assert [row[0] for row in described] == list(CSV_COLUMNS)
        row = db.execute(
            "select uid, event_name, email_id, event_time, "
            "json_extract_string(user_attributes, '$.moengage_user_id'), "
            "json_extract(event_attributes, '$.moe_campaign_tags') "
            "from read_parquet(?) where event_uuid = ?",
            [sources, SEED_EVENTS[1]["event_uuid"]],
        ).fetchone()
    assert row is not None
    assert row[:5] == ("user id", "Email Sent", "test@xyz.com", 1653022310.0, "userid1")
    assert json.loads(row[5]) == ["Tag1", "Tag2"]


def test_csv_parses_with_a_header_in_every_part(engine: Engine, tmp_path: Path) -> None:
    s, sent = deliver(engine, tmp_path, format="csv", compression="gzip")
    rows: list[dict[str, str]] = []
    for path in parts(s, ".csv.gz"):
        text = tool("gzip", "-dc", path=path).decode()
        reader = csv.DictReader(io.StringIO(text, newline=""))
        assert reader.fieldnames == list(CSV_COLUMNS)
        rows += list(reader)
    assert [r["event_uuid"] for r in rows] == [e["event_uuid"] for e in sent]
    for row, event in zip(rows, sent, strict=True):
        assert (row["app_name"], row["export_hour"], row["export_day"]) == (
            "acme",
            "0",
            "2026-11-23",
        )
        assert row["db_name"] == db_name(s)
        assert row["event_name"] == event["event_name"]
        assert float(row["event_time"]) == float(event["event_time"])
        assert row["email_id"] == event.get("email_id", "")
        for column in ("user_attributes", "event_attributes", "device_attributes"):
            assert json.loads(row[column]) == event[column]
