"""Stream record bodies: the seed-001 event record, or the JSON Pinpoint's event stream emitted.

``spillway`` records are spliced from the stored payload bytes like file exports (no JSON
work). ``pinpoint`` records are rebuilt per event, for consumers written against Pinpoint's
event stream (seed 002) that should keep working unchanged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from spillway.engine.records import RecordFrame, Selection, select
from spillway.store.streams import StoredEvent

RecordFormat = Literal["spillway", "pinpoint"]
PINPOINT_EVENT_VERSION = "3.1"


@dataclass(frozen=True, slots=True)
class StreamRecordEncoder:
    """Turns stored events into record bytes for one stream export."""

    format: RecordFormat
    app_name: str
    app_id: str
    selection: Selection

    def encode(self, event: StoredEvent) -> bytes:
        """The record's bytes, without a trailing newline."""
        payload = select(event.payload, self.selection)
        if self.format == "pinpoint":
            return pinpoint_record(orjson.loads(payload), event, self.app_name, self.app_id)
        frame = _frame(self.app_name, self.app_id, event.received_at // 3_600_000)
        return frame.head + payload + frame.tail[:-1]


@functools.lru_cache(maxsize=64)
def _frame(app_name: str, app_id: str, hour: int) -> RecordFrame:
    """The record frame of an hour of arrivals (export_hour and export_day say when)."""
    return RecordFrame.for_run(app_name, app_id, hour * 3600)


def _split_attributes(values: dict[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """Pinpoint keeps string attributes and numeric metrics apart."""
    attributes: dict[str, str] = {}
    metrics: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            attributes[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            metrics[key] = value
        elif isinstance(value, str):
            attributes[key] = value
        else:
            attributes[key] = orjson.dumps(value).decode()
    return attributes, metrics


def _device(device: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    platform = device.get("platform")
    if platform is not None:
        version = device.get("platform_version", device.get("os_version"))
        out["platform"] = {"name": str(platform).lower(), "version": version}
    for key in ("make", "model"):
        if key in device:
            out[key] = device[key]
    if "locale" in device:
        out["locale"] = {"code": device["locale"]}
    return out


def pinpoint_record(
    event: dict[str, Any], stored: StoredEvent, app_name: str, app_id: str
) -> bytes:
    """One event in the shape of Pinpoint's event stream."""
    attributes, metrics = _split_attributes(event.get("event_attributes") or {})
    device = event.get("device_attributes") or {}
    event_time = event.get("event_time")
    timestamp = int(float(event_time) * 1000) if event_time is not None else stored.received_at
    user_attributes = {
        key: value if isinstance(value, list) else [str(value)]
        for key, value in (event.get("user_attributes") or {}).items()
    }
    # An event sent through the Pinpoint-compatible PutEvents keeps its app, session and
    # endpoint as Pinpoint's stream carries them (api/pinpoint/events.py stores them so).
    application, session, endpoint = (
        _map(device.get(k)) for k in ("application", "session", "endpoint")
    )
    record: dict[str, Any] = {
        "event_type": event.get("event_name"),
        "event_timestamp": timestamp,
        "arrival_timestamp": stored.received_at,
        "event_version": PINPOINT_EVENT_VERSION,
        "application": {"title": app_name, "sdk": {}, **application, "app_id": app_id},
        "client": {"client_id": device.get("device_id", stored.uid)},
        "device": _device(device),
        "session": dict(session),
        "attributes": {
            **attributes,
            "event_uuid": stored.event_uuid,
            "spillway_event_type": event.get("event_type", ""),
        },
        "metrics": metrics,
        "endpoint": {
            **endpoint,
            "Id": device.get("device_id", stored.uid),
            "User": {"UserId": stored.uid, "UserAttributes": user_attributes},
        },
    }
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:
        # An event stored before ingest limited nesting can sit a level or two deeper here than
        # in the event, past the encoder's limit: send its nested values as JSON text instead
        # of stalling the stream on it.
        record["device"] = _device({key: _text(value) for key, value in device.items()})
        record["endpoint"]["User"]["UserAttributes"] = {
            key: [_text(item) for item in values] for key, values in user_attributes.items()
        }
        return orjson.dumps(record)


def _map(value: Any) -> dict[str, Any]:
    """A stored map, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> Any:
    """A scalar as it is, an object or array as its JSON text."""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value
