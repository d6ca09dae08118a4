"""Errors in people's words (issue 14, item 4): one code per meaning, each field named as the
user wrote it with what it expects, S3-compatible keys accepted with a custom endpoint, and an
endpoint that cannot be reached said as such, never as a rejected key."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from spillway import destinations as registry
from spillway import errors, fielderrors, netpolicy
from spillway.api.errors import _table, answer_for
from spillway.api.models import EndpointIn, ExportIn, ExportPatch
from spillway.destinations.base import CheckStatus, Needs, Tenant, validating
from spillway.errors import Invalid

AWS_KEY = {
    "mode": "access_key",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
TENANT = Tenant("app1", "shop", "spillway-ext")


def refused(kind: str, config: dict[str, Any], credentials: dict[str, Any] | None = None) -> str:
    """The message ``parse`` refuses this destination with."""
    with pytest.raises(Invalid) as caught:
        registry.parse(kind, config, AWS_KEY if credentials is None else credentials)
    assert answer_for(caught.value).code == "invalid_request"
    return str(caught.value)


@pytest.fixture
def closed_port() -> Iterator[str]:
    """An origin on loopback that the operator lists and where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    before = netpolicy.current()
    netpolicy.configure(netpolicy.Policy(before.allowed | {netpolicy.origin_of(url)}))
    yield url
    netpolicy.configure(before)


# --- One code per meaning -------------------------------------------------------------------


def test_every_422_for_a_bad_value_is_invalid_request() -> None:
    codes = {code for _, status, code in _table() if status == 422}
    assert codes == {"invalid_request", "validation_failed"}
    assert answer_for(errors.Invalid("config.bucket", "x")).code == "invalid_request"
    assert answer_for(errors.Malformed("unreadable")).code == "bad_request"
    assert answer_for(errors.NotApplicable("nothing to run")).code == "not_applicable"


# --- Field errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "config", "expected"),
    [
        (
            "s3",
            {"bucket_name": "acme"},
            "config.bucket_name: unknown field; did you mean 'bucket'?",
        ),
        (
            "kinesis",
            {"stream_name": "s"},
            "config.stream_name: unknown field; did you mean 'stream'?",
        ),
        ("local", {"pat": "out"}, "config.pat: unknown field; did you mean 'path'?"),
        ("azure_blob", {"account": "a", "container": "abc"}, "did you mean 'account_url'?"),
        ("s3", {"bucket": "acme", "region": "EU"}, "config.region: 'EU' is not an AWS region code"),
        ("kinesis", {"stream": "s", "region": "Europe"}, "config.region: 'Europe' is not an AWS"),
        ("s3", {"bucket": "Acme_B"}, "config.bucket: 'Acme_B' is not a valid S3 bucket name"),
        ("s3", {"bucket": "acme", "sse": "kms"}, "config.sse: must be one of 'none', 'AES256' or"),
        ("firehose", {}, "config.delivery_stream: Field required"),
        ("local", {"path": 3}, "config.path: must be a string, not a number"),
    ],
)
def test_config_errors_name_the_field_and_what_it_expects(
    kind: str, config: dict[str, Any], expected: str
) -> None:
    message = refused(kind, config)
    assert expected in message, message
    assert "Value error" not in message and "Extra inputs" not in message, message


def test_a_misspelt_field_is_not_also_reported_missing() -> None:
    message = refused("s3", {"bucket_name": "acme"})
    assert "config.bucket: Field required" not in message, message


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        (
            {**AWS_KEY, "secret_access_key": "short"},
            "credentials.secret_access_key: an AWS secret access key is 40 characters; this "
            "one has 5",
        ),
        (
            {**AWS_KEY, "access_key_id": "akia"},
            "credentials.access_key_id: an AWS access key id is 16 to 128 upper-case letters",
        ),
        ({**AWS_KEY, "mode": "acces_key"}, "credentials.mode: 'acces_key' is not one of"),
        ({**AWS_KEY, "mode": "acces_key"}, "did you mean 'access_key'?"),
        (
            {"mode": "access_key", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret": "x" * 40},
            "credentials.secret: unknown field; did you mean 'secret_access_key'?",
        ),
    ],
)
def test_credentials_errors_say_what_a_key_looks_like(
    credentials: dict[str, Any], expected: str
) -> None:
    message = refused("s3", {"bucket": "acme"}, credentials)
    assert expected in message, message
    assert "items after validation" not in message and "value." not in message, message


def test_a_secret_is_never_echoed() -> None:
    message = refused("s3", {"bucket": "acme"}, {**AWS_KEY, "secret_access_key": "hunter2"})
    assert "hunter2" not in message


def test_request_bodies_read_the_same_way() -> None:
    def described(model: Any, body: dict[str, Any]) -> str:
        with pytest.raises(ValidationError) as caught:
            model.model_validate(body)
        return fielderrors.describe(caught.value.errors(), model=model)

    export = described(ExportIn, {"name": "x", "destination": "d", "frequency": "hourlyy"})
    assert "destination: unknown field; did you mean 'destination_id'?" in export, export
    assert "frequency: must be one of 'every_15_minutes'" in export, export
    assert "not 'hourlyy'" in export, export
    events = described(ExportIn, {"name": "x", "destination_id": "d", "events": "abc"})
    assert events == "events: must be 'all' or a list, not a string", events
    endpoint = described(EndpointIn, {"channel_type": "EMAIL", "adress": "a@example.com"})
    assert "adress: unknown field; did you mean 'address'?" in endpoint, endpoint
    # A creation-only field in a PATCH is known, not misspelt: say so and what to do instead
    # (it used to read "start: unknown field; did you mean 'status'?").
    start = described(ExportPatch, {"start": "retention"})
    assert start.startswith("start: set when the export is created and cannot be changed"), start
    assert "backfill" in start and "did you mean" not in start, start
    renamed = described(ExportPatch, {"name": "new", "statu": "active"})
    assert "name: set when the export is created" in renamed, renamed
    assert "statu: unknown field; did you mean 'status'?" in renamed, renamed


# --- S3-compatible services ---------------------------------------------------------------


def test_r2_and_minio_keys_are_accepted_with_a_custom_endpoint(closed_port: str) -> None:
    r2 = {
        "mode": "access_key",
        "access_key_id": secrets.token_hex(16),  # 32 lower-case hex characters
        "secret_access_key": secrets.token_hex(32),  # 64
    }
    config = {"bucket": "acme", "endpoint_url": closed_port, "region": "auto"}
    parsed = registry.parse("s3", config, r2, TENANT)
    assert parsed.credentials.value.access_key_id == r2["access_key_id"]  # type: ignore[attr-defined]
    minio = {"mode": "access_key", "access_key_id": "minio", "secret_access_key": "minio123"}
    registry.parse("kinesis", {"stream": "s", "endpoint_url": closed_port}, minio, TENANT)
    # Without the endpoint, AWS's formats apply (the key would only be refused later).
    message = refused("s3", {"bucket": "acme"}, r2)
    assert "credentials.access_key_id: an AWS access key id" in message, message
    assert "set endpoint_url" in message, message
    assert "region" in refused("s3", {"bucket": "acme", "region": "auto"})
    # Empty is never a key.
    empty = {**minio, "secret_access_key": ""}
    message = refused("s3", {"bucket": "acme", "endpoint_url": closed_port}, empty)
    assert "credentials.secret_access_key: must not be empty" in message, message


# --- Connectivity is not credentials ------------------------------------------------------


@pytest.mark.parametrize("kind", ["s3", "kinesis", "firehose"])
def test_an_endpoint_that_does_not_answer_is_a_connectivity_failure(
    closed_port: str, kind: str
) -> None:
    field = {"s3": "bucket", "kinesis": "stream", "firehose": "delivery_stream"}[kind]
    parsed = registry.parse(kind, {field: "acme", "endpoint_url": closed_port}, AWS_KEY, TENANT)
    with validating():
        checks = registry.build(parsed, TENANT).validate(Needs())
    first = checks[0]
    assert (first.name, first.status) == ("credentials", CheckStatus.FAILED)
    assert "cannot reach the" in first.message, first.message
    assert closed_port in first.message and "connection refused" in first.message, first.message
    assert "rejected" not in first.message and "the credentials were not tried" in first.message


def test_a_host_that_does_not_resolve_says_so() -> None:
    url = "http://spillway-no-such-host.invalid:9000"
    before = netpolicy.current()
    netpolicy.configure(netpolicy.Policy(before.allowed | {netpolicy.origin_of(url)}))
    try:
        parsed = registry.parse("s3", {"bucket": "acme", "endpoint_url": url}, AWS_KEY, TENANT)
        with validating():
            first = registry.build(parsed, TENANT).validate(Needs())[0]
    finally:
        netpolicy.configure(before)
    assert "no such host" in first.message and url in first.message, first.message
    assert "rejected" not in first.message
