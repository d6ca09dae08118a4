"""GCS beyond the conformance suite: key parsing, the service-account path, the upload protocol."""

from __future__ import annotations

import base64
import gc
import json
import os
from collections.abc import Iterator
from typing import Any

import google.api_core.exceptions as api_errors
import google_crc32c
import pytest
import requests
from pydantic import ValidationError

from spillway import destinations as registry
from spillway.api.errors import answer_for
from spillway.destinations.base import (
    Check,
    CheckStatus,
    CredentialsRejected,
    DestinationError,
    Needs,
    Tenant,
    all_passed,
)
from spillway.destinations.gcs import checks as gcs_checks
from spillway.destinations.gcs import client as gcs_client
from spillway.destinations.gcs.client import CHUNK_MULTIPLE, chunk_size
from spillway.destinations.gcs.config import (
    Anonymous,
    GcsConfig,
    GcsCredentials,
    ServiceAccount,
    public_credentials,
)
from spillway.destinations.gcs.store import GcsStore
from spillway.errors import InputError, TransientError
from tests import server_gcs
from tests.integration.destinations.case_gcs import BROKEN_PEM, GcsWorld, key_json, new_pem
from tests.integration.destinations.policy import Policy
from tests.server_canned import HTML, MARKER, canned_server

PART = CHUNK_MULTIPLE
TENANT = Tenant("0" * 32, "acme", "spw-external-id")


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def parse_credentials(credentials: dict[str, Any]) -> GcsCredentials:
    parsed = registry.parse("gcs", {"bucket": "acme-exports"}, credentials).credentials
    assert isinstance(parsed, GcsCredentials)
    return parsed


@pytest.fixture(scope="module")
def token_url() -> Iterator[str]:
    """A local stand-in for Google's OAuth token endpoint."""
    with server_gcs.token_endpoint() as url:
        yield url


@pytest.fixture(scope="module")
def pem() -> str:
    """One RSA key for the module (generating one takes a moment)."""
    return new_pem()


# -- the service account key ------------------------------------------------------------------


def test_key_json_is_accepted_as_the_downloaded_text(pem: str) -> None:
    text = json.dumps(key_json(private_key=pem))
    parsed = parse_credentials({"mode": "service_account", "key_json": text})
    value = parsed.root
    assert isinstance(value, ServiceAccount)
    assert value.key_json.client_email.startswith("spillway-writer@")
    assert value.key_json.private_key.get_secret_value() == pem
    assert pem not in repr(parsed) and pem not in str(parsed)


def test_the_key_file_itself_is_accepted_as_credentials(pem: str) -> None:
    value = parse_credentials(key_json(private_key=pem)).root
    assert isinstance(value, ServiceAccount)


def test_credentials_survive_sealing_and_unsealing(pem: str) -> None:
    parsed = parse_credentials({"mode": "service_account", "key_json": key_json(private_key=pem)})
    dumped = parsed.model_dump(mode="python")
    dumped["key_json"]["private_key"] = dumped["key_json"]["private_key"].get_secret_value()
    again = parse_credentials(json.loads(json.dumps(dumped)))
    assert again == parsed


@pytest.mark.parametrize("missing", ["client_email", "private_key", "token_uri", "type"])
def test_key_without_a_field_is_refused_naming_it(pem: str, missing: str) -> None:
    key = key_json(private_key=pem)
    del key[missing]
    with pytest.raises(InputError) as caught:
        parse_credentials({"mode": "service_account", "key_json": json.dumps(key)})
    assert answer_for(caught.value).status == 422
    assert f"key_json.{missing}: Field required" in str(caught.value)


def test_key_that_is_not_json_is_refused_without_echoing_it() -> None:
    text = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETBODY'
    with pytest.raises(InputError) as caught:
        parse_credentials({"mode": "service_account", "key_json": text})
    assert "not valid JSON" in str(caught.value)
    assert "SECRETBODY" not in str(caught.value)


def test_a_persons_login_file_is_told_apart(pem: str) -> None:
    key = {**key_json(private_key=pem), "type": "authorized_user"}
    with pytest.raises(InputError) as caught:
        parse_credentials({"mode": "service_account", "key_json": key})
    assert "'authorized_user'" in str(caught.value)
    assert "gcloud auth application-default login" in str(caught.value)


def test_private_key_that_is_not_pem_is_refused_without_echoing_it() -> None:
    key = key_json(private_key="SECRETBODY-not-a-pem")
    with pytest.raises(InputError) as caught:
        parse_credentials({"mode": "service_account", "key_json": key})
    assert "key_json.private_key" in str(caught.value)
    assert "SECRETBODY" not in str(caught.value)


def test_doubly_escaped_newlines_in_the_key_are_repaired(pem: str) -> None:
    key = key_json(private_key=pem.replace("\n", "\\n"))
    value = parse_credentials({"mode": "service_account", "key_json": key}).root
    assert isinstance(value, ServiceAccount)
    assert value.key_json.private_key.get_secret_value() == pem


def test_unknown_mode_lists_the_modes() -> None:
    with pytest.raises(InputError) as caught:
        parse_credentials({"mode": "access_key"})
    assert "'service_account'" in str(caught.value) and "'anonymous'" in str(caught.value)


def test_public_credentials_show_who_and_never_the_private_key(pem: str) -> None:
    parsed = registry.parse(
        "gcs",
        {"bucket": "acme-exports"},
        {"mode": "service_account", "key_json": key_json(private_key=pem)},
    )
    shown = registry.public_credentials(parsed)
    assert shown["mode"] == "service_account"
    assert shown["client_email"] == "spillway-writer@spillway-test.iam.gserviceaccount.com"
    assert shown["private_key_id"] == "0123…4567"
    text = json.dumps(shown)
    assert "PRIVATE KEY" not in text
    assert not any(line in text for line in pem.splitlines()[1:-1])
    assert public_credentials(GcsCredentials(Anonymous())) == {"mode": "anonymous"}


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"bucket": "gs://acme-exports/daily"}, "use 'acme-exports', without gs://"),
        ({"bucket": "Acme_Exports"}, "not a valid Cloud Storage bucket name"),
        ({"bucket": "acme", "folder": "/daily/"}, "folder must not start or end"),
        ({"bucket": "acme", "project": "My Project"}, "not a project id"),
        ({"bucket": "acme", "endpoint_url": "localhost:9023"}, "http:// or https://"),
    ],
)
def test_config_mistakes_are_explained(config: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GcsConfig.model_validate(config)
    assert says in str(caught.value)


def test_registry_builds_a_gcs_store(gcs_emulator: str) -> None:
    parsed = registry.parse(
        "gcs",
        {"bucket": "acme-exports", "folder": "daily", "endpoint_url": gcs_emulator},
        {"mode": "anonymous"},
    )
    store = registry.build(parsed, Tenant("0" * 32, "p", "spw-external-id"))
    assert isinstance(store, GcsStore)
    assert store.folder == "daily"


def test_chunks_are_multiples_of_256_kib() -> None:
    assert chunk_size(1) == PART
    assert chunk_size(PART) == PART
    assert chunk_size(PART + 1) == 2 * PART
    assert chunk_size(8 * 1024 * 1024) == 8 * 1024 * 1024


# -- validation -------------------------------------------------------------------------------


def test_service_account_signs_in_and_validates_end_to_end(
    gcs_world: GcsWorld, token_url: str, pem: str
) -> None:
    key = ServiceAccount.model_validate(
        {"key_json": key_json(private_key=pem, token_uri=f"{token_url}/token")}
    )
    store = gcs_world.store(key)
    checks = by_name(store.validate(Needs(read=True, list=True, delete=True)))
    assert all_passed(list(checks.values())), [c.as_dict() for c in checks.values()]
    assert checks["credentials"].status is CheckStatus.PASSED
    assert "spillway-writer@" in checks["credentials"].message
    assert checks["bucket"].status is CheckStatus.PASSED
    assert "storage.objects.create" in checks["bucket"].message
    store.put_object("exports_events/signed.json", b"{}")
    assert gcs_world.raw_read("exports_events/signed.json") == b"{}"


def test_revoked_key_fails_credentials_with_googles_reason(
    gcs_world: GcsWorld, token_url: str, pem: str
) -> None:
    key = ServiceAccount.model_validate(
        {"key_json": key_json(private_key=pem, token_uri=f"{token_url}/revoked")}
    )
    checks = gcs_world.store(key).validate(Needs())
    assert checks[0].name == "credentials" and checks[0].status is CheckStatus.FAILED
    assert "Invalid JWT Signature" in checks[0].message
    assert "deleted or disabled" in checks[0].message
    assert all(c.status is CheckStatus.SKIPPED for c in checks[1:])


def test_unreachable_token_endpoint_fails_credentials(gcs_world: GcsWorld, pem: str) -> None:
    from tests.servers import allow_endpoint, free_port

    uri = f"http://127.0.0.1:{free_port()}/token"
    allow_endpoint(uri)  # listed, so the key is accepted; nothing listens there
    key = ServiceAccount.model_validate({"key_json": key_json(private_key=pem, token_uri=uri)})
    check = gcs_world.store(key).validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert f"cannot reach the token endpoint {uri}" in check.message


def test_damaged_private_key_fails_credentials_and_writes(gcs_world: GcsWorld) -> None:
    key = ServiceAccount.model_validate({"key_json": key_json(private_key=BROKEN_PEM)})
    store = gcs_world.store(key)
    check = store.validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert "cannot be loaded" in check.message and "download a new JSON key" in check.message
    assert "MIIE" not in check.message
    with pytest.raises(DestinationError, match="cannot be loaded"):
        store.put_object("exports_events/x.json", b"x")


def test_anonymous_is_only_for_an_emulator(gcs_world: GcsWorld) -> None:
    emulator = by_name(gcs_world.store(Anonymous()).validate(Needs()))
    assert emulator["credentials"].status is CheckStatus.SKIPPED
    cloud = GcsStore(GcsConfig(bucket=gcs_world.bucket), Anonymous())
    check = cloud.validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert "storage emulator" in check.message


class _HeldOnly:
    """A bucket whose testIamPermissions answers with the given permissions."""

    def __init__(self, held: list[str]) -> None:
        self.held = held

    def test_iam_permissions(self, permissions: list[str], **_: Any) -> list[str]:
        return [p for p in permissions if p in self.held]


def test_bucket_check_names_missing_permissions(
    gcs_world: GcsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = gcs_world.store()
    monkeypatch.setattr(store, "bucket", lambda: _HeldOnly(["storage.objects.create"]))
    check = by_name(store.validate(Needs(read=True, list=True)))["bucket"]
    assert check.status is CheckStatus.PASSED
    assert "without storage.objects.delete, a retried run cannot replace" in check.message
    assert "read-back verification needs storage.objects.get" in check.message
    assert "finding leftovers needs storage.objects.list" in check.message


# -- the upload protocol ----------------------------------------------------------------------


class Recorder:
    """Wraps the store's HTTP session: records requests, and can fail some on purpose."""

    def __init__(self, inner: Any, fail: set[int] | None = None, corrupt: bool = False) -> None:
        self.inner = inner
        self.fail = fail or set()  # numbers (from 1) of PUTs that fail with a connection error
        self.corrupt = corrupt  # flip a bit of the last part on its way
        self.calls: list[tuple[str, str, str]] = []
        self.hashes: list[str] = []

    def put(self, url: str, *, data: bytes, headers: dict[str, str], **kwargs: Any) -> Any:
        self.calls.append(("PUT", url, headers["Content-Range"]))
        if "X-Goog-Hash" in headers:
            self.hashes.append(headers["X-Goog-Hash"])
            if self.corrupt and data:
                data = bytes([data[0] ^ 1]) + data[1:]
        if len(self.calls) in self.fail:
            raise requests.ConnectionError("connection reset by peer (on purpose)")
        return self.inner.put(url, data=data, headers=headers, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        self.calls.append(("DELETE", url, ""))
        return self.inner.delete(url, **kwargs)

    def close(self) -> None:
        self.inner.close()


def recorded(store: GcsStore, fail: set[int] | None = None, corrupt: bool = False) -> Recorder:
    recorder = Recorder(store.http, fail, corrupt)
    store._http = recorder
    return recorder


def test_parts_go_up_as_they_fill(gcs_world: GcsWorld) -> None:
    store = gcs_world.store()
    store.part_size = PART
    http = recorded(store)
    data = os.urandom(2 * PART + 10)
    writer = store.open_object("exports_events/streamed.bin")
    writer.write(data)
    assert [c[2] for c in http.calls] == [f"bytes 0-{PART - 1}/*", f"bytes {PART}-{2 * PART - 1}/*"]
    assert gcs_world.raw_read("exports_events/streamed.bin") is None  # nothing visible yet
    stored = writer.commit()
    assert http.calls[-1][2] == f"bytes {2 * PART}-{2 * PART + 9}/{2 * PART + 10}"
    assert stored.details == {"parts": 3}
    assert gcs_world.raw_read("exports_events/streamed.bin") == data


def test_last_part_carries_the_crc32c_and_a_mismatch_is_caught(gcs_world: GcsWorld) -> None:
    store = gcs_world.store()
    store.part_size = PART
    http = recorded(store)
    data = os.urandom(PART + 3)
    store.put_object("exports_events/hashed.bin", data)
    expected = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
    assert http.hashes == [f"crc32c={expected}"]
    # Google refuses to finish such an upload; the emulator ignores the header, so the writer's
    # own comparison with the stored object's checksum is what catches it here.
    http.corrupt = True
    with pytest.raises(TransientError, match="CRC32C"):
        store.put_object("exports_events/corrupt.bin", data)


def test_exact_multiple_finishes_with_an_empty_last_request(gcs_world: GcsWorld) -> None:
    store = gcs_world.store()
    store.part_size = PART
    http = recorded(store)
    data = os.urandom(2 * PART)
    stored = store.put_object("exports_events/even.bin", data)
    assert http.calls[-1][2] == f"bytes */{2 * PART}"
    assert stored.details == {"parts": 2}
    assert gcs_world.raw_read("exports_events/even.bin") == data


def test_small_object_is_one_request(gcs_world: GcsWorld) -> None:
    store = gcs_world.store()
    http = recorded(store)
    stored = store.put_object("exports_events/small.json", b"{}", content_type="application/json")
    assert http.calls == []  # no upload session for less than one part
    assert stored.details == {"parts": 1}
    blob = gcs_world.admin.bucket(gcs_world.bucket).get_blob("exports_events/small.json")
    assert blob.content_type == "application/json"


def test_abort_cancels_the_upload_session(gcs_world: GcsWorld) -> None:
    store = gcs_world.store()
    store.part_size = PART
    http = recorded(store)
    writer = store.open_object("exports_events/cancelled.bin")
    writer.write(os.urandom(PART + 1))
    session = http.calls[0][1]
    writer.abort()
    assert http.calls[-1] == ("DELETE", session, "")
    assert "upload_id=" in session
    assert gcs_world.raw_read("exports_events/cancelled.bin") is None
    assert store.list_objects("exports_events/") == []


def test_a_dropped_connection_resumes_where_the_session_stands(gcs_world: GcsWorld) -> None:
    store = gcs_world.store()
    store.part_size = PART
    store.retry_waits = (0.0,)
    http = recorded(store, fail={2})  # the second part's first attempt
    data = os.urandom(3 * PART + 5)
    stored = store.put_object("exports_events/resumed.bin", data)
    ranges = [c[2] for c in http.calls]
    assert ranges[2] == "bytes */*"  # asked the session what arrived
    assert ranges[3] == f"bytes {PART}-{2 * PART - 1}/*"  # and sent the part again
    assert stored.details == {"parts": 4}
    assert gcs_world.raw_read("exports_events/resumed.bin") == data


def test_a_connection_that_stays_down_is_transient(gcs_world: GcsWorld) -> None:
    store = gcs_world.store()
    store.part_size = PART
    store.retry_waits = (0.0, 0.0)
    recorded(store, fail=set(range(2, 20)))
    writer = store.open_object("exports_events/down.bin")
    writer.write(os.urandom(PART))
    with pytest.raises(TransientError, match="cannot reach"):
        writer.write(os.urandom(PART))
    writer.abort()
    assert gcs_world.raw_read("exports_events/down.bin") is None


def test_writing_to_a_missing_bucket_is_terminal_and_names_it(gcs_world: GcsWorld) -> None:
    store = gcs_world.store(bucket="spw-gone-bucket")
    store.part_size = PART
    with pytest.raises(DestinationError, match="spw-gone-bucket"):
        store.put_object("exports_events/small.json", b"{}")
    with pytest.raises(DestinationError, match="spw-gone-bucket"):
        store.put_object("exports_events/big.bin", os.urandom(PART + 1))
    with pytest.raises(DestinationError, match="not found"):
        store.read_object("exports_events/small.json")


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (api_errors.ServiceUnavailable("backend"), TransientError, "temporarily unavailable"),
        (api_errors.InternalServerError("oops"), TransientError, "temporarily unavailable"),
        (api_errors.TooManyRequests("slow down"), TransientError, "throttling"),
        (api_errors.Forbidden("no"), DestinationError, "roles/storage.objectCreator"),
        (api_errors.Unauthorized("who"), CredentialsRejected, "create a new JSON key"),
        (api_errors.NotFound("gone"), DestinationError, "check that bucket acme exists"),
        (requests.ConnectionError("reset"), TransientError, "cannot reach"),
    ],
)
def test_google_errors_become_actionable_and_classified(
    error: Exception, kind: type[Exception], says: str
) -> None:
    store = GcsStore(GcsConfig(bucket="acme"), Anonymous())
    classified = store.classify(error)
    assert type(classified) is kind
    assert says in str(classified)


# -- the operator's outbound policy -----------------------------------------------------------


def test_an_unlisted_loopback_endpoint_is_refused_before_any_connection() -> None:
    with canned_server() as listener:
        for config, credentials in (
            ({"bucket": "acme", "endpoint_url": listener.url}, {"mode": "anonymous"}),
            (
                {"bucket": "acme", "endpoint_url": f"{listener.url}/storage/v1"},
                {"mode": "anonymous"},
            ),
        ):
            with pytest.raises(InputError) as caught:
                registry.parse("gcs", config, credentials, TENANT)
            assert answer_for(caught.value).status == 422
            message = str(caught.value)
            assert "config.endpoint_url" in message and "SPILLWAY_ALLOWED_ENDPOINTS" in message
        assert listener.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://storage.googleapis.com",  # Google's domain, but not https
        "https://storage.googleapis.com.evil.example",
        "https://evil.example\\.storage.googleapis.com",  # urllib3 would connect to evil.example
        "https://user@storage.googleapis.com",
        "http://169.254.169.254",
    ],
)
def test_endpoints_that_only_look_like_googles_are_refused(url: str) -> None:
    with pytest.raises(InputError) as caught:
        registry.parse("gcs", {"bucket": "acme", "endpoint_url": url}, {"mode": "anonymous"})
    assert answer_for(caught.value).status == 422
    assert "endpoint_url" in str(caught.value)


def test_googles_own_endpoint_needs_no_listing(pem: str) -> None:
    parsed = registry.parse(
        "gcs",
        {"bucket": "acme", "endpoint_url": "https://storage.googleapis.com"},
        {"mode": "service_account", "key_json": key_json(private_key=pem)},
        TENANT,
    )
    assert isinstance(parsed.config, GcsConfig)


def test_a_token_uri_that_is_not_googles_is_refused_and_never_called(pem: str) -> None:
    with canned_server(status=400, body=f'{{"error": "x", "note": "{MARKER}"}}') as listener:
        key = key_json(private_key=pem, token_uri=f"{listener.url}/token")
        with pytest.raises(InputError) as caught:
            registry.parse(
                "gcs",
                {"bucket": "acme"},
                {"mode": "service_account", "key_json": key},
                TENANT,
            )
        assert answer_for(caught.value).status == 422
        message = str(caught.value)
        assert "key_json.token_uri" in message and "not Google's token endpoint" in message
        assert listener.connections == 0


def test_anonymous_access_needs_a_listed_emulator(gcs_emulator: str) -> None:
    for config in (
        {"bucket": "acme"},
        {"bucket": "acme", "endpoint_url": "https://storage.googleapis.com"},
    ):
        with pytest.raises(InputError) as caught:
            registry.parse("gcs", config, {"mode": "anonymous"}, TENANT)
        assert answer_for(caught.value).status == 422
        assert "anonymous access is only for a storage emulator" in str(caught.value)
    parsed = registry.parse(
        "gcs", {"bucket": "acme", "endpoint_url": gcs_emulator}, {"mode": "anonymous"}, TENANT
    )
    assert isinstance(parsed.credentials, GcsCredentials)


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (200, "text/html", HTML),  # an admin page, not a token
        (400, "text/html", HTML),  # google-auth puts a non-JSON body into its error
        (500, "text/plain", MARKER),
        (400, "application/json", f'{{"error": "invalid_grant", "error_description": "{MARKER}"}}'),
        (401, "application/json", f'{{"error": "<b>{MARKER}</b>"}}'),
    ],
)
def test_a_listed_token_endpoint_is_never_echoed(
    gcs_world: GcsWorld, pem: str, policy: Policy, status: int, content_type: str, body: str
) -> None:
    with canned_server(status=status, content_type=content_type, body=body) as server:
        policy.allow(server.url)
        key = ServiceAccount.model_validate(
            {"key_json": key_json(private_key=pem, token_uri=f"{server.url}/token")}
        )
        store = gcs_world.store(key)
        checks = store.validate(Needs())
        assert server.requests, "the listed token endpoint was called"
        assert checks[0].name == "credentials" and checks[0].status is CheckStatus.FAILED
        text = json.dumps([c.as_dict() for c in checks])
        assert MARKER not in text and "Internal admin" not in text
        assert "token" in checks[0].message
        with pytest.raises((DestinationError, TransientError)) as caught:
            store.put_object("exports_events/x.json", b"{}")
        assert MARKER not in str(caught.value)


# An SDK that gives up on a garbled answer may drop its response unread, and the socket under it
# is closed by the garbage collector, not by the SDK: collected here, inside this test, so its
# ResourceWarning cannot land in whichever test runs next.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (200, "text/html", HTML),
        (500, "text/html", HTML),
        (404, "text/html", HTML),
        (403, "application/json", f'{{"error": {{"code": 403, "message": "{MARKER}"}}}}'),
        (400, "application/json", f'{{"error": "{MARKER}"}}'),
        (200, "application/json", "[1, 2, 3]"),
    ],
)
def test_a_listed_endpoint_that_answers_garbage_is_explained_not_echoed(
    policy: Policy, monkeypatch: pytest.MonkeyPatch, status: int, content_type: str, body: str
) -> None:
    short = gcs_client.RETRY.with_timeout(0.5)  # a 5xx is retried for 30 s otherwise
    monkeypatch.setattr(gcs_client, "RETRY", short)
    monkeypatch.setattr(gcs_checks, "RETRY", short)
    with canned_server(status=status, content_type=content_type, body=body) as server:
        policy.allow(server.url)
        store = GcsStore(GcsConfig(bucket="acme", endpoint_url=server.url), Anonymous())
        store.part_size = PART
        store.retry_waits = (0.0,)
        texts = [json.dumps([c.as_dict() for c in store.validate(Needs(read=True, list=True))])]
        for operation in (
            lambda: store.list_objects("exports_events/"),
            lambda: store.read_object("exports_events/a.json"),
            lambda: store.delete_object("exports_events/a.json"),
            lambda: store.put_object("exports_events/a.json", b"{}"),
            lambda: store.put_object("exports_events/b.bin", os.urandom(PART + 1)),
        ):
            try:
                operation()
            except (DestinationError, TransientError) as exc:  # nothing else escapes
                texts.append(str(exc))
        store.close()
        gc.collect()
        assert server.requests
        assert not [t for t in texts if MARKER in t or "Internal admin" in t]


def test_a_stored_destination_the_operator_no_longer_allows_fails_without_connecting(
    policy: Policy, pem: str
) -> None:
    with canned_server() as server:
        policy.allow(server.url)
        for config, credentials in (
            ({"bucket": "acme", "endpoint_url": server.url}, {"mode": "anonymous"}),
            (
                {"bucket": "acme"},
                {
                    "mode": "service_account",
                    "key_json": key_json(private_key=pem, token_uri=f"{server.url}/t"),
                },
            ),
        ):
            registry.parse("gcs", config, credentials, TENANT)  # allowed when configured
        policy.forbid(server.url)  # then the operator takes the origin off the list
        for config, credentials in (
            ({"bucket": "acme", "endpoint_url": server.url}, {"mode": "anonymous"}),
            (
                {"bucket": "acme"},
                {
                    "mode": "service_account",
                    "key_json": key_json(private_key=pem, token_uri=f"{server.url}/t"),
                },
            ),
        ):
            parsed = registry.parse("gcs", config, credentials, stored=True)  # still loads
            store = registry.build(parsed, TENANT)
            checks = store.validate(Needs())
            assert checks[0].status is CheckStatus.FAILED
            assert "no longer allowed on this server" in checks[0].message
            assert isinstance(store, GcsStore)
            with pytest.raises(DestinationError, match="no longer allowed"):
                store.put_object("exports_events/x.json", b"{}")
            with pytest.raises(DestinationError, match="no longer allowed"):
                store.list_objects("exports_events/")
        assert server.connections == 0
