"""Turning request bodies into stored events: parse, judge each event, insert.

This is the ingest hot path; it avoids per-event objects beyond one dict and one tuple.
"""

from __future__ import annotations

import math
import re
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from spillway.errors import Malformed, TooLarge, Unsupported
from spillway.store.db import now_ms
from spillway.store.events import insert_events

JSON_TYPES = frozenset({"application/json", "text/json"})
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/json-seq",
    }
)
ALLOWED_FIELDS = frozenset(
    {
        "event_uuid",
        "event_type",
        "event_name",
        "event_code",
        "uid",
        "event_time",
        "event_source",
        "event_attributes",
        "user_attributes",
        "device_attributes",
        "email_id",
    }
)
_ALLOWED_LIST = ", ".join(sorted(ALLOWED_FIELDS))
# The fields of a stored event, in the order judge() writes them (seed 001's record; exports
# splice the stored bytes, and the DDL of engine/ddl.py declares the same columns in this order).
# ``email_id`` only when the event has one.
RECORD_FIELDS = (
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
    "email_id",
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EVENT_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_EMPTY = b"{}"
# Epoch seconds beyond this are almost surely milliseconds (year 5138 otherwise).
_MAX_EPOCH_S = 100_000_000_000
_MAX_TEXT = 256
# Objects and arrays nest at most this many levels in one event, the event object itself being
# level 1 (so an attribute map is level 2). Deeper data is refused at ingest, well below the
# encoder's own limit (orjson: 254), so every stored event can be re-encoded by every export.
MAX_DEPTH = 32
_ATTRIBUTES = ("user_attributes", "event_attributes", "device_attributes")
_CONTAINERS = frozenset({dict, list})


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits of one request, from settings."""

    max_request_bytes: int
    max_events_per_request: int
    max_event_bytes: int


@dataclass(slots=True)
class Judged:
    """The outcome of judging a batch: rows ready to insert, and the rejected ones."""

    # (event_time_ms, event_uuid as its 16 bytes, event_type, event_name, uid, payload)
    rows: list[tuple[int, bytes, str, str, str, bytes]] = field(default_factory=list)
    row_index: list[int] = field(default_factory=list)  # request index of each row
    rejected: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    received: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a batch: counts, and each rejected or duplicate event by index."""

    received: int
    accepted: int
    rejected: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]


def ingest(engine: Engine, project_id: int, raw_events: list[Any], limits: Limits) -> Outcome:
    """Judge a batch and store its good events; duplicates (already stored) are skipped."""
    received = now_ms()
    judged = judge(raw_events, received, limits)
    return outcome(judged, insert_events(engine, project_id, received, judged.rows))


def outcome(judged: Judged, existing: set[str]) -> Outcome:
    """Combine the judgement with the uuids the store already had (text, as clients send)."""
    duplicates = judged.duplicates
    if existing:
        stored = {uuid.UUID(text).bytes: text for text in existing}
        for index, row in zip(judged.row_index, judged.rows, strict=True):
            text = stored.get(row[1])
            if text is not None:
                duplicates.append({"index": index, "event_uuid": text, "reason": "already stored"})
        duplicates.sort(key=lambda item: item["index"])
    accepted = len(judged.rows) - len(existing)
    return Outcome(judged.received, accepted, judged.rejected, duplicates)


class BadGzip(Malformed):
    """The body says it is gzip and is not (corrupt, truncated, trailing bytes)."""


class BadJson(Malformed):
    """The body is not JSON, or not one of the shapes a batch of events takes."""


class EmptyBatch(Malformed):
    """The body parsed and holds no events."""


class UnknownEncoding(Unsupported):
    """A ``Content-Encoding`` other than gzip or none."""


class UnknownMediaType(Unsupported):
    """A ``Content-Type`` that is neither JSON nor NDJSON."""


def decode_body(body: bytes, content_encoding: str | None, limits: Limits) -> bytes:
    """Undo ``Content-Encoding`` with the size limit applied to the decompressed bytes."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise UnknownEncoding(
            f"Content-Encoding {content_encoding!r} is not supported; send gzip or no encoding"
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limits.max_request_bytes + 1)
    except zlib.error as exc:
        raise BadGzip(f"body is not valid gzip: {exc}") from exc
    if len(out) > limits.max_request_bytes:
        raise TooLarge(
            f"decompressed body exceeds {limits.max_request_bytes:,} bytes "
            "(SPILLWAY_MAX_REQUEST_BYTES); send smaller batches"
        )
    if not inflater.eof:
        raise BadGzip("gzip body is truncated: the compressed stream ends early")
    if inflater.unused_data:
        raise BadGzip("gzip body has trailing bytes after the compressed stream")
    return out


def parse_body(body: bytes, content_type: str | None) -> list[Any]:
    """Split a request body into raw events: JSON array, ``{"events": [...]}`` or NDJSON.

    For NDJSON a line that is not JSON becomes a per-event error, not a failed request.
    """
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        return _parse_ndjson(body)
    if media not in JSON_TYPES and not media.endswith("+json"):
        raise UnknownMediaType(
            f"Content-Type {media!r} is not supported; send application/json (an array or "
            '{"events": [...]}) or application/x-ndjson (one event per line)'
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadJson(f"body is not valid JSON: {exc}") from exc
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        events = document.get("events")
        if "events" not in document:
            return [document]  # a single event object
        if isinstance(events, list):
            return events
        raise BadJson('"events" must be a JSON array of event objects')
    raise BadJson('body must be a JSON array of events, {"events": [...]}, or one event object')


class _BadLine:
    """Marks an NDJSON line that did not parse, so it is rejected by index."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_ndjson(body: bytes) -> list[Any]:
    out: list[Any] = []
    for raw_line in body.split(b"\n"):
        # json-seq (RFC 7464) starts each record with the RS character.
        line = raw_line.strip(b"\x1e \t\r")
        if not line:
            continue
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            out.append(_BadLine(f"line is not valid JSON: {exc}"))
    return out


def judge(raw_events: list[Any], received_ms: int, limits: Limits) -> Judged:
    """Validate and normalise each event on its own; see SPEC R1 for the fields."""
    count = len(raw_events)
    if count == 0:
        raise EmptyBatch("the request holds no events")
    if count > limits.max_events_per_request:
        raise TooLarge(
            f"{count:,} events in one request; the limit is {limits.max_events_per_request:,} "
            "(SPILLWAY_MAX_EVENTS_PER_REQUEST); split the batch"
        )
    judged = Judged(received=count)
    rows = judged.rows
    row_index = judged.row_index
    rejected = judged.rejected
    seen: dict[str, int] = {}
    max_bytes = limits.max_event_bytes
    dumps = orjson.dumps
    default_time_s = received_ms / 1000
    known_types: set[str] = set()
    flat = _CONTAINERS.isdisjoint
    fromhex = bytes.fromhex
    uuid4 = uuid.uuid4
    for index, raw in enumerate(raw_events):
        # Each check has a fast path for the common, valid case; the slow helpers only run
        # to raise with a precise reason.
        try:
            if type(raw) is not dict:
                if isinstance(raw, _BadLine):
                    raise ValueError(raw.reason)
                raise ValueError(f"an event must be a JSON object, not {_json_kind(raw)}")
            if not raw.keys() <= ALLOWED_FIELDS:
                unknown = sorted(raw.keys() - ALLOWED_FIELDS)
                raise ValueError(f"unknown field(s) {', '.join(unknown)}; allowed: {_ALLOWED_LIST}")
            name = raw.get("event_name")
            if type(name) is not str or not 0 < len(name) <= _MAX_TEXT:
                name = _text(name, "event_name", required=True)
            uid = raw.get("uid")
            if type(uid) is not str or not 0 < len(uid) <= _MAX_TEXT:
                uid = _text(uid, "uid", required=True)
            if "\x00" in name or "\x00" in uid:  # PostgreSQL text cannot hold it
                raise ValueError("event_name and uid must not contain the NUL character (\\u0000)")
            event_type = raw.get("event_type") or "USER_ACTION_EVENT"
            if type(event_type) is not str or event_type not in known_types:
                if type(event_type) is not str or not _EVENT_TYPE.fullmatch(event_type):
                    raise ValueError(
                        "event_type must be upper-case letters, digits and '_' (e.g. "
                        "USER_ACTION_EVENT or CAMPAIGN_EVENT)"
                    )
                known_types.add(event_type)
            code = raw.get("event_code")
            if type(code) is not str or not 0 < len(code) <= _MAX_TEXT:
                code = _text(code, "event_code") or name
            source = raw.get("event_source")
            if type(source) is not str or not 0 < len(source) <= _MAX_TEXT:
                source = _text(source, "event_source") or "API"
            event_uuid = raw.get("event_uuid")
            if event_uuid is None:
                generated = uuid4()
                event_uuid = str(generated)
                uuid_bytes = generated.bytes
            elif type(event_uuid) is not str or not _UUID.fullmatch(event_uuid):
                raise ValueError(
                    "event_uuid must be a UUID like 62045d15-8d5e-4cfd-ac49-5919bffb401d"
                )
            else:
                event_uuid = event_uuid.lower()
                # The stored key: 9x cheaper than uuid.UUID(text).bytes (the regex checked it).
                uuid_bytes = fromhex(event_uuid.replace("-", ""))
            event_time = raw.get("event_time")
            if type(event_time) is int and 0 <= event_time < _MAX_EPOCH_S:
                seconds: float = event_time
                json_time: float = event_time
            else:
                seconds = default_time_s if event_time is None else _event_seconds(event_time)
                json_time = int(seconds) if seconds == int(seconds) else round(seconds, 3)
            user_attributes = raw.get("user_attributes")
            if type(user_attributes) is not dict:
                user_attributes = _object(user_attributes, "user_attributes")
            event_attributes = raw.get("event_attributes")
            if type(event_attributes) is not dict:
                event_attributes = _object(event_attributes, "event_attributes")
            device_attributes = raw.get("device_attributes")
            if type(device_attributes) is not dict:
                device_attributes = _object(device_attributes, "device_attributes")
            # Flat maps (the usual case) pass the C-level test without a Python loop.
            if not (
                flat(map(type, user_attributes.values()))
                and flat(map(type, event_attributes.values()))
                and flat(map(type, device_attributes.values()))
            ):
                deep = _deep_reason(user_attributes, event_attributes, device_attributes)
                if deep:
                    raise ValueError(deep)
            # Field order of the seed-001 record: exports splice these bytes as they are.
            record: dict[str, Any] = {
                "uid": uid,
                "event_type": event_type,
                "event_code": code,
                "event_name": name,
                "user_attributes": user_attributes,
                "event_source": source,
                "event_attributes": event_attributes,
                "event_uuid": event_uuid,
                "event_time": json_time,
                "device_attributes": device_attributes,
            }
            email = raw.get("email_id")
            if email is not None:
                record["email_id"] = _text(email, "email_id")
        except ValueError as exc:
            rejected.append({"index": index, "reason": str(exc)})
            continue
        try:
            payload = dumps(record)
        except orjson.JSONEncodeError as exc:  # nothing known reaches here; never a 500
            rejected.append({"index": index, "reason": f"the event cannot be stored: {exc}"})
            continue
        if len(payload) > max_bytes:
            raise TooLarge(
                f"event at index {index} is {len(payload):,} bytes; the limit is "
                f"{max_bytes:,} bytes per event (SPILLWAY_MAX_EVENT_BYTES)"
            )
        first = seen.get(event_uuid)
        if first is not None:
            judged.duplicates.append(
                {
                    "index": index,
                    "event_uuid": event_uuid,
                    "reason": f"same event_uuid as index {first}",
                }
            )
            continue
        seen[event_uuid] = index
        rows.append((int(seconds * 1000), uuid_bytes, event_type, name, uid, payload))
        row_index.append(index)
    return judged


def _too_deep(attributes: dict[str, Any], levels: int = MAX_DEPTH - 1) -> bool:
    """True when objects and arrays nest more than ``levels`` deep (``attributes`` is level 1)."""
    stack: list[tuple[Any, int]] = [(attributes, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if type(node) is dict else node:
            kind = type(child)
            if kind is dict or kind is list:
                if depth >= levels:
                    return True
                stack.append((child, depth + 1))
    return False


def _deep_reason(*maps: dict[str, Any]) -> str:
    """Why an event with these attribute maps nests too deep, or "" when it does not."""
    for name, attributes in zip(_ATTRIBUTES, maps, strict=True):
        if _too_deep(attributes):
            return (
                f"{name} nest objects or arrays deeper than {MAX_DEPTH} levels (counting the "
                "event itself as one); flatten them, or send deeply nested data as a JSON string"
            )
    return ""


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _text(value: Any, name: str, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise ValueError(f"{name} is required")
        return ""
    if type(value) is not str:
        raise ValueError(f"{name} must be a string")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"{name} is longer than {_MAX_TEXT} characters")
    return value


def _object(value: Any, name: str) -> Any:
    if value is None:
        return {}
    if type(value) is not dict:
        raise ValueError(f"{name} must be a JSON object")
    return value


def _event_seconds(value: Any) -> float:
    """Epoch seconds from a number, a numeric string, or an ISO 8601 timestamp."""
    if type(value) is int or type(value) is float:
        seconds = float(value)
    elif type(value) is str:
        try:
            seconds = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    "event_time must be epoch seconds or ISO 8601 (e.g. 2026-11-23T10:15:00Z)"
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    else:
        raise ValueError("event_time must be epoch seconds or an ISO 8601 string")
    if not math.isfinite(seconds):
        raise ValueError("event_time must be a finite number of epoch seconds")
    if seconds < 0:
        raise ValueError("event_time must not be before 1970")
    if seconds >= _MAX_EPOCH_S:
        if type(value) is str and not value.replace(".", "", 1).isdigit():
            raise ValueError("event_time is too far in the future")
        raise ValueError("event_time looks like milliseconds; send epoch seconds")
    return seconds
