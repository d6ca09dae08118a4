"""SigV4 verification against requests signed by botocore, as boto3 and the AWS CLI sign them."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from spillway.api.pinpoint import sigv4
from spillway.errors import Forbidden

KEY, SECRET = "SPWTESTKEY0000000001", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr"
HOST = "127.0.0.1:8080"


def signed(
    method: str, path: str, body: bytes = b"", query: str = "", secret: str = SECRET
) -> dict[str, Any]:
    """A request as botocore signs it: the raw path (percent-encoded) and headers."""
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={"Content-Type": "application/json"} if body else {},
    )
    SigV4Auth(Credentials(KEY, secret), "mobiletargeting", "us-east-1").add_auth(request)
    parts = urlsplit(request.url)
    return {
        "method": method,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "headers": {k.lower(): [v] for k, v in request.headers.items()} | {"host": [HOST]},
        "body": body,
    }


def check(request: dict[str, Any], secret: str = SECRET, now: dt.datetime | None = None) -> None:
    claims = sigv4.parse_authorization(request["headers"]["authorization"][0])
    sigv4.verify(
        method=request["method"],
        host=HOST,
        raw_path=request["raw_path"],
        query_string=request["query_string"],
        headers=request["headers"],
        body=request["body"],
        signed=claims,
        secret=secret,
        now=now,
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v1/apps",
        "/v1/apps/abc/endpoints/with%20space",
        "/v1/apps/abc/users/a%2Fb%2Bc",
        "/v1/apps/abc/users/%C3%A9t%C3%A9",
    ],
)
def test_a_request_signed_by_botocore_verifies(path: str) -> None:
    check(signed("GET", path, query="page-size=5&token=a%2Bb"))
    check(signed("POST", path, body=b'{"Name": "demo"}'))


def test_a_wrong_secret_a_tampered_body_and_an_old_date_are_refused() -> None:
    with pytest.raises(Forbidden, match="does not match"):
        check(signed("GET", "/v1/apps"), secret="x" * 40)
    request = signed("POST", "/v1/apps", body=b'{"Name": "demo"}')
    request["body"] = b'{"Name": "evil"}'
    with pytest.raises(Forbidden, match="does not match"):
        check(request)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)  # a 20-minute-old signature
    with pytest.raises(Forbidden, match="expired"):
        check(signed("GET", "/v1/apps"), now=later)
    with pytest.raises(Forbidden, match="Missing Authentication Token"):
        sigv4.parse_authorization(None)


def test_a_declared_body_hash_must_match_the_body() -> None:
    request = signed("POST", "/v1/apps", body=b"{}")
    request["headers"]["x-amz-content-sha256"] = ["UNSIGNED-PAYLOAD"]
    with pytest.raises(Forbidden, match="x-amz-content-sha256"):
        check(request)
