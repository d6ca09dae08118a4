"""One piece of a job: an export piece encoded and written to its key; an import object read
and parsed into endpoint definitions, each bad line reported by number."""

from __future__ import annotations

import csv
import hashlib
import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson
from isal import isal_zlib

from spillway.destinations.base import ObjectStore
from spillway.engine.jobs.shapes import csv_text, unflatten
from spillway.errors import TerminalError

SUFFIX = {("jsonl", "gzip"): ".jsonl.gz", ("jsonl", "none"): ".jsonl"}
SUFFIX |= {("csv", "gzip"): ".csv.gz", ("csv", "none"): ".csv"}
CONTENT_TYPE = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


@dataclass(frozen=True, slots=True)
class Written:
    """What a piece put in its object."""

    records: int
    size: int
    sha256: str


# Records per chunk handed to the compressor (the chunking is part of what makes a rewritten
# piece byte-identical: keep it).
CHUNK = 2_000


def _batches(bodies: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The records in lists of ``CHUNK`` (taken by ``islice``: no Python step per record)."""
    records = iter(bodies)
    while batch := list(islice(records, CHUNK)):
        yield batch


def encode(bodies: Iterable[bytes], file_format: str) -> Iterator[tuple[int, bytes]]:
    """The piece's records as JSON lines, or as one CSV document (header of the columns seen);
    each chunk with the number of records in it."""
    if file_format == "csv":
        records = list(bodies)
        yield len(records), csv_text(orjson.loads(body) for body in records)
        return
    for batch in _batches(bodies):
        batch.append(b"")  # the last record's newline
        yield len(batch) - 1, b"\n".join(batch)


class Sink:
    """A piece's bytes as they are made: compressed (gzip member with no name and mtime 0, so
    a rewrite is byte-identical) or not, counted and hashed."""

    def __init__(self, compression: str) -> None:
        # wbits 16+15: a gzip member.
        self._compressor = (
            isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + 15) if compression == "gzip" else None
        )
        self._digest = hashlib.sha256()
        self.size = 0
        self.records = 0

    def add(self, records: int, chunk: bytes) -> bytes:
        """The output bytes for ``records`` encoded records (often none yet: compressed)."""
        self.records += records
        return self._out(self._compressor.compress(chunk) if self._compressor else chunk)

    def finish(self) -> bytes:
        """The last output bytes."""
        return self._out(self._compressor.flush() if self._compressor else b"")

    def written(self) -> Written:
        return Written(self.records, self.size, self._digest.hexdigest())

    def _out(self, data: bytes) -> bytes:
        if data:
            self._digest.update(data)
            self.size += len(data)
        return data


def write_piece(
    target: ObjectStore,
    key: str,
    bodies: Iterable[bytes],
    file_format: str,
    compression: str,
    kept: Written | None = None,
) -> Written:
    """Encode and upload one piece; the same records give the same bytes. With ``kept``, the
    piece was encoded when the job was planned: ``bodies`` are its bytes as they were kept,
    uploaded as they are."""
    if kept is not None:
        return _upload_kept(target, key, bodies, file_format, kept)
    sink = Sink(compression)
    with target.open_object(key, content_type=CONTENT_TYPE[file_format]) as writer:
        for count, chunk in encode(bodies, file_format):
            if data := sink.add(count, chunk):
                writer.write(data)
        if data := sink.finish():
            writer.write(data)
    return sink.written()


def _upload_kept(
    target: ObjectStore, key: str, blocks: Iterable[bytes], file_format: str, expected: Written
) -> Written:
    """Upload a piece encoded when the job was planned (its bytes kept in the snapshot),
    checked against what planning made."""
    digest = hashlib.sha256()
    size = 0
    with target.open_object(key, content_type=CONTENT_TYPE[file_format]) as writer:
        for block in blocks:
            digest.update(block)
            size += len(block)
            writer.write(block)
        # Checked before the object is committed: a wrong piece is never left behind.
        if (size, digest.hexdigest()) != (expected.size, expected.sha256):
            raise RuntimeError(f"the snapshot of {key} does not hold the bytes planning made")
    return expected


@dataclass(frozen=True, slots=True)
class Line:
    """One endpoint definition read from an import object, or why its line cannot be used."""

    number: int  # 1-based line (CSV: the data row's line, the header is line 1)
    item: dict[str, Any] | None
    error: str | None = None


# The most an import object may hold once decompressed: a piece is read whole, and a small
# gzip bomb in a project's own bucket must not take the server's memory from everyone.
MAX_IMPORT_BYTES = 512 * 1024 * 1024


def _inflated(data: bytes, limit: int) -> bytes:
    """``data`` gunzipped (every member), refused past ``limit`` bytes without inflating more."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(data, limit - size + 1)
        except zlib.error as exc:
            raise TerminalError(f"the object is not a readable gzip file ({exc})") from None
        size += len(chunk)
        out.append(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise TooBig(limit)
        data = inflater.unused_data  # a following gzip member, if any
    return b"".join(out)


class TooBig(TerminalError):
    """An import object larger than the server reads in one piece."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the object is larger than {limit // (1024 * 1024):,} MiB once decompressed; "
            "split it into several objects under the same prefix"
        )


def read_definitions(
    data: bytes, file_format: str, limit: int = MAX_IMPORT_BYTES
) -> Iterator[Line]:
    """Endpoint definitions from an object's bytes: gzipped or not (by its magic number),
    JSON lines (Pinpoint's export files) or CSV with Pinpoint's column names."""
    if data[:2] == b"\x1f\x8b":
        data = _inflated(data, limit)
    elif len(data) > limit:
        raise TooBig(limit)
    text = data.decode("utf-8-sig", errors="replace")
    if file_format == "csv":
        reader = csv.DictReader(io.StringIO(text))
        for number, row in enumerate(reader, start=2):
            try:
                yield Line(number, unflatten(row))
            except ValueError as exc:
                yield Line(number, None, str(exc))
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield Line(number, None, f"not JSON ({exc})")
            continue
        if not isinstance(item, dict):
            yield Line(number, None, "expected a JSON object (one endpoint definition)")
            continue
        yield Line(number, item)
