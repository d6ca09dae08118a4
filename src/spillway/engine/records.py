"""Export records in the shape of seed 001, assembled from stored payload bytes.

The stored payload already is the ``event`` object, so a record is three byte strings joined:
no per-event JSON work unless attributes are filtered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from spillway.model import ExportSettings


@dataclass(frozen=True, slots=True)
class Selection:
    """Which attributes go out with each event."""

    user_attributes: str | list[str] = "all"  # "all", "none" or a list of names
    device_attributes: bool = True

    @classmethod
    def of(cls, settings: ExportSettings) -> Selection:
        """What an export's settings keep of each event."""
        wanted = settings.user_attributes
        return cls(wanted if isinstance(wanted, str) else list(wanted), settings.device_attributes)

    @property
    def passthrough(self) -> bool:
        """True when the payload goes out byte for byte."""
        return self.user_attributes == "all" and self.device_attributes


@dataclass(frozen=True, slots=True)
class RecordFrame:
    """The bytes around each event: fixed for a whole run."""

    head: bytes
    tail: bytes

    @property
    def between(self) -> bytes:
        """What goes between two payloads: one record's tail and the next one's head."""
        return self.tail + self.head

    @classmethod
    def for_run(cls, app_name: str, db_name: str, window_end: int) -> RecordFrame:
        """Frame with the run's export hour and day (UTC, from the window end)."""
        moment = time.gmtime(window_end)
        head = (
            b'{"app_name":'
            + orjson.dumps(app_name)
            + b',"export_hour":'
            + orjson.dumps(str(moment.tm_hour))
            + b',"db_name":'
            + orjson.dumps(db_name)
            + b',"event":'
        )
        tail = b',"export_day":' + orjson.dumps(time.strftime("%Y-%m-%d", moment)) + b"}\n"
        return cls(head, tail)


def select(payload: bytes, selection: Selection) -> bytes:
    """Apply the attribute selection to one stored event."""
    if selection.passthrough:
        return payload
    event: dict[str, Any] = orjson.loads(payload)
    wanted = selection.user_attributes
    if wanted == "none":
        event["user_attributes"] = {}
    elif isinstance(wanted, list):
        attributes = event.get("user_attributes") or {}
        event["user_attributes"] = {k: attributes[k] for k in wanted if k in attributes}
    if not selection.device_attributes:
        event["device_attributes"] = {}
    return orjson.dumps(event)


def jsonl(payloads: Sequence[bytes], frame: RecordFrame, selection: Selection) -> bytes:
    """Many records as JSON lines, in one join (records sit between identical frames)."""
    if not payloads:
        return b""
    if not selection.passthrough:
        payloads = [select(payload, selection) for payload in payloads]
    return b"".join((frame.head, frame.between.join(payloads), frame.tail))
