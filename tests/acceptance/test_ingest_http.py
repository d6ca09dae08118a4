"""``POST /api/v1/events`` against a real ``spillway serve``: what a sender sees."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.acceptance.conftest import (
    Credentials,
    Server,
    ServerFactory,
    auth,
    count_events,
    make_event,
    make_events,
    ndjson,
    stored_uuids,
)

EVENTS = "/api/v1/events"
JSON_TYPE = {"Content-Type": "application/json"}
DEFAULT_LIMIT = 10 * 1024 * 1024  # SPILLWAY_MAX_REQUEST_BYTES default


def post(server: Server, token: str, body: Any, **headers: str) -> httpx.Response:
    """POST a JSON document (or raw bytes) to the ingest endpoint."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return server.client.post(
        EVENTS, content=content, headers={**JSON_TYPE, **auth(token), **headers}
    )


def assert_json_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """The answer has ``status`` and the JSON error shape; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    message: str = body["message"]
    return message


# ---------------------------------------------------------------------------------------------
# A realistic batch: partial acceptance, then an exact retry


def test_batch_with_malformed_events_then_identical_retry(
    server: Server, creds: Credentials
) -> None:
    batch: list[Any] = make_events(1_000)
    del batch[10]["uid"]
    batch[500]["event_time"] = "yesterday-ish, around tea time"
    batch[999] = ["not", "an", "event", "object"]
    good = {e["event_uuid"] for i, e in enumerate(batch) if i not in (10, 500, 999)}
    before = count_events(server.data_dir, creds.project_id)

    first = post(server, creds.write_token, batch)

    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["received"] == 1_000
    assert answer["accepted"] == 997
    assert answer["duplicate"] == 0
    assert [r["index"] for r in answer["rejected"]] == [10, 500, 999]
    reasons = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert all(isinstance(reason, str) and reason for reason in reasons.values())
    assert "uid" in reasons[10]
    assert "event_time" in reasons[500]
    assert "object" in reasons[999]
    assert count_events(server.data_dir, creds.project_id) == before + 997
    assert good <= stored_uuids(server.data_dir, creds.project_id)

    # The sender retries the very same batch (e.g. it never saw the first answer).
    second = post(server, creds.write_token, batch)

    assert second.status_code == 200, second.text
    again = second.json()
    assert again["accepted"] == 0
    assert again["duplicate"] == 997
    assert {d["event_uuid"] for d in again["duplicates"]} == good
    assert [r["index"] for r in again["rejected"]] == [10, 500, 999]
    assert count_events(server.data_dir, creds.project_id) == before + 997


# ---------------------------------------------------------------------------------------------
# Body formats


def test_events_object_body_is_accepted(server: Server, creds: Credentials) -> None:
    events = make_events(25)
    response = post(server, creds.write_token, {"events": events})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 25
    assert {e["event_uuid"] for e in events} <= stored_uuids(server.data_dir, creds.project_id)


def test_ndjson_body_is_accepted(server: Server, creds: Credentials) -> None:
    events = make_events(30)
    response = post(
        server, creds.write_token, ndjson(events), **{"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 30
    assert {e["event_uuid"] for e in events} <= stored_uuids(server.data_dir, creds.project_id)


def test_ndjson_bad_line_is_rejected_by_index(server: Server, creds: Credentials) -> None:
    body = ndjson(make_events(2)) + b"{this is not json\n" + ndjson(make_events(1))
    response = post(server, creds.write_token, body, **{"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 3
    assert [r["index"] for r in answer["rejected"]] == [2]


def test_gzip_bodies_are_accepted(server: Server, creds: Credentials) -> None:
    array = make_events(40)
    response = post(
        server,
        creds.write_token,
        gzip.compress(json.dumps(array).encode()),
        **{"Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 40

    lines = make_events(15)
    response = post(
        server,
        creds.write_token,
        gzip.compress(ndjson(lines)),
        **{"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 15
    stored = stored_uuids(server.data_dir, creds.project_id)
    assert {e["event_uuid"] for e in array + lines} <= stored


# ---------------------------------------------------------------------------------------------
# Authentication and authorisation


def test_read_scoped_key_is_forbidden(server: Server, creds: Credentials) -> None:
    events = make_events(3)
    response = post(server, creds.read_token, events)
    message = assert_json_error(response, 403, "forbidden")
    assert "scope" in message
    assert not {e["event_uuid"] for e in events} & stored_uuids(server.data_dir, creds.project_id)


def test_wrong_secret_is_unauthorized(server: Server, creds: Credentials) -> None:
    token = f"{creds.write['key_id']}.{'x' * len(creds.write['secret'])}"
    response = post(server, token, make_events(1))
    assert_json_error(response, 401, "unauthorized")
    assert "bearer" in response.headers.get("www-authenticate", "").lower()


def test_missing_authorization_is_unauthorized(server: Server) -> None:
    response = server.client.post(
        EVENTS, content=json.dumps(make_events(1)).encode(), headers=JSON_TYPE
    )
    message = assert_json_error(response, 401, "unauthorized")
    assert "Authorization" in message


# ---------------------------------------------------------------------------------------------
# Bad bodies and limits


def test_garbage_body_is_400(server: Server, creds: Credentials) -> None:
    response = post(server, creds.write_token, b"\x00\xff{not json at all]]")
    assert_json_error(response, 400)


def test_text_plain_is_415(server: Server, creds: Credentials) -> None:
    response = post(
        server,
        creds.write_token,
        json.dumps(make_events(1)).encode(),
        **{"Content-Type": "text/plain"},
    )
    message = assert_json_error(response, 415)
    assert "text/plain" in message


def test_truncated_gzip_is_400(server: Server, creds: Credentials) -> None:
    whole = gzip.compress(json.dumps(make_events(50)).encode())
    response = post(
        server, creds.write_token, whole[: len(whole) // 2], **{"Content-Encoding": "gzip"}
    )
    message = assert_json_error(response, 400)
    assert "gzip" in message


def test_all_invalid_batch_is_400_with_rejections(server: Server, creds: Credentials) -> None:
    batch = [{"event_name": "no uid"}, 42, make_event(2, event_time="never")]
    response = post(server, creds.write_token, batch)
    assert_json_error(response, 400)
    answer = response.json()
    assert answer["accepted"] == 0
    assert [r["index"] for r in answer["rejected"]] == [0, 1, 2]
    assert all(r["reason"] for r in answer["rejected"])


def test_50_mb_body_is_413_and_the_server_survives(server: Server, creds: Credentials) -> None:
    body = b"[" + b" " * (50 * 1024 * 1024) + b"]"
    response = post(server, creds.write_token, body)
    message = assert_json_error(response, 413, "too_large")
    assert f"{DEFAULT_LIMIT:,}" in message

    # Without Content-Length (chunked), the limit must still hold while streaming.
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(50):
            yield b" " * (1024 * 1024)
        yield b"]"

    streamed = server.client.post(
        EVENTS, content=chunks(), headers={**JSON_TYPE, **auth(creds.write_token)}
    )
    message = assert_json_error(streamed, 413, "too_large")
    assert f"{DEFAULT_LIMIT:,}" in message

    assert server.alive(), server.log()
    assert server.client.get("/healthz").status_code == 200
    assert post(server, creds.write_token, make_events(1)).status_code == 200


# Tight limits need their own server.

SMALL_LIMITS = {
    "SPILLWAY_MAX_EVENTS_PER_REQUEST": "100",
    "SPILLWAY_MAX_EVENT_BYTES": "2048",
    "SPILLWAY_MAX_REQUEST_BYTES": "262144",
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Credentials]]:
    """A server with small limits, and credentials on it."""
    factory = ServerFactory(tmp_path_factory.mktemp("small"))
    try:
        srv = factory(extra_env=SMALL_LIMITS)
        yield srv, srv.credentials(read_key=False)
    finally:
        factory.stop_all()


def test_too_many_events_is_413(small: tuple[Server, Credentials]) -> None:
    srv, creds = small
    assert post(srv, creds.write_token, make_events(100)).status_code == 200
    before = count_events(srv.data_dir, creds.project_id)
    response = post(srv, creds.write_token, make_events(101))
    message = assert_json_error(response, 413, "too_large")
    assert "100" in message
    assert "SPILLWAY_MAX_EVENTS_PER_REQUEST" in message
    assert count_events(srv.data_dir, creds.project_id) == before


def test_oversized_event_is_413_naming_its_index(small: tuple[Server, Credentials]) -> None:
    srv, creds = small
    batch = make_events(10)
    batch[7]["event_attributes"]["notes"] = "x" * 4096
    before = count_events(srv.data_dir, creds.project_id)
    response = post(srv, creds.write_token, batch)
    message = assert_json_error(response, 413, "too_large")
    assert "index 7" in message
    assert "SPILLWAY_MAX_EVENT_BYTES" in message
    assert count_events(srv.data_dir, creds.project_id) == before


def test_gzip_bomb_is_413(small: tuple[Server, Credentials]) -> None:
    srv, creds = small
    # ~1 KB on the wire, 8 MB once inflated: the limit applies to the inflated size.
    bomb = gzip.compress(b"[" + b" " * (8 * 1024 * 1024) + b"]")
    assert len(bomb) < 262_144
    response = post(srv, creds.write_token, bomb, **{"Content-Encoding": "gzip"})
    message = assert_json_error(response, 413, "too_large")
    assert "262,144" in message
    assert srv.client.get("/healthz").status_code == 200


# ---------------------------------------------------------------------------------------------
# Never a 500, whatever arrives

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
field_names = st.sampled_from(
    [
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
        "events",
        "surprise",
    ]
)
field_values = st.one_of(
    json_values,
    st.sampled_from(
        [
            "62045d15-8D5E-4cfd-ac49-5919bffb401d",
            "USER_ACTION_EVENT",
            "2026-11-23T10:15:00Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "1e400",
            "-0",
            "99999999999999999999",
            1_763_856_000_123,
            "",
            "x" * 300,
        ]
    ),
)


@st.composite
def event_like(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with a few fields replaced by arbitrary values, added or dropped."""
    event: dict[str, Any] = {
        "event_uuid": str(draw(st.uuids())),
        "event_name": draw(st.sampled_from(["App Opened", "Purchase", "Überweisung ✓"])),
        "uid": draw(st.text(min_size=1, max_size=12)),
        "event_time": draw(st.integers(min_value=0, max_value=2_000_000_000)),
    }
    event.update(draw(st.dictionaries(field_names, field_values, max_size=3)))
    for name in draw(st.lists(st.sampled_from(sorted(event)), max_size=2)):
        event.pop(name, None)
    return event


documents = st.one_of(
    json_values,
    st.lists(st.one_of(event_like(), json_values), max_size=8),
    st.fixed_dictionaries({"events": st.lists(st.one_of(event_like(), json_values), max_size=8)}),
    event_like(),
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30
)
content_types = st.one_of(
    st.none(),
    st.just("application/json"),
    st.just("application/x-ndjson"),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "text/json",
            "application/vnd.spillway+json",
            "application/x-ndjson",
            "application/json-seq",
            "application/jsonl",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/octet-stream",
            ";;;",
        ]
    ),
    header_text,
)
encodings = st.one_of(
    st.none(),
    st.none(),
    st.just("gzip"),
    st.sampled_from(["gzip", "x-gzip", "identity", "br", "deflate", "GZIP"]),
    header_text,
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, str | None, str | None]:
    """A body with a content type and an encoding: mostly well-formed headers (so the events
    themselves get judged), sometimes arbitrary ones."""
    kind = draw(st.sampled_from(["json", "ndjson", "binary"]))
    if kind == "json":
        body = json.dumps(draw(documents)).encode()
    elif kind == "ndjson":
        lines = draw(st.lists(st.one_of(event_like(), json_values), max_size=8))
        body = b"\n".join(json.dumps(line).encode() for line in lines)
    else:
        body = draw(st.binary(max_size=2_000))
    if draw(st.integers(0, 9)) < 6:
        ndjson_type = "application/x-ndjson" if kind == "ndjson" else None
        content_type = ndjson_type or draw(st.sampled_from([None, "application/json"]))
        encoding = draw(st.sampled_from([None, None, "gzip"]))
    else:
        content_type = draw(content_types)
        encoding = draw(encodings)
    if encoding is not None and encoding.lower() in ("gzip", "x-gzip") and draw(st.integers(0, 3)):
        body = gzip.compress(body)
    return body, content_type, encoding


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sample=requests())
def test_arbitrary_bodies_never_cause_a_server_error(
    server: Server, creds: Credentials, sample: tuple[bytes, str | None, str | None]
) -> None:
    body, content_type, encoding = sample
    headers = auth(creds.write_token)
    if content_type is not None:
        headers["Content-Type"] = content_type
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    response = server.client.post(EVENTS, content=body, headers=headers)
    event(f"status {response.status_code}")
    assert response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    response.json()


# ---------------------------------------------------------------------------------------------
# Operations


def test_openapi_lists_the_ingest_endpoint(server: Server) -> None:
    response = server.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/api/v1/events"]


def accepted_total(server: Server) -> float:
    """``spillway_events_accepted_total`` from /metrics."""
    response = server.client.get("/metrics")
    assert response.status_code == 200
    found = re.search(r"^spillway_events_accepted_total (\S+)$", response.text, re.MULTILINE)
    assert found, response.text
    return float(found.group(1))


def test_metrics_count_accepted_events(server: Server, creds: Credentials) -> None:
    before = accepted_total(server)
    assert post(server, creds.write_token, make_events(12)).status_code == 200
    assert accepted_total(server) == before + 12


# ---------------------------------------------------------------------------------------------
# The same API on PostgreSQL


@pytest.mark.postgres
def test_postgres_batch_then_retry(pg_server: Server, pg_creds: Credentials) -> None:
    batch: list[Any] = make_events(300)
    batch[5]["event_type"] = "lower case is not allowed"
    batch[250] = None
    first = post(pg_server, pg_creds.write_token, batch)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 298
    assert [r["index"] for r in first.json()["rejected"]] == [5, 250]
    second = post(pg_server, pg_creds.write_token, batch)
    assert second.status_code == 200, second.text
    assert second.json()["accepted"] == 0
    assert second.json()["duplicate"] == 298


@pytest.mark.parametrize(
    "dialect",
    [
        "sqlite",
        pytest.param(
            "postgres",
            marks=[pytest.mark.postgres],
        ),
    ],
)
def test_nul_character_in_uid_does_not_fail_the_batch(
    dialect: str, request: pytest.FixtureRequest
) -> None:
    prefix = "" if dialect == "sqlite" else "pg_"
    srv: Server = request.getfixturevalue(prefix + "server")
    creds: Credentials = request.getfixturevalue(prefix + "creds")
    batch = make_events(3)
    batch[1]["uid"] = "user\u0000nul"
    with srv.fresh_client() as client:
        response = client.post(
            EVENTS,
            content=json.dumps(batch).encode(),
            headers={**JSON_TYPE, **auth(creds.write_token)},
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] + len(answer["rejected"]) == 3
    assert [r["index"] for r in answer["rejected"]] in ([], [1])


def test_server_log_has_no_tracebacks(server: Server) -> None:
    """Runs last in this module: nothing above made the server log an unhandled error."""
    log = server.log()
    assert "Traceback" not in log, log[-5000:]
