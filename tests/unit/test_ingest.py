"""Unit tests of the ingest hot path: body decoding, parsing and judging of events."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spillway.api.errors import answer_for
from spillway.errors import InputError, TooLarge
from spillway.ingest import (
    ALLOWED_FIELDS,
    MAX_DEPTH,
    RECORD_FIELDS,
    Judged,
    Limits,
    decode_body,
    judge,
    parse_body,
)

LIMITS = Limits(max_request_bytes=1_000_000, max_events_per_request=100, max_event_bytes=10_000)
# 2025-11-23T10:15:00.123Z, when the test "request" arrived.
RECEIVED_MS = int(datetime(2025, 11, 23, 10, 15, tzinfo=UTC).timestamp()) * 1000 + 123
UUID_A = "62045d15-8d5e-4cfd-ac49-5919bffb401d"
UUID_B = "0b7c6a3e-1f2d-4e5a-9b8c-7d6e5f4a3b2c"
SEED_001_ORDER = [
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
]


def event(**fields: Any) -> dict[str, Any]:
    """A minimal valid event, with ``fields`` added or overriding."""
    return {"uid": "user-1", "event_name": "app_open", **fields}


def judge_one(raw: Any, limits: Limits = LIMITS) -> Judged:
    return judge([raw], RECEIVED_MS, limits)


def accepted_payload(raw: dict[str, Any]) -> dict[str, Any]:
    """Judge one event that must be accepted, and return its stored JSON payload."""
    judged = judge_one(raw)
    assert judged.rejected == [], judged.rejected
    assert len(judged.rows) == 1
    payload: dict[str, Any] = orjson.loads(judged.rows[0][5])
    return payload


def rejection_reason(raw: Any) -> str:
    """Judge one event that must be rejected, and return the reason given."""
    judged = judge_one(raw)
    assert judged.rows == []
    assert len(judged.rejected) == 1
    assert judged.rejected[0]["index"] == 0
    reason: str = judged.rejected[0]["reason"]
    return reason


# --- parse_body ---------------------------------------------------------------------------


def test_parse_body_accepts_a_json_array() -> None:
    body = json.dumps([event(), event(uid="user-2")]).encode()
    assert parse_body(body, "application/json") == [event(), event(uid="user-2")]


def test_parse_body_accepts_an_events_envelope() -> None:
    body = json.dumps({"events": [event(), event(uid="user-2")]}).encode()
    assert parse_body(body, "application/json; charset=utf-8") == [event(), event(uid="user-2")]


def test_parse_body_treats_a_lone_object_as_one_event() -> None:
    assert parse_body(json.dumps(event()).encode(), "application/json") == [event()]


def test_parse_body_defaults_to_json_without_a_content_type() -> None:
    assert parse_body(json.dumps([event()]).encode(), None) == [event()]


def test_parse_body_ndjson_bad_line_becomes_a_rejection_at_its_index() -> None:
    body = (
        json.dumps(event(uid="a")).encode()
        + b"\n"
        + b"{not json at all\n"
        + b"\n"  # blank lines are skipped, not counted
        + json.dumps(event(uid="c")).encode()
        + b"\n"
    )
    raw = parse_body(body, "application/x-ndjson")
    assert len(raw) == 3

    judged = judge(raw, RECEIVED_MS, LIMITS)
    assert judged.received == 3
    assert judged.row_index == [0, 2]
    assert [row[4] for row in judged.rows] == ["a", "c"]
    assert len(judged.rejected) == 1
    assert judged.rejected[0]["index"] == 1
    assert "not valid JSON" in judged.rejected[0]["reason"]


def test_parse_body_json_seq_strips_record_separators() -> None:
    body = b"\x1e" + json.dumps(event(uid="a")).encode() + b"\n"
    body += b"\x1e" + json.dumps(event(uid="b")).encode() + b"\n"
    judged = judge(parse_body(body, "application/json-seq"), RECEIVED_MS, LIMITS)
    assert judged.rejected == []
    assert [row[4] for row in judged.rows] == ["a", "b"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_parse_body_rejects_unsupported_content_type_with_415(content_type: str) -> None:
    with pytest.raises(InputError) as info:
        parse_body(json.dumps([event()]).encode(), content_type)
    assert answer_for(info.value).status == 415
    assert content_type in str(info.value)
    assert "application/x-ndjson" in str(info.value)  # tells the caller what would work


@pytest.mark.parametrize("body", [b"{garbage", b"", b"[1, 2,", b"\xff\xfe"])
def test_parse_body_rejects_invalid_json_with_400(body: bytes) -> None:
    with pytest.raises(InputError) as info:
        parse_body(body, "application/json")
    assert answer_for(info.value).status == 400
    assert "not valid JSON" in str(info.value)


@pytest.mark.parametrize("document", [{"events": 5}, {"events": None}, {"events": {"uid": "x"}}])
def test_parse_body_rejects_events_that_is_not_an_array(document: dict[str, Any]) -> None:
    with pytest.raises(InputError) as info:
        parse_body(json.dumps(document).encode(), "application/json")
    assert answer_for(info.value).status == 400
    assert '"events" must be a JSON array' in str(info.value)


@pytest.mark.parametrize("document", [5, "text", None, True])
def test_parse_body_rejects_a_scalar_document(document: Any) -> None:
    with pytest.raises(InputError) as info:
        parse_body(json.dumps(document).encode(), "application/json")
    assert answer_for(info.value).status == 400


# --- decode_body --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "x-gzip", " gzip "])
def test_decode_body_gzip_roundtrip(encoding: str) -> None:
    body = json.dumps([event(uid=f"u{i}") for i in range(50)]).encode()
    assert decode_body(gzip.compress(body), encoding, LIMITS) == body


@pytest.mark.parametrize("encoding", [None, "", "identity"])
def test_decode_body_identity_returns_the_body_untouched(encoding: str | None) -> None:
    assert decode_body(b"[1,2,3]", encoding, LIMITS) == b"[1,2,3]"


def test_decode_body_truncated_gzip_is_a_400_that_says_truncated() -> None:
    compressed = gzip.compress(json.dumps([event()] * 20).encode())
    with pytest.raises(InputError) as info:
        decode_body(compressed[: len(compressed) // 2], "gzip", LIMITS)
    assert answer_for(info.value).status == 400
    assert "truncated" in str(info.value)


def test_decode_body_corrupt_gzip_is_a_400() -> None:
    with pytest.raises(InputError) as info:
        decode_body(b"this is not gzip at all", "gzip", LIMITS)
    assert answer_for(info.value).status == 400
    assert "gzip" in str(info.value)


def test_decode_body_gzip_bomb_is_refused_with_413_naming_the_limit() -> None:
    bomb = gzip.compress(bytes(50 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000  # small on the wire, 50 MB inflated
    small = Limits(max_request_bytes=64 * 1024, max_events_per_request=100, max_event_bytes=1000)
    with pytest.raises(TooLarge) as info:
        decode_body(bomb, "gzip", small)
    assert answer_for(info.value).status == 413
    assert "65,536" in str(info.value)
    assert "SPILLWAY_MAX_REQUEST_BYTES" in str(info.value)


def test_decode_body_accepts_a_body_exactly_at_the_limit() -> None:
    limits = Limits(max_request_bytes=4096, max_events_per_request=100, max_event_bytes=1000)
    body = b" " * 4096
    assert decode_body(gzip.compress(body), "gzip", limits) == body
    with pytest.raises(TooLarge):
        decode_body(gzip.compress(body + b" "), "gzip", limits)


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd"])
def test_decode_body_unsupported_encoding_is_415(encoding: str) -> None:
    with pytest.raises(InputError) as info:
        decode_body(b"whatever", encoding, LIMITS)
    assert answer_for(info.value).status == 415
    assert repr(encoding) in str(info.value)


# --- judge: defaults and normalisation ----------------------------------------------------


def test_judge_fills_defaults() -> None:
    judged = judge_one(event())
    assert judged.rejected == []
    event_time_ms, event_uuid, event_type, name, uid, payload = judged.rows[0]
    record = orjson.loads(payload)

    assert record["event_type"] == event_type == "USER_ACTION_EVENT"
    assert record["event_code"] == "app_open"  # event_code defaults to event_name
    assert record["event_source"] == "API"
    assert record["user_attributes"] == {}
    assert record["event_attributes"] == {}
    assert record["device_attributes"] == {}
    assert "email_id" not in record
    # A fresh, canonical, random uuid, the same in the row (its 16 bytes) and in the payload.
    assert record["event_uuid"] == str(uuid.UUID(bytes=event_uuid))
    assert str(uuid.UUID(record["event_uuid"])) == record["event_uuid"]
    assert uuid.UUID(bytes=event_uuid).version == 4
    # event_time defaults to when the request was received.
    assert event_time_ms == RECEIVED_MS
    assert record["event_time"] == RECEIVED_MS / 1000
    assert (name, uid) == ("app_open", "user-1")


def test_judge_generates_a_different_uuid_for_each_event() -> None:
    judged = judge([event(), event(), event()], RECEIVED_MS, LIMITS)
    assert len({row[1] for row in judged.rows}) == 3
    assert judged.duplicates == []


def test_judge_keeps_given_fields() -> None:
    raw = event(
        event_type="CAMPAIGN_EVENT",
        event_code="open-code",
        event_source="ios-sdk",
        event_uuid=UUID_A,
        event_time=1_700_000_000,
        user_attributes={"plan": "pro"},
        event_attributes={"screen": "home", "n": 3},
        device_attributes={"os": "iOS"},
    )
    record = accepted_payload(raw)
    assert record["event_type"] == "CAMPAIGN_EVENT"
    assert record["event_code"] == "open-code"
    assert record["event_source"] == "ios-sdk"
    assert record["event_uuid"] == UUID_A
    assert record["event_time"] == 1_700_000_000
    assert record["user_attributes"] == {"plan": "pro"}
    assert record["event_attributes"] == {"screen": "home", "n": 3}
    assert record["device_attributes"] == {"os": "iOS"}


def test_judge_keeps_email_id() -> None:
    record = accepted_payload(event(email_id="someone@example.com"))
    assert record["email_id"] == "someone@example.com"


def test_judge_uppercase_uuid_is_normalised_to_lowercase() -> None:
    judged = judge_one(event(event_uuid=UUID_A.upper()))
    assert judged.rows[0][1] == uuid.UUID(UUID_A).bytes
    assert orjson.loads(judged.rows[0][5])["event_uuid"] == UUID_A


def test_judge_payload_is_json_in_seed_001_field_order() -> None:
    raw = {
        # Deliberately scrambled input order.
        "email_id": "a@example.com",
        "device_attributes": {"os": "android"},
        "event_time": 1_700_000_000,
        "event_uuid": UUID_A,
        "event_attributes": {"k": "v"},
        "event_source": "web",
        "user_attributes": {"tier": "gold"},
        "event_name": "purchase",
        "event_code": "P1",
        "event_type": "USER_ACTION_EVENT",
        "uid": "user-9",
    }
    payload = judge_one(raw).rows[0][5]
    assert list(orjson.loads(payload)) == [*SEED_001_ORDER, "email_id"]
    assert list(orjson.loads(payload)) == list(RECORD_FIELDS)  # what the DDL declares
    assert payload == (
        b'{"uid":"user-9","event_type":"USER_ACTION_EVENT","event_code":"P1",'
        b'"event_name":"purchase","user_attributes":{"tier":"gold"},"event_source":"web",'
        b'"event_attributes":{"k":"v"},"event_uuid":"' + UUID_A.encode() + b'",'
        b'"event_time":1700000000,"device_attributes":{"os":"android"},'
        b'"email_id":"a@example.com"}'
    )


def test_judge_payload_without_email_has_seed_001_order() -> None:
    payload = judge_one(event()).rows[0][5]
    assert list(orjson.loads(payload)) == SEED_001_ORDER


def test_judge_row_columns_match_the_event() -> None:
    judged = judge_one(event(event_uuid=UUID_A, event_time=1_700_000_000, event_type="X_EVENT"))
    row = (1_700_000_000_000, uuid.UUID(UUID_A).bytes, "X_EVENT", "app_open", "user-1")
    assert judged.rows[0][:5] == row


# --- judge: event_time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("2026-11-23T10:15:00Z", 1_795_428_900_000),
        ("2026-11-23T10:15:00.250Z", 1_795_428_900_250),
        ("2026-11-23T11:15:00+01:00", 1_795_428_900_000),
        ("2026-11-23T05:15:00-05:00", 1_795_428_900_000),
        ("2026-11-23T10:15:00", 1_795_428_900_000),  # naive: taken as UTC
        ("1795428900", 1_795_428_900_000),  # numeric string
        ("1795428900.5", 1_795_428_900_500),
        (1_795_428_900, 1_795_428_900_000),
        (1_795_428_900.25, 1_795_428_900_250),
        (0, 0),
    ],
)
def test_judge_event_time_formats(value: Any, expected_ms: int) -> None:
    judged = judge_one(event(event_time=value))
    assert judged.rejected == []
    assert judged.rows[0][0] == expected_ms
    assert orjson.loads(judged.rows[0][5])["event_time"] * 1000 == pytest.approx(expected_ms)


def test_judge_event_time_in_payload_is_epoch_seconds_even_for_iso_input() -> None:
    record = accepted_payload(event(event_time="2026-11-23T10:15:00Z"))
    assert record["event_time"] == 1_795_428_900
    assert isinstance(record["event_time"], int)


@pytest.mark.parametrize("value", [1_795_428_900_000, "1795428900000", 1_795_428_900_000.0])
def test_judge_rejects_millisecond_epochs(value: Any) -> None:
    reason = rejection_reason(event(event_time=value))
    assert "milliseconds" in reason


@pytest.mark.parametrize("value", [-1, "-5", "1969-12-31T23:59:59Z"])
def test_judge_rejects_times_before_1970(value: Any) -> None:
    assert "1970" in rejection_reason(event(event_time=value))


@pytest.mark.parametrize("value", ["yesterday", "23/11/2026", True, [1], {"t": 1}])
def test_judge_rejects_unreadable_event_time(value: Any) -> None:
    reason = rejection_reason(event(event_time=value))
    assert reason.startswith("event_time must be epoch seconds")


# --- judge: rejections by index -----------------------------------------------------------


def test_judge_reports_missing_required_fields_by_index() -> None:
    raw = [
        event(),
        {"event_name": "no_uid"},
        {"uid": "no-name"},
        event(uid=""),
        event(event_name=None),
        event(),
    ]
    judged = judge(raw, RECEIVED_MS, LIMITS)
    assert judged.row_index == [0, 5]
    assert judged.rejected == [
        {"index": 1, "reason": "uid is required"},
        {"index": 2, "reason": "event_name is required"},
        {"index": 3, "reason": "uid is required"},
        {"index": 4, "reason": "event_name is required"},
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("uid", 42, "uid must be a string"),
        ("event_name", ["x"], "event_name must be a string"),
        ("event_code", 7, "event_code must be a string"),
        ("event_source", {"a": 1}, "event_source must be a string"),
        ("email_id", 5, "email_id must be a string"),
        ("uid", "u" * 257, "uid is longer than 256 characters"),
    ],
)
def test_judge_rejects_bad_text_fields(field: str, value: Any, reason: str) -> None:
    assert rejection_reason(event(**{field: value})) == reason


def test_judge_accepts_text_at_the_length_limit() -> None:
    assert accepted_payload(event(uid="u" * 256))["uid"] == "u" * 256


def test_judge_rejects_unknown_fields_naming_them() -> None:
    reason = rejection_reason(event(userId="x", eventTime=1))
    assert "eventTime" in reason
    assert "userId" in reason
    assert "allowed:" in reason


@pytest.mark.parametrize(
    "value",
    ["not-a-uuid", UUID_A[:-1], UUID_A + "0", UUID_A.replace("-", ""), 12345, "{" + UUID_A + "}"],
)
def test_judge_rejects_bad_uuids(value: Any) -> None:
    assert "event_uuid must be a UUID" in rejection_reason(event(event_uuid=value))


@pytest.mark.parametrize("value", ["user_action", "Purchase", "A-B", 5, "A" * 65])
def test_judge_rejects_bad_event_types(value: Any) -> None:
    assert "event_type must be upper-case" in rejection_reason(event(event_type=value))


@pytest.mark.parametrize("value", [["USER_ACTION_EVENT"], {"type": "X"}])
def test_judge_rejects_container_event_type(value: Any) -> None:
    judged = judge([event(), event(event_type=value)], RECEIVED_MS, LIMITS)
    assert judged.row_index == [0]
    assert judged.rejected[0]["index"] == 1
    assert "event_type must be upper-case" in judged.rejected[0]["reason"]


@pytest.mark.parametrize("field", ["user_attributes", "event_attributes", "device_attributes"])
@pytest.mark.parametrize("value", [["a"], "a", 1, True])
def test_judge_attributes_must_be_objects(field: str, value: Any) -> None:
    assert rejection_reason(event(**{field: value})) == f"{field} must be a JSON object"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(["a"], "an array"), ("a", "a string"), (None, "null"), (True, "a boolean"), (3, "a number")],
)
def test_judge_rejects_non_object_events(raw: Any, kind: str) -> None:
    assert rejection_reason(raw) == f"an event must be a JSON object, not {kind}"


def test_judge_duplicate_uuid_in_one_batch_points_at_the_first() -> None:
    raw = [
        event(event_uuid=UUID_A),
        event(event_uuid=UUID_B),
        event(event_uuid=UUID_A.upper()),  # same uuid, other case
        event(event_uuid=UUID_A),
    ]
    judged = judge(raw, RECEIVED_MS, LIMITS)
    assert judged.row_index == [0, 1]
    assert judged.duplicates == [
        {"index": 2, "event_uuid": UUID_A, "reason": "same event_uuid as index 0"},
        {"index": 3, "event_uuid": UUID_A, "reason": "same event_uuid as index 0"},
    ]


def test_judge_rejected_event_does_not_claim_its_uuid() -> None:
    raw = [event(event_uuid=UUID_A, uid=""), event(event_uuid=UUID_A)]
    judged = judge(raw, RECEIVED_MS, LIMITS)
    assert judged.row_index == [1]
    assert judged.duplicates == []
    assert [item["index"] for item in judged.rejected] == [0]


# --- judge: limits ------------------------------------------------------------------------


def test_judge_refuses_too_many_events_naming_the_limit() -> None:
    limits = Limits(max_request_bytes=1_000_000, max_events_per_request=3, max_event_bytes=1000)
    assert len(judge([event()] * 3, RECEIVED_MS, limits).rows) == 3
    with pytest.raises(TooLarge) as info:
        judge([event()] * 4, RECEIVED_MS, limits)
    assert answer_for(info.value).status == 413
    assert "the limit is 3" in str(info.value)
    assert "SPILLWAY_MAX_EVENTS_PER_REQUEST" in str(info.value)


def test_judge_refuses_one_oversized_event_naming_index_and_limit() -> None:
    limits = Limits(max_request_bytes=1_000_000, max_events_per_request=10, max_event_bytes=1000)
    raw = [event(), event(event_attributes={"blob": "x" * 2000}), event()]
    with pytest.raises(TooLarge) as info:
        judge(raw, RECEIVED_MS, limits)
    message = str(info.value)
    assert answer_for(info.value).status == 413
    assert "index 1" in message
    assert "1,000 bytes" in message
    assert "SPILLWAY_MAX_EVENT_BYTES" in message


def test_judge_empty_batch_is_an_input_error() -> None:
    with pytest.raises(InputError) as info:
        judge([], RECEIVED_MS, LIMITS)
    assert answer_for(info.value).status == 400
    assert "no events" in str(info.value)


# --- judge: nesting depth -----------------------------------------------------------------


def nested(levels: int, leaf: Any = 1) -> Any:
    """``levels`` arrays and objects inside each other (alternating), around ``leaf``."""
    value = leaf
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("field", ["event_attributes", "user_attributes", "device_attributes"])
def test_judge_accepts_nesting_up_to_max_depth(field: str) -> None:
    # The event is level 1, the attribute map level 2: MAX_DEPTH - 2 levels fit inside it.
    payload = accepted_payload(event(**{field: {"x": nested(MAX_DEPTH - 2)}}))
    assert payload[field] == {"x": nested(MAX_DEPTH - 2)}


@pytest.mark.parametrize("field", ["event_attributes", "user_attributes", "device_attributes"])
@pytest.mark.parametrize("arrays", [MAX_DEPTH - 1, 253, 600, 1020])
def test_judge_rejects_deeper_nesting_per_event_naming_the_limit(field: str, arrays: int) -> None:
    # 253 and more once passed judging and then failed to encode (orjson stops at 254): a 500
    # for the whole batch. Now it is this event's rejection, with what to do instead.
    deep = "[" * arrays + "1" + "]" * arrays  # the event and its map add two levels
    body = '[{"uid":"u","event_name":"n"},{"uid":"u","event_name":"n","%s":{"x":%s}}]'
    raw = parse_body((body % (field, deep)).encode(), "application/json")
    judged = judge(raw, RECEIVED_MS, LIMITS)
    assert len(judged.rows) == 1
    assert [r["index"] for r in judged.rejected] == [1]
    reason = judged.rejected[0]["reason"]
    assert field in reason and f"{MAX_DEPTH} levels" in reason, reason


def test_judge_deep_ndjson_line_is_rejected_by_index() -> None:
    deep = b'{"uid":"u","event_name":"n","event_attributes":{"x":' + b"[" * 300 + b"]" * 300 + b"}}"
    body = b'{"uid":"u","event_name":"n"}\n' + deep + b"\n"
    judged = judge(parse_body(body, "application/x-ndjson"), RECEIVED_MS, LIMITS)
    assert len(judged.rows) == 1
    assert [r["index"] for r in judged.rejected] == [1]


# --- judge: property over arbitrary JSON --------------------------------------------------

_POOL_UUIDS = [UUID_A, UUID_A.upper(), UUID_B]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
_hashable_json = _scalars
_offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))


def _event_like(event_types: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with (mostly) allowed keys and plausible or arbitrary values."""
    text = st.text(min_size=1, max_size=8) | json_values
    attributes = st.dictionaries(st.text(max_size=5), json_values, max_size=3) | json_values
    values: dict[str, st.SearchStrategy[Any]] = {
        "uid": text,
        "event_name": text,
        "event_code": text,
        "event_source": text,
        "email_id": text,
        "event_type": st.sampled_from(["USER_ACTION_EVENT", "CAMPAIGN_EVENT"]) | event_types,
        # A small pool (in both cases) so that duplicates within a batch are common.
        "event_uuid": st.sampled_from(_POOL_UUIDS) | st.uuids().map(str) | json_values,
        "event_time": st.one_of(
            st.integers(min_value=-(10**13), max_value=10**13),
            st.floats(allow_nan=False, allow_infinity=False),
            st.datetimes().map(datetime.isoformat),
            st.datetimes(timezones=st.builds(timezone, _offsets)).map(datetime.isoformat),
            json_values,
        ),
        "user_attributes": attributes,
        "event_attributes": attributes,
        "device_attributes": attributes,
    }
    assert set(values) == ALLOWED_FIELDS
    required = {name: values.pop(name) for name in ("uid", "event_name")}
    valid = st.fixed_dictionaries(
        {
            "uid": st.text(min_size=1, max_size=8),
            "event_name": st.text(min_size=1, max_size=8),
            "event_uuid": st.sampled_from(_POOL_UUIDS),
        },
        optional={"event_time": st.integers(0, 10**10), "event_attributes": attributes},
    )
    return st.one_of(
        valid,
        st.fixed_dictionaries(required, optional=values),
        st.dictionaries(st.sampled_from(sorted(ALLOWED_FIELDS)) | st.text(max_size=5), json_values),
    )


def _batches(event_types: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(_event_like(event_types) | json_values, max_size=25)


PROPERTY_LIMITS = Limits(max_request_bytes=10**7, max_events_per_request=20, max_event_bytes=2000)


def _check_judge_accounts_for_every_index(batch: list[Any]) -> None:
    # Go through the real parser so values are what a request body can actually hold.
    raw = parse_body(json.dumps(batch).encode(), "application/json")
    try:
        judged = judge(raw, RECEIVED_MS, PROPERTY_LIMITS)
    except (InputError, TooLarge):
        return
    assert judged.received == len(raw)
    assert len(judged.rows) == len(judged.row_index)
    indexes = (
        judged.row_index
        + [item["index"] for item in judged.rejected]
        + [item["index"] for item in judged.duplicates]
    )
    assert sorted(indexes) == list(range(len(raw)))
    assert len({row[1] for row in judged.rows}) == len(judged.rows)  # no uuid stored twice
    for row in judged.rows:
        record = orjson.loads(row[5])
        assert list(record)[:10] == SEED_001_ORDER
        assert uuid.UUID(record["event_uuid"]).bytes == row[1]  # the row holds its 16 bytes


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_batches(json_values))
@example(batch=[{"uid": "u", "event_name": "n", "event_type": ["X"]}])
def test_judge_on_arbitrary_json_only_raises_input_errors(batch: list[Any]) -> None:
    _check_judge_accounts_for_every_index(batch)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_batches(_hashable_json))
def test_judge_on_arbitrary_json_with_scalar_event_types(batch: list[Any]) -> None:
    """The same property without the known event_type bug, so it guards everything else."""
    _check_judge_accounts_for_every_index(batch)
