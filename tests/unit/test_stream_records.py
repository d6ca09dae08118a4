"""Stream records from events stored before ingest limited nesting never stall a stream."""

from __future__ import annotations

from typing import Any

import orjson

from spillway.engine.records import Selection
from spillway.engine.stream_records import StreamRecordEncoder
from spillway.store.streams import StoredEvent


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def stored(payload: dict[str, Any]) -> StoredEvent:
    return StoredEvent(1, "u1", "62045d15-8d5e-4cfd-ac49-5919bffb401d", 1_763_856_000_000,
                       orjson.dumps(payload))  # fmt: skip


def test_pinpoint_record_of_an_event_nested_to_the_encoders_limit() -> None:
    # Ingest used to accept attributes nested until the event reached orjson's 254 levels;
    # Pinpoint's shape puts user attributes two levels deeper and the device locale one.
    deep = nested(250)
    event = {
        "uid": "u1",
        "event_name": "n",
        "event_type": "USER_ACTION_EVENT",
        "user_attributes": {"plan": [deep]},
        "device_attributes": {"locale": deep, "platform": "ANDROID", "make": "x"},
        "event_attributes": {"a": deep},
    }
    record = orjson.loads(
        StreamRecordEncoder("pinpoint", "app", "app-id", Selection()).encode(stored(event))
    )
    assert record["endpoint"]["User"]["UserAttributes"]["plan"] == [orjson.dumps(deep).decode()]
    assert record["device"]["locale"]["code"] == orjson.dumps(deep).decode()
    assert record["device"]["platform"]["name"] == "android"
    assert record["attributes"]["a"] == orjson.dumps(deep).decode()


def test_ordinary_pinpoint_records_are_unchanged() -> None:
    event = {"uid": "u1", "event_name": "n", "user_attributes": {"plan": ["pro"], "n": 3},
             "device_attributes": {"locale": "en_US"}}  # fmt: skip
    record = orjson.loads(
        StreamRecordEncoder("pinpoint", "a", "b", Selection()).encode(stored(event))
    )
    assert record["endpoint"]["User"]["UserAttributes"] == {"plan": ["pro"], "n": ["3"]}
    assert record["device"]["locale"] == {"code": "en_US"}
