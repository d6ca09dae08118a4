"""From stored events to file bytes: format → compression → (PGP) → the destination writer.

Each layer streams: it writes downstream as data comes and keeps at most one batch in memory.
Output is deterministic for the same events and settings (gzip carries mtime 0), so a retry
rewrites identical bytes (DESIGN.md invariant 2); PGP aside, whose session key is fresh.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, cast

import orjson

from spillway.engine.records import RecordFrame, Selection, select
from spillway.model import ExportSettings

Format = Literal["jsonl", "csv", "parquet"]
Compression = Literal["gzip", "zstd", "none"]
EXTENSIONS = {"jsonl": ".json", "csv": ".csv", "parquet": ".parquet"}
COMPRESSED = {"gzip": ".gz", "zstd": ".zst", "none": ""}


class Sink(Protocol):
    """Anything bytes can be written to (an ObjectWriter, a layer below)."""

    def write(self, chunk: bytes) -> None:
        """Take bytes."""


class Layer(Protocol):
    """A sink that must be told when the stream ends."""

    def write(self, chunk: bytes) -> None:
        """Take bytes."""

    def finish(self) -> None:
        """Flush everything downstream."""


@dataclass(frozen=True, slots=True)
class FileSpec:
    """How the files of an export are encoded."""

    format: Format = "jsonl"
    compression: Compression = "gzip"
    pgp_public_key: str | None = None

    @classmethod
    def of(cls, settings: ExportSettings) -> FileSpec:
        """How an export's settings encode its files (values its request model checked)."""
        return cls(
            cast(Format, settings.format),
            cast(Compression, settings.compression),
            settings.pgp_public_key,
        )

    @property
    def suffix(self) -> str:
        """File name ending, e.g. ``.json.gz.gpg``."""
        if self.format == "parquet":  # compression is inside the Parquet file
            suffix = ".parquet"
        else:
            suffix = EXTENSIONS[self.format] + COMPRESSED[self.compression]
        return suffix + (".gpg" if self.pgp_public_key else "")


class _Gzip:
    def __init__(self, out: Sink) -> None:
        from isal import isal_zlib

        # wbits 16+15: a gzip member with mtime 0 and no name, so the bytes are reproducible.
        self._compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + 15)
        self._out = out

    def write(self, chunk: bytes) -> None:
        data = self._compressor.compress(chunk)
        if data:
            self._out.write(data)

    def finish(self) -> None:
        self._out.write(self._compressor.flush())


class _Zstd:
    def __init__(self, out: Sink) -> None:
        import zstandard

        self._compressor = zstandard.ZstdCompressor(level=3).compressobj()
        self._out = out

    def write(self, chunk: bytes) -> None:
        data = self._compressor.compress(chunk)
        if data:
            self._out.write(data)

    def finish(self) -> None:
        self._out.write(self._compressor.flush())


class _Plain:
    def __init__(self, out: Sink) -> None:
        self._out = out

    def write(self, chunk: bytes) -> None:
        self._out.write(chunk)

    def finish(self) -> None:
        return None


def compressor(kind: Compression, out: Sink) -> Layer:
    """The compression layer writing into ``out``."""
    if kind == "gzip":
        return _Gzip(out)
    if kind == "zstd":
        return _Zstd(out)
    return _Plain(out)


CSV_COLUMNS = (
    "app_name",
    "export_hour",
    "db_name",
    "export_day",
    "uid",
    "event_type",
    "event_code",
    "event_name",
    "event_source",
    "event_uuid",
    "event_time",
    "email_id",
    "user_attributes",
    "event_attributes",
    "device_attributes",
)


class FileEncoder(Protocol):
    """Turns batches of stored payloads into file bytes."""

    def add(self, payloads: Sequence[bytes]) -> None:
        """Encode a batch."""

    def finish(self) -> None:
        """End the file (footers, compression trailers)."""


class JsonlEncoder:
    """Seed-001 records, one JSON object per line.

    A file is ``head p1 tail head p2 … tail``: each batch goes out as one join of its payloads
    with ``tail head`` between them, after the head (first batch) or a ``tail head`` (later
    ones); the last tail ends the file. No per-record Python work on the passthrough path.
    """

    def __init__(self, out: Layer, frame: RecordFrame, selection: Selection) -> None:
        self._out, self._frame, self._selection = out, frame, selection
        self._between = frame.between
        self._lead = frame.head
        self._records = False

    def add(self, payloads: Sequence[bytes]) -> None:
        if not payloads:
            return
        if not self._selection.passthrough:
            payloads = [select(payload, self._selection) for payload in payloads]
        self._out.write(self._lead)
        self._out.write(self._between.join(payloads))
        self._lead, self._records = self._between, True

    def finish(self) -> None:
        if self._records:
            self._out.write(self._frame.tail)
        self._out.finish()


class CsvEncoder:
    """One row per event; attribute maps as JSON text in their columns."""

    def __init__(self, out: Layer, meta: dict[str, str], selection: Selection) -> None:
        self._out, self._meta, self._selection = out, meta, selection
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")
        self._writer.writerow(CSV_COLUMNS)

    def add(self, payloads: Sequence[bytes]) -> None:
        meta = self._meta
        fixed = (meta["app_name"], meta["export_hour"], meta["db_name"], meta["export_day"])
        for payload in payloads:
            event = orjson.loads(select(payload, self._selection))
            self._writer.writerow(
                (
                    *fixed,
                    event["uid"],
                    event["event_type"],
                    event["event_code"],
                    event["event_name"],
                    event["event_source"],
                    event["event_uuid"],
                    event["event_time"],
                    event.get("email_id", ""),
                    orjson.dumps(event["user_attributes"]).decode(),
                    orjson.dumps(event["event_attributes"]).decode(),
                    orjson.dumps(event["device_attributes"]).decode(),
                )
            )
        self._out.write(self._buffer.getvalue().encode())
        self._buffer.seek(0)
        self._buffer.truncate()

    def finish(self) -> None:
        self._out.write(self._buffer.getvalue().encode())
        self._out.finish()


def run_meta(app_name: str, db_name: str, window_end: int) -> dict[str, str]:
    """The per-run fields of every record, for formats that are not JSON lines."""
    import time

    moment = time.gmtime(window_end)
    return {
        "app_name": app_name,
        "db_name": db_name,
        "export_hour": str(moment.tm_hour),
        "export_day": time.strftime("%Y-%m-%d", moment),
    }


def open_encoder(
    spec: FileSpec,
    sink: Sink,
    *,
    app_name: str,
    db_name: str,
    window_end: int,
    selection: Selection,
) -> FileEncoder:
    """Stack the layers for one file: format → compression → PGP → ``sink``."""
    out: Sink = sink
    pgp: Layer | None = None
    if spec.pgp_public_key:
        from spillway.engine.pgp import PgpLayer

        pgp = PgpLayer(spec.pgp_public_key, sink)
        out = pgp
    meta = run_meta(app_name, db_name, window_end)
    if spec.format == "parquet":
        from spillway.engine.parquet import ParquetEncoder

        return _Finishing(ParquetEncoder(out, meta, selection, spec.compression), pgp)
    layer = compressor(spec.compression, out)
    if spec.format == "csv":
        return _Finishing(CsvEncoder(layer, meta, selection), pgp)
    frame = RecordFrame.for_run(app_name, db_name, window_end)
    return _Finishing(JsonlEncoder(layer, frame, selection), pgp)


class _Finishing:
    """Finishes the PGP layer (if any) after the format and compression layers."""

    def __init__(self, inner: FileEncoder, pgp: Layer | None) -> None:
        self._inner, self._pgp = inner, pgp

    def add(self, payloads: Sequence[bytes]) -> None:
        self._inner.add(payloads)

    def finish(self) -> None:
        self._inner.finish()
        if self._pgp is not None:
            self._pgp.finish()
