"""Azure Blob against Azurite: each auth mode, wrong keys, SAS limits, aborts, error mapping."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from spillway import destinations as registry
from spillway.api.errors import answer_for
from spillway.destinations.azure_blob.config import (
    DEV_URL,
    AzureBlobConfig,
    AzureCredentials,
    public_credentials,
    resolve,
)
from spillway.destinations.azure_blob.kind import build
from spillway.destinations.azure_blob.store import AzureBlobStore
from spillway.destinations.base import (
    Check,
    CheckStatus,
    CredentialsRejected,
    DestinationError,
    Needs,
    Tenant,
    all_passed,
)
from spillway.errors import InputError, TransientError
from spillway.services.destinations import _plain
from tests.integration.destinations.policy import Policy
from tests.server_azurite import WRONG_KEY
from tests.server_canned import HTML, MARKER, canned_server
from tests.servers import allow_endpoint, free_port

if TYPE_CHECKING:
    from tests.integration.destinations.case_azure_blob import AzureWorld

# Until the root conftest lists the case module, load its fixtures from here (pytest registers a
# plugin once, so listing it in both places is harmless). Importing it above instead would stop
# pytest from rewriting its asserts.
pytest_plugins = ["tests.integration.destinations.case_azure_blob"]

EVERYTHING = Needs(read=True, list=True, delete=True)
TENANT = Tenant("0" * 32, "acme", "unused")
ORDER = ["credentials", "bucket", "write", "read", "list", "delete"]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def dump(checks: list[Check]) -> list[dict[str, str]]:
    return [check.as_dict() for check in checks]


def credentials_for(world: AzureWorld, mode: str) -> AzureCredentials:
    if mode == "connection_string":
        return world.connection_string()
    if mode == "connection_string_sas":
        sas = world.sas_token("racwdl")
        url = world.azurite.account_url
        return world.connection_string(f"BlobEndpoint={url};SharedAccessSignature={sas}")
    if mode == "account_key":
        return world.account_key()
    return world.sas("racwdl")


@pytest.mark.parametrize(
    "mode", ["connection_string", "connection_string_sas", "account_key", "sas_token"]
)
def test_each_auth_mode_validates_writes_and_reads(azure_world: AzureWorld, mode: str) -> None:
    overrides: dict[str, Any] = {}
    if mode.startswith("connection_string"):
        overrides["account_url"] = None  # the connection string names the endpoint
    store = azure_world.store(credentials_for(azure_world, mode), **overrides)
    checks = store.validate(EVERYTHING)
    assert [c.name for c in checks] == ORDER
    assert all(c.status is CheckStatus.PASSED for c in checks), dump(checks)
    store.put_object("exports_events/one.json", b'{"event": 1}\n')
    assert azure_world.raw_read("exports_events/one.json") == b'{"event": 1}\n'
    assert store.read_object("exports_events/one.json") == b'{"event": 1}\n'


def test_wrong_account_key_fails_the_credentials_check(azure_world: AzureWorld) -> None:
    checks = azure_world.store(azure_world.account_key(WRONG_KEY)).validate(EVERYTHING)
    first = checks[0]
    assert first.name == "credentials"
    assert first.status is CheckStatus.FAILED
    assert "rejected the account key" in first.message
    assert "AuthorizationFailure" in first.message  # Azure itself says AuthenticationFailed
    assert "expired" not in first.message
    assert all(c.status is CheckStatus.SKIPPED for c in checks[1:]), dump(checks)
    assert all(WRONG_KEY not in c.message for c in checks)


def test_wrong_key_in_a_connection_string_is_named_as_such(azure_world: AzureWorld) -> None:
    text = azure_world.azurite.connection_string().replace(
        azure_world.azurite.account_key, WRONG_KEY
    )
    check = azure_world.store(azure_world.connection_string(text)).validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert "rejected the account key of the connection string" in check.message


def test_sas_signed_with_another_key_is_rejected(azure_world: AzureWorld) -> None:
    credentials = azure_world.sas("racwdl", key=WRONG_KEY)
    checks = azure_world.store(credentials).validate(Needs())
    assert checks[0].status is CheckStatus.FAILED
    assert "rejected the SAS token" in checks[0].message
    token = credentials.root.sas_token.get_secret_value()  # type: ignore[union-attr]
    signature = token.split("sig=")[1]
    assert all(signature not in c.message for c in checks)


def test_expired_sas_is_told_apart_from_a_rejected_one(azure_world: AzureWorld) -> None:
    now = datetime.now(UTC)
    expired = azure_world.sas(
        "racwdl", start=now - timedelta(hours=2), expiry=now - timedelta(hours=1)
    )
    check = azure_world.store(expired).validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert "expired at" in check.message
    assert "rejected" not in check.message

    early = azure_world.sas(
        "racwdl", start=now + timedelta(hours=1), expiry=now + timedelta(hours=2)
    )
    check = azure_world.store(early).validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert "not valid before" in check.message


def test_sas_without_write_permission_fails_the_write_check(azure_world: AzureWorld) -> None:
    checks = by_name(azure_world.store(azure_world.sas("rl")).validate(Needs()))
    assert checks["credentials"].status is CheckStatus.PASSED
    assert checks["bucket"].status is CheckStatus.PASSED  # listing proves the container
    assert checks["write"].status is CheckStatus.FAILED
    assert "AuthorizationPermissionMismatch" in checks["write"].message
    assert "w (write)" in checks["write"].message
    for name in ("read", "list", "delete"):
        assert checks[name].status is CheckStatus.SKIPPED


def test_write_only_sas_is_enough_for_plain_exports(azure_world: AzureWorld) -> None:
    store = azure_world.store(azure_world.sas("w"))  # least privilege: write, nothing else
    checks = store.validate(Needs())
    named = by_name(checks)
    assert all_passed(checks), dump(checks)
    assert named["credentials"].status is CheckStatus.PASSED
    assert named["bucket"].status is CheckStatus.SKIPPED
    assert "no l permission" in named["bucket"].message
    assert named["write"].status is CheckStatus.PASSED
    store.put_object("exports_events/big.bin", os.urandom(3 * 64 * 1024 + 1))
    store.put_object("exports_events/big.bin", b"rewritten")  # a retried export replaces it
    assert azure_world.raw_read("exports_events/big.bin") == b"rewritten"

    named = by_name(store.validate(EVERYTHING))
    assert named["write"].status is CheckStatus.PASSED
    for name, permission in (("read", "r (read)"), ("list", "l (list)"), ("delete", "d (delete)")):
        assert named[name].status is CheckStatus.FAILED
        assert permission in named[name].message, named[name]


def test_write_only_sas_on_a_missing_container_fails_the_write(azure_world: AzureWorld) -> None:
    missing = "spw-missing-" + os.urandom(4).hex()
    store = azure_world.store(azure_world.sas("w", container=missing), container=missing)
    named = by_name(store.validate(Needs()))
    assert named["credentials"].status is CheckStatus.PASSED
    assert named["bucket"].status is CheckStatus.SKIPPED
    assert named["write"].status is CheckStatus.FAILED
    assert f"container {missing} does not exist" in named["write"].message


def test_missing_container_is_an_error_for_every_operation(azure_world: AzureWorld) -> None:
    store = azure_world.store(
        azure_world.account_key(), container="spw-none-" + os.urandom(4).hex()
    )
    for operation in (
        lambda: store.put_object("exports_events/a.json", b"x"),
        lambda: store.delete_object("exports_events/a.json"),
        lambda: store.list_objects("exports_events/"),
        lambda: store.read_object("exports_events/a.json"),
    ):
        with pytest.raises(DestinationError, match="does not exist"):
            operation()


def test_abort_keeps_the_previous_object_and_a_later_commit_works(azure_world: AzureWorld) -> None:
    part = 64 * 1024
    store = azure_world.store(azure_world.account_key(), part_size=part)
    key = "exports_events/same.bin"
    store.put_object(key, b"before")
    writer = store.open_object(key)
    writer.write(os.urandom(part * 2 + 5))  # two blocks staged
    writer.abort()
    assert azure_world.raw_read(key) == b"before"

    data = os.urandom(part * 3 + 1)
    with store.open_object(key) as again:
        again.write(data)
    assert azure_world.raw_read(key) == data
    assert store.list_objects("exports_events/") == [key]


def test_blobs_record_content_type_and_md5(azure_world: AzureWorld) -> None:
    part = 64 * 1024
    store = azure_world.store(azure_world.account_key(), part_size=part)
    for key, data in (
        ("exports_events/small.json", b"{}\n"),
        ("exports_events/empty.json", b""),
        ("exports_events/multi.bin", os.urandom(part * 2 + 3)),
    ):
        stored = store.put_object(key, data, content_type="application/x-ndjson")
        properties = azure_world.admin.get_blob_client(key).get_blob_properties()
        assert properties.size == len(data)
        assert properties.content_settings.content_type == "application/x-ndjson"
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        assert bytes(properties.content_settings.content_md5) == digest
        assert stored.details["parts"] == (3 if key.endswith("multi.bin") else 1)


def test_unreachable_account_fails_validation_and_writes_are_transient(
    azure_world: AzureWorld,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    allow_endpoint(url)  # listed, so the config is accepted; nothing listens there
    store = azure_world.store(azure_world.account_key(), account_url=url)
    store.client_options["retry_total"] = 0
    check = store.validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert f"cannot reach {url}" in check.message
    with pytest.raises(TransientError, match="cannot reach"):
        store.put_object("exports_events/a.json", b"x")


def _http_error(status: int, code: str, cls: type[HttpResponseError] = HttpResponseError) -> Any:
    error = cls(message=f"{code} happened.\nRequestId:abc")
    error.status_code = status
    error.error_code = code
    return error


@pytest.mark.parametrize(
    ("error", "expected", "words"),
    [
        (_http_error(503, "ServerBusy"), TransientError, "retries"),
        (_http_error(500, "InternalError"), TransientError, "retries"),
        (_http_error(500, "OperationTimedOut"), TransientError, "retries"),
        (ServiceResponseError("connection reset"), TransientError, "broke"),
        (ServiceRequestError("connection refused"), TransientError, "cannot reach"),
        (_http_error(403, "AuthorizationPermissionMismatch"), DestinationError, "permission"),
        (
            _http_error(403, "AuthenticationFailed", ClientAuthenticationError),
            CredentialsRejected,
            "rejected the account key",
        ),
        (_http_error(404, "ContainerNotFound"), DestinationError, "does not exist"),
        (_http_error(403, "KeyBasedAuthenticationNotPermitted"), DestinationError, "key access"),
    ],
)
def test_errors_are_classified_for_the_engine(
    azure_world: AzureWorld, error: Exception, expected: type[Exception], words: str
) -> None:
    failure = azure_world.store(azure_world.account_key()).classify(error)
    assert type(failure) is expected
    assert words in str(failure)


def test_expired_sas_reported_by_azure_itself_is_named(azure_world: AzureWorld) -> None:
    store = azure_world.store(azure_world.sas("racwdl"))
    error = _http_error(403, "AuthenticationFailed", ClientAuthenticationError)
    error.message = "Server failed to authenticate. Signature not valid in the specified time frame"
    assert "has expired or is not valid yet" in store.explain(error)


def test_secrets_stay_out_of_messages_repr_and_the_public_view(azure_world: AzureWorld) -> None:
    sas = azure_world.sas("racwdl")
    token = sas.root.sas_token.get_secret_value()  # type: ignore[union-attr]
    key = azure_world.azurite.account_key
    for credentials in (sas, azure_world.account_key(), azure_world.connection_string()):
        shown = repr(credentials) + str(public_credentials(credentials))
        assert key not in shown
        assert token not in shown and token.split("sig=")[1] not in shown
    view = public_credentials(sas)
    assert view["mode"] == "sas_token"
    assert view["permissions"] == "racwdl"
    assert view["expires"]
    assert public_credentials(azure_world.connection_string())["account_url"] == (
        azure_world.azurite.account_url
    )
    store = azure_world.store(sas)
    scrubbed = store.explain(ServiceRequestError(f"failed GET /c/b?{token}"))
    assert token.split("sig=")[1] not in scrubbed


def test_credentials_survive_sealing_and_reparsing(azure_world: AzureWorld) -> None:
    for credentials in (
        azure_world.sas("cw"),
        azure_world.account_key(),
        azure_world.connection_string(),
    ):
        parsed = registry.parse(
            "azure_blob", {"container": "abc"}, _plain(credentials.model_dump())
        )
        assert parsed.credentials == credentials


@pytest.mark.parametrize(
    ("config", "credentials", "words"),
    [
        ({"container": "Bad_Name"}, {}, "not a valid container name"),
        (
            {"container": "abc", "account_url": "https://acct.blob.core.windows.net/abc"},
            {},
            "without a container",
        ),
        ({"container": "abc", "account_url": "ftp://x"}, {}, "must start with https://"),
        (
            {"container": "abc"},
            {"mode": "sas_token", "sas_token": "https://a/b?sv=1&sig=2"},
            "not the URL",
        ),
        ({"container": "abc"}, {"mode": "sas_token", "sas_token": "hello"}, "sv=… and sig=…"),
        (
            {"container": "abc"},
            {"mode": "account_key", "account_name": "acct", "account_key": "not base64!"},
            "not a storage account key",
        ),
        (
            {"container": "abc"},
            {"mode": "account_key", "account_name": "Acct_1", "account_key": "QUJD"},
            "not a storage account name",
        ),
        (
            {"container": "abc"},
            {"mode": "connection_string", "connection_string": "AccountName=acct;EndpointSuffix=x"},
            "neither AccountKey nor SharedAccessSignature",
        ),
        ({"container": "abc"}, {"mode": "nope"}, "mode"),
    ],
)
def test_bad_settings_are_refused_before_any_request(
    config: dict[str, Any], credentials: dict[str, Any], words: str
) -> None:
    credentials = credentials or {
        "mode": "account_key",
        "account_name": "acct",
        "account_key": "QUJD",
    }
    with pytest.raises(InputError) as caught:
        registry.parse("azure_blob", config, credentials)
    assert answer_for(caught.value).status == 422
    assert words in str(caught.value)
    assert "QUJD" not in str(caught.value)


def test_a_sas_needs_the_account_from_somewhere() -> None:
    parsed = registry.parse(
        "azure_blob", {"container": "abc"}, {"mode": "sas_token", "sas_token": "sv=1&sig=2"}
    )
    with pytest.raises(InputError, match="account_name"):
        registry.build(parsed, Tenant("0" * 32, "p", "unused"))


def test_endpoints_resolve_like_the_portal_says(policy: Policy) -> None:
    # Azurite's fixed address and a custom domain work only where the operator lists them.
    policy.allow(DEV_URL, "https://files.example.com")
    config = AzureBlobConfig(container="abc")
    key = {"mode": "account_key", "account_name": "acct", "account_key": "QUJD"}
    assert resolve(config, AzureCredentials.model_validate(key)).account_url == (
        "https://acct.blob.core.windows.net"
    )
    china = AzureCredentials.model_validate(
        {
            "mode": "connection_string",
            "connection_string": "DefaultEndpointsProtocol=https;AccountName=acct;"
            "AccountKey=QUJD;EndpointSuffix=core.chinacloudapi.cn",
        }
    )
    assert resolve(config, china).account_url == "https://acct.blob.core.chinacloudapi.cn"
    dev = AzureCredentials.model_validate(
        {"mode": "connection_string", "connection_string": "UseDevelopmentStorage=true"}
    )
    assert resolve(config, dev).account_url == DEV_URL
    custom = AzureBlobConfig(container="abc", account_url="https://files.example.com/")
    assert resolve(custom, china).account_url == "https://files.example.com"
    assert build(custom, china, Tenant("0" * 32, "p", "unused")).target.account_name == "acct"


def test_sdk_request_traces_stay_out_of_the_log(
    azure_world: AzureWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = azure_world.store(azure_world.sas("racwdl"))
    store.put_object("exports_events/a.json", b"x" * 200_000)
    assert all_passed(store.validate(EVERYTHING))
    assert [r.name for r in caplog.records if r.levelno < logging.WARNING] == []


# -- the operator's outbound policy -----------------------------------------------------------

KEY_CREDENTIALS = {"mode": "account_key", "account_name": "acct", "account_key": "QUJD"}


def _connection(text: str) -> dict[str, str]:
    return {"mode": "connection_string", "connection_string": text}


def test_unlisted_loopback_endpoints_are_refused_before_any_connection() -> None:
    with canned_server() as listener:
        url = f"{listener.url}/devstoreaccount1"
        for config, credentials, field in (
            ({"container": "abc", "account_url": url}, KEY_CREDENTIALS, "config.account_url"),
            (
                {"container": "abc"},
                _connection(f"AccountName=acct;AccountKey=QUJD;BlobEndpoint={url}"),
                "BlobEndpoint",
            ),
            (
                {"container": "abc"},
                _connection(f"BlobEndpoint={url};SharedAccessSignature=sv=1&sig=2"),
                "BlobEndpoint",
            ),
            (
                {"container": "abc"},
                _connection(
                    "BlobEndpoint=https://acct.blob.core.windows.net;"
                    f"QueueEndpoint={listener.url};SharedAccessSignature=sv=1&sig=2"
                ),
                "QueueEndpoint",
            ),
        ):
            with pytest.raises(InputError) as caught:
                registry.parse("azure_blob", config, credentials, TENANT)
            assert answer_for(caught.value).status == 422
            assert field in str(caught.value) and "SPILLWAY_ALLOWED_ENDPOINTS" in str(caught.value)
            assert "QUJD" not in str(caught.value) and "sig=2" not in str(caught.value)
        assert listener.connections == 0


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("UseDevelopmentStorage=true", "UseDevelopmentStorage"),  # Azurite's fixed address
        (
            "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=QUJD",  # Azure, not https
            "blob endpoint the connection string names",
        ),
        (
            "AccountName=acct;AccountKey=QUJD;EndpointSuffix=127.0.0.1.nip.io",
            "blob endpoint the connection string names",
        ),
        ("AccountName=acct;AccountKey=QUJD;BlobEndpoint=http://169.254.169.254", "BlobEndpoint"),
    ],
)
def test_connection_strings_name_only_allowed_endpoints(text: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        registry.parse("azure_blob", {"container": "abc"}, _connection(text), TENANT)
    assert answer_for(caught.value).status == 422
    assert words in str(caught.value)


def test_azures_own_endpoints_need_no_listing() -> None:
    for config, credentials in (
        ({"container": "abc"}, KEY_CREDENTIALS),
        (
            {"container": "abc", "account_url": "https://acct.blob.core.chinacloudapi.cn"},
            KEY_CREDENTIALS,
        ),
        (
            {"container": "abc"},
            _connection(
                "BlobEndpoint=https://acct.blob.core.windows.net/;"
                "QueueEndpoint=https://acct.queue.core.windows.net/;"
                "FileEndpoint=https://acct.file.core.windows.net/;"
                "TableEndpoint=https://acct.table.core.windows.net/;SharedAccessSignature=sv=1&sig=2"
            ),
        ),
        (
            {"container": "abc"},
            _connection("AccountName=acct;AccountKey=QUJD;EndpointSuffix=core.usgovcloudapi.net"),
        ),
    ):
        registry.parse("azure_blob", config, credentials, TENANT)


def test_azurite_works_when_listed(azure_world: AzureWorld) -> None:
    # The azurite fixture lists its origin, as an operator running Azurite would.
    parsed = registry.parse(
        "azure_blob",
        {"container": azure_world.container, "account_url": azure_world.azurite.account_url},
        {
            "mode": "account_key",
            "account_name": azure_world.azurite.account_name,
            "account_key": azure_world.azurite.account_key,
        },
        TENANT,
    )
    store = registry.build(parsed, TENANT)
    try:
        assert all_passed(store.validate(EVERYTHING))
    finally:
        store.close()


# An SDK that gives up on a garbled answer may drop its response unread, and the socket under it
# is closed by the garbage collector, not by the SDK: collected here, inside this test, so its
# ResourceWarning cannot land in whichever test runs next.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (200, "text/html", HTML),
        (500, "text/html", HTML),
        (404, "text/plain", MARKER),
        (403, "application/xml", f"<Error><Code>Nope</Code><Message>{MARKER}</Message></Error>"),
        (200, "application/xml", f"<notxml {MARKER}"),
        (400, "application/xml", f"<Error><Code>{MARKER} <b>x</b></Code></Error>"),
    ],
)
def test_a_listed_endpoint_that_answers_garbage_is_explained_not_echoed(
    policy: Policy, status: int, content_type: str, body: str
) -> None:
    with canned_server(status=status, content_type=content_type, body=body) as server:
        policy.allow(server.url)
        config = AzureBlobConfig(container="abc", account_url=f"{server.url}/acct")
        credentials = AzureCredentials.model_validate(KEY_CREDENTIALS)
        store = build(config, credentials, TENANT)
        store.client_options["retry_total"] = 0
        texts = [json.dumps(dump(store.validate(EVERYTHING)))]
        for operation in (
            lambda: store.list_objects("exports_events/"),
            lambda: store.read_object("exports_events/a.json"),
            lambda: store.delete_object("exports_events/a.json"),
            lambda: store.put_object("exports_events/a.json", b"{}"),
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
    policy: Policy,
) -> None:
    with canned_server() as server:
        url = f"{server.url}/acct"
        policy.allow(url)
        cases = (
            ({"container": "abc", "account_url": url}, KEY_CREDENTIALS),
            (
                {"container": "abc"},
                _connection(f"AccountName=acct;AccountKey=QUJD;BlobEndpoint={url}"),
            ),
        )
        for config, credentials in cases:
            registry.parse("azure_blob", config, credentials, TENANT)  # allowed when configured
        policy.forbid(url)  # then the operator takes it off the list
        for config, credentials in cases:
            parsed = registry.parse("azure_blob", config, credentials, stored=True)  # still loads
            store = registry.build(parsed, TENANT)
            assert isinstance(store, AzureBlobStore)
            checks = store.validate(EVERYTHING)
            assert checks[0].status is CheckStatus.FAILED
            assert "no longer allowed on this server" in checks[0].message
            with pytest.raises(DestinationError, match="no longer allowed"):
                store.put_object("exports_events/x.json", b"{}")
            with pytest.raises(DestinationError, match="no longer allowed"):
                store.list_objects("exports_events/")
        assert server.connections == 0
