"""Parquet export files: read back with pyarrow and DuckDB, attribute selection, determinism."""

from __future__ import annotations

import io
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spillway.engine import parquet
from spillway.engine.encode import CSV_COLUMNS, Compression, FileSpec, open_encoder
from spillway.engine.records import Selection
from tests.unit.test_pgp import Keyring, Sink, make_keyring, stop_agent

WINDOW_END = 1_795_428_900  # 2026-11-23T10:15:00Z
META = {
    "app_name": "Shop",
    "db_name": "Shop Production",
    "export_hour": "10",
    "export_day": "2026-11-23",
}


def event(i: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "uid": f"user-{i % 97}",
        "event_type": "USER_ACTION_EVENT" if i % 5 else "CAMPAIGN_EVENT",
        "event_code": f"CODE_{i % 7}",
        "event_name": f"event_{i % 11}",
        "user_attributes": {"plan": "pro" if i % 2 else "free", "age": i % 80, "city": "Oslo"},
        "event_source": "MOENGAGE",
        "event_attributes": {"n": i, "tags": ["a", "b"], "nested": {"ok": True}},
        "event_uuid": f"62045d15-8d5e-4cfd-ac49-{i:012d}",
        "event_time": 1_795_428_000 + i + (0.25 if i % 3 == 0 else 0),
        "device_attributes": {"os": "iOS", "model": f"m{i % 4}"},
    }
    if i % 4 == 0:
        record["email_id"] = f"u{i}@example.com"
    return record


EVENTS = [event(i) for i in range(3_000)]
PAYLOADS = [orjson.dumps(e) for e in EVENTS]


class FinishlessSink(Sink):
    """A final sink: committed by its owner, never finished by an encoder."""

    def finish(self) -> None:
        raise AssertionError("the encoder finished the final sink")


def encode(
    payloads: Sequence[bytes] = PAYLOADS,
    *,
    batch: int = 700,
    selection: Selection | None = None,
    compression: Compression = "zstd",
    public_key: str | None = None,
) -> bytes:
    sink = FinishlessSink()
    spec = FileSpec(format="parquet", compression=compression, pgp_public_key=public_key)
    encoder = open_encoder(
        spec,
        sink,
        app_name=META["app_name"],
        db_name=META["db_name"],
        window_end=WINDOW_END,
        selection=selection or Selection(),
    )
    for start in range(0, len(payloads), batch):
        encoder.add(payloads[start : start + batch])
    encoder.finish()
    assert sink.threads <= {threading.get_ident()}
    return sink.data


def read(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def test_reads_back_with_pyarrow() -> None:
    table = read(encode())
    assert table.column_names == list(CSV_COLUMNS)
    assert table.num_rows == len(EVENTS)
    assert table.schema.field("event_time").type == pa.float64()
    assert all(table.schema.field(n).type == pa.string() for n in CSV_COLUMNS if n != "event_time")
    rows = table.to_pylist()
    for row, source in zip(rows, EVENTS, strict=True):
        for name in ("app_name", "db_name", "export_hour", "export_day"):
            assert row[name] == META[name]
        for name in ("uid", "event_type", "event_code", "event_name", "event_source"):
            assert row[name] == source[name]
        assert row["event_uuid"] == source["event_uuid"]
        assert row["event_time"] == source["event_time"]
        assert row["email_id"] == source.get("email_id")
        for name in ("user_attributes", "event_attributes", "device_attributes"):
            assert orjson.loads(row[name]) == source[name]


def test_reads_back_with_duckdb(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_bytes(encode())
    with duckdb.connect() as conn:
        count = conn.sql(f"select count(*) from read_parquet('{path}')").fetchall()
        assert count == [(len(EVENTS),)]
        emails = conn.sql(
            f"select count(email_id) from read_parquet('{path}') where email_id like '%@%'"
        ).fetchall()
        assert emails == [(sum(1 for e in EVENTS if "email_id" in e),)]
        plans = conn.sql(
            "select json_extract_string(user_attributes, '$.plan') as plan, count(*) "
            f"from read_parquet('{path}') group by plan order by plan"
        ).fetchall()
        assert plans == [("free", 1_500), ("pro", 1_500)]
        latest = conn.sql(f"select max(event_time) from read_parquet('{path}')").fetchall()
        assert latest == [(max(e["event_time"] for e in EVENTS),)]


def test_seed_001_example_event_round_trips() -> None:
    payload = (
        b'{"uid":"user id","event_type":"USER_ACTION_EVENT","event_code":"VIEW_RADAR",'
        b'"event_name":"VIEW_RADAR","user_attributes":{"moengage_user_id":"userid1"},'
        b'"event_source":"MOENGAGE","event_attributes":{"event_attr1":"value1"},'
        b'"event_uuid":"62045d15-8d5e-4cfd-ac49-5919bffb401d","event_time":1652820710,'
        b'"device_attributes":{"moengage_device_id":"device id"}}'
    )
    (row,) = read(encode([payload])).to_pylist()
    assert row["event_time"] == 1_652_820_710.0
    assert row["email_id"] is None
    assert row["user_attributes"] == '{"moengage_user_id":"userid1"}'


@pytest.mark.parametrize(
    ("selection", "user", "device"),
    [
        (Selection(user_attributes="none"), lambda e: {}, lambda e: e),
        (Selection(user_attributes=["plan", "missing"]), lambda e: {"plan": e["plan"]}, None),
        (Selection(device_attributes=False), lambda e: e, lambda e: {}),
        (Selection("none", device_attributes=False), lambda e: {}, lambda e: {}),
    ],
)
def test_attribute_selection_applies(selection: Selection, user: Any, device: Any) -> None:
    rows = read(encode(PAYLOADS[:300], selection=selection)).to_pylist()
    for row, source in zip(rows, EVENTS, strict=False):
        assert orjson.loads(row["user_attributes"]) == user(source["user_attributes"])
        expected_device = (
            source["device_attributes"] if device is None else device(source["device_attributes"])
        )
        assert orjson.loads(row["device_attributes"]) == expected_device
        assert orjson.loads(row["event_attributes"]) == source["event_attributes"]


def test_same_input_gives_identical_bytes() -> None:
    assert encode() == encode()


def test_row_groups_do_not_depend_on_batch_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 1_000)
    one_batch = encode(batch=len(PAYLOADS))
    small_batches = encode(batch=333)
    assert one_batch == small_batches
    metadata = pq.ParquetFile(io.BytesIO(one_batch)).metadata
    assert metadata.num_row_groups == 3
    assert [metadata.row_group(i).num_rows for i in range(3)] == [1_000, 1_000, 1_000]


def test_row_groups_are_cut_by_bytes_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP_BYTES", 100_000)
    metadata = pq.ParquetFile(io.BytesIO(encode())).metadata
    assert metadata.num_row_groups > 3
    assert metadata.num_rows == len(EVENTS)


def test_bytes_reach_the_sink_before_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 1_000)
    monkeypatch.setattr(parquet, "_FLUSH_BYTES", 1)
    sink = FinishlessSink()
    encoder = parquet.ParquetEncoder(sink, META, Selection(), "zstd")
    encoder.add(PAYLOADS[:2_500])
    written = len(sink.data)
    assert written > 0  # two row groups are out; only the last 500 rows are held
    encoder.finish()
    assert len(sink.data) > written
    assert read(sink.data).num_rows == 2_500


@pytest.mark.parametrize(
    ("compression", "codec"), [("zstd", "ZSTD"), ("gzip", "GZIP"), ("none", "UNCOMPRESSED")]
)
def test_codec_follows_the_compression_setting(compression: Compression, codec: str) -> None:
    data = encode(PAYLOADS[:500], compression=compression)
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    assert metadata.row_group(0).column(0).compression == codec
    assert read(data).num_rows == 500


def test_parquet_suffix_ignores_the_compression_setting() -> None:
    assert FileSpec(format="parquet", compression="gzip").suffix == ".parquet"


def test_no_events_is_a_readable_empty_file() -> None:
    table = read(encode([]))
    assert table.num_rows == 0
    assert table.column_names == list(CSV_COLUMNS)


@pytest.fixture(scope="module")
def keyring() -> Iterator[Keyring]:
    home = Path(tempfile.mkdtemp(prefix="gpgp-"))
    try:
        yield make_keyring(home)
    finally:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def test_pgp_parquet_decrypts_to_the_plain_file(keyring: Keyring) -> None:
    encrypted = encode(public_key=keyring.public_key)
    assert FileSpec("parquet", "zstd", keyring.public_key).suffix == ".parquet.gpg"
    plain = keyring.decrypt(encrypted)
    assert plain == encode()  # the plaintext is reproducible even though the ciphertext is not
    assert read(plain).num_rows == len(EVENTS)
