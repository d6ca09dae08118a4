"""One piece of a job: an export piece encoded and written to its key; an import object read
and parsed into endpoint definitions, each bad line reported by number."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from isal import isal_zlib

from spillway.destinations.base import ObjectStore
from spillway.engine.jobs.shapes import csv_text, unflatten

SUFFIX = {("jsonl", "gzip"): ".jsonl.gz", ("jsonl", "none"): ".jsonl"}
SUFFIX |= {("csv", "gzip"): ".csv.gz", ("csv", "none"): ".csv"}
CONTENT_TYPE = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


@dataclass(frozen=True, slots=True)
class Written:
    """What a piece put in its object."""

    records: int
    size: int
    sha256: str


def encode(bodies: Iterable[bytes], file_format: str) -> Iterator[bytes]:
    """The piece's records as JSON lines, or as one CSV document (header of the columns seen)."""
    if file_format == "csv":
        yield csv_text(orjson.loads(body) for body in bodies)
        return
    batch: list[bytes] = []
    for body in bodies:
        batch.append(body)
        if len(batch) == 2_000:
            yield b"\n".join(batch) + b"\n"
            batch = []
    if batch:
        yield b"\n".join(batch) + b"\n"


def write_piece(
    target: ObjectStore, key: str, bodies: Iterable[bytes], file_format: str, compression: str
) -> Written:
    """Encode and upload one piece; the same records give the same bytes (gzip mtime 0)."""
    digest = hashlib.sha256()
    size = 0
    counted = _Counter(bodies)
    # wbits 16+15: a gzip member with no name and mtime 0, so a rewrite is byte-identical.
    compressor = (
        isal_zlib.compressobj(1, isal_zlib.DEFLATED, 16 + 15) if compression == "gzip" else None
    )
    with target.open_object(key, content_type=CONTENT_TYPE[file_format]) as writer:
        for chunk in encode(counted, file_format):
            data = compressor.compress(chunk) if compressor else chunk
            if data:
                digest.update(data)
                size += len(data)
                writer.write(data)
        if compressor:
            tail = compressor.flush()
            digest.update(tail)
            size += len(tail)
            writer.write(tail)
    return Written(counted.count, size, digest.hexdigest())


class _Counter:
    """Counts records on their way to the encoder."""

    def __init__(self, bodies: Iterable[bytes]) -> None:
        self._bodies = bodies
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for body in self._bodies:
            self.count += 1
            yield body


@dataclass(frozen=True, slots=True)
class Line:
    """One endpoint definition read from an import object, or why its line cannot be used."""

    number: int  # 1-based line (CSV: the data row's line, the header is line 1)
    item: dict[str, Any] | None
    error: str | None = None


def read_definitions(data: bytes, file_format: str) -> Iterator[Line]:
    """Endpoint definitions from an object's bytes: gzipped or not (by its magic number),
    JSON lines (Pinpoint's export files) or CSV with Pinpoint's column names."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
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
