"""Logging: other libraries at WARNING whatever SPILLWAY_LOG_LEVEL says, every line redacted."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from spillway.logs import RedactingFilter, configure, redact

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE/session+token=="

# What SDKs print at DEBUG, in the shapes they print it (secrets made up).
LEAKS = [
    # botocore.endpoint: the prepared request, as a dict repr (bytes values included)
    f"Making request with params: {{'headers': {{'X-Amz-Security-Token': '{TOKEN}', "
    f"'Authorization': b'AWS4-HMAC-SHA256 Credential=ASIAX/20260101/us-east-1/s3/aws4_request, "
    f"SignedHeaders=host, Signature={SECRET[:16]}'}}}}",
    # botocore.auth: the canonical request lists the session token header
    f"CanonicalRequest:\nPUT\n/b/k\n\nhost:127.0.0.1\nx-amz-security-token:{TOKEN}\n",
    # botocore.parsers: a whole AssumeRole answer
    f"Response body:\nb'<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX"
    f"</AccessKeyId><SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{TOKEN}"
    f"</SessionToken></Credentials></AssumeRoleResult></AssumeRoleResponse>'",
    # botocore credentials, repr
    f"ReadOnlyCredentials(access_key='ASIAX', secret_key='{SECRET}', token='{TOKEN}')",
    # JSON answers (STS over JSON, OAuth token endpoints)
    f'{{"Credentials": {{"SecretAccessKey": "{SECRET}", "SessionToken": "{TOKEN}"}}}}',
    f'{{"access_token": "{TOKEN}", "expires_in": 3599}}',
    # a service account key file
    '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkq'
    + SECRET
    + '\\n-----END PRIVATE KEY-----\\n", "client_email": "w@p.iam.gserviceaccount.com"}',
    # Azure: connection string, SharedKey header, SAS query
    f"DefaultEndpointsProtocol=http;AccountName=dev;AccountKey={SECRET};BlobEndpoint=http://x",
    f"'Authorization': 'SharedKey dev:{SECRET}'",
    f"GET https://dev.blob.core.windows.net/c?sv=2022-11-02&sig={SECRET}&se=2026",
    # Spillway's own bearer key
    f"Authorization: Bearer SPWKEYID.{SECRET}",
    f"token={TOKEN}",
]


@pytest.mark.parametrize("line", LEAKS)
def test_redact_removes_every_secret_shape(line: str) -> None:
    cleaned = redact(line)
    assert SECRET not in cleaned and SECRET[:16] not in cleaned, cleaned
    assert TOKEN not in cleaned, cleaned
    assert "[redacted]" in cleaned


def test_redact_keeps_ordinary_lines() -> None:
    line = "export e1 run r1 wrote 3 files to s3://bucket/spillway_events (token_uri unchanged)"
    assert redact(line) == line


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger configured as `spillway serve` does, writing into a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    names = ("spillway", "botocore", "uvicorn", "alembic")
    levels = {name: logging.getLogger(name).level for name in names}
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    try:
        yield stream
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_debug_is_for_spillway_only_and_every_line_is_redacted(captured: io.StringIO) -> None:
    configure("DEBUG")
    logging.getLogger("spillway.engine").debug("run started with %s", f"secret_key={SECRET}")
    logging.getLogger("botocore.endpoint").debug("Making request: %s", LEAKS[0])
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTPS connection")
    logging.getLogger("azure.core.pipeline").info("Request headers: %s", LEAKS[8])
    logging.getLogger("botocore.credentials").warning("refreshing, token=%s", TOKEN)
    try:
        raise RuntimeError(f"failed with SecretAccessKey={SECRET}")
    except RuntimeError:
        logging.getLogger("spillway.api").exception("boom")
    out = captured.getvalue()
    assert "run started" in out  # Spillway's own DEBUG line
    assert "Making request" not in out and "Starting new HTTPS" not in out  # SDKs' DEBUG
    assert "Request headers" not in out  # nor their INFO
    assert "refreshing" in out  # their warnings still show
    assert "RuntimeError" in out  # tracebacks too, redacted
    assert SECRET not in out and TOKEN not in out, out


def test_third_party_level_is_an_explicit_opt_in(captured: io.StringIO) -> None:
    configure("INFO", "DEBUG")
    logging.getLogger("botocore.parsers").debug("Response body: %s", LEAKS[2])
    out = captured.getvalue()
    assert "Response body" in out  # the operator asked for it…
    assert SECRET not in out and TOKEN not in out  # …and still gets no secret


def test_filter_redacts_a_record_whatever_the_formatter() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (LEAKS[3],), None)
    assert RedactingFilter().filter(record) is True
    assert SECRET not in logging.Formatter("%(message)s").format(record)


def test_unknown_level_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="DEBUG, INFO, WARNING or ERROR"):
        configure("LOUD")
