"""Parquet files of export records: the CSV columns, typed, compressed inside the file.

Row groups are cut at fixed row and byte counts of the event stream, never at the caller's
batch boundaries, so the bytes depend only on the events and the settings (DESIGN.md
invariant 2). At most one row group is held in memory, as compact Arrow columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from spillway.engine.encode import CSV_COLUMNS, Sink
from spillway.engine.records import Selection, select

ROW_GROUP_ROWS = 65_536
ROW_GROUP_BYTES = 64 << 20  # of event payloads: bounds memory when events are large
_FLUSH_BYTES = 1 << 20  # pyarrow writes many tiny pieces; hand them on in larger chunks
_CODECS = {"gzip": "gzip", "zstd": "zstd", "none": "none"}

# event_time is float64 epoch seconds: ingest keeps milliseconds (1700000000.25), and float64
# holds those exactly for any date Spillway accepts. Attribute maps are JSON text, as in CSV.
SCHEMA = pa.schema(
    [
        pa.field(
            name,
            pa.float64() if name == "event_time" else pa.string(),
            nullable=name == "email_id",  # absent from events sent without one
        )
        for name in CSV_COLUMNS
    ]
)
_FIXED = ("app_name", "export_hour", "db_name", "export_day")
_EVENT_COLUMNS = CSV_COLUMNS[len(_FIXED) :]


class _SinkFile:
    """The write-only file pyarrow wants, in front of a Sink; it never closes the sink."""

    def __init__(self, out: Sink) -> None:
        self._out = out
        self._buffer = bytearray()
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._buffer += view
        self._position += view.nbytes
        if len(self._buffer) >= _FLUSH_BYTES:
            self.drain()
        return view.nbytes

    def tell(self) -> int:
        return self._position

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        return None  # drain() runs at thresholds and at the end: no small writes downstream

    def close(self) -> None:
        self.closed = True

    def drain(self) -> None:
        if self._buffer:
            self._out.write(bytes(self._buffer))
            self._buffer.clear()


class ParquetEncoder:
    """One Parquet file: a row group per ``ROW_GROUP_ROWS`` events (or ``ROW_GROUP_BYTES``)."""

    def __init__(
        self, out: Sink, meta: dict[str, str], selection: Selection, compression: str
    ) -> None:
        self._selection = selection
        self._fixed = [pa.scalar(meta[name], pa.string()) for name in _FIXED]
        self._file = _SinkFile(out)
        self._writer = pq.ParquetWriter(
            self._file,
            SCHEMA,
            compression=_CODECS[compression],
            use_dictionary=True,
            write_statistics=True,
        )
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._finished = False

    def add(self, payloads: Sequence[bytes]) -> None:
        """Encode a batch; writes a row group each time the thresholds are reached."""
        rows: list[tuple[Any, ...]] = []
        dumps = orjson.dumps
        for payload in payloads:
            event = orjson.loads(select(payload, self._selection))
            rows.append(
                (
                    event["uid"],
                    event["event_type"],
                    event["event_code"],
                    event["event_name"],
                    event["event_source"],
                    event["event_uuid"],
                    float(event["event_time"]),
                    event.get("email_id"),
                    dumps(event["user_attributes"]).decode(),
                    dumps(event["event_attributes"]).decode(),
                    dumps(event["device_attributes"]).decode(),
                )
            )
            self._pending_rows += 1
            self._pending_bytes += len(payload)
            if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
                self._pending.append(self._batch(rows))
                rows = []
                self._write_row_group()
        if rows:
            self._pending.append(self._batch(rows))

    def finish(self) -> None:
        """Write the last row group and the footer. ``out`` is not finished here: the caller
        (encode._Finishing) finishes the PGP layer, and the final sink is committed by its owner.
        """
        if self._finished:
            return
        self._finished = True
        self._write_row_group()
        self._writer.close()
        self._file.drain()

    def _batch(self, rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
        count = len(rows)
        columns = [pa.repeat(value, count) for value in self._fixed]
        for index, values in enumerate(zip(*rows, strict=True)):
            name = _EVENT_COLUMNS[index]
            columns.append(pa.array(values, type=SCHEMA.field(name).type))
        return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)

    def _write_row_group(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=SCHEMA)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        self._writer.write_table(table, row_group_size=table.num_rows)
