"""The Pinpoint-compatible API's authentication and app access, with an unmodified boto3 client
against a real ``spillway serve``: every bad signature is Pinpoint's 403 ``ForbiddenException``
(as botocore parses it), apps another key may not see are "not found", account-level calls need
an operator key, and operations Spillway lacks say so in Pinpoint's error format."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as AwsCredentials
from botocore.exceptions import ClientError

from tests.acceptance.conftest import Server, cli_json, create_key, create_project, run_cli

REGION = "us-east-1"
# The codes Pinpoint's model defines for its errors.
PINPOINT_CODES = {
    "BadRequestException",
    "ForbiddenException",
    "NotFoundException",
    "MethodNotAllowedException",
    "PayloadTooLargeException",
    "TooManyRequestsException",
    "InternalServerErrorException",
}


@dataclass(frozen=True)
class Key:
    key_id: str
    secret: str


@dataclass(frozen=True)
class App:
    app_id: str
    write: Key
    read: Key


def key_of(shown: dict[str, Any]) -> Key:
    return Key(shown["key_id"], shown["secret"])


def pinpoint(server: Server, key: Key | None, **config: Any) -> Any:
    """An unmodified boto3 Pinpoint client on the server (no retries: each call is one request)."""
    return boto3.client(
        "pinpoint",
        endpoint_url=server.base_url,
        region_name=REGION,
        aws_access_key_id=key.key_id if key else "unused",
        aws_secret_access_key=key.secret if key else "unused",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def refused(call: Callable[[], Any]) -> tuple[int, str, str]:
    """The HTTP status, error code and message botocore parsed from a refused call."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def new_app(server: Server) -> App:
    project = create_project(server.data_dir, f"pp-{uuid.uuid4().hex[:10]}")
    app_id: str = project["project_id"]
    write = key_of(create_key(server.data_dir, app_id, "write"))
    read = key_of(create_key(server.data_dir, app_id, "read"))
    return App(app_id, write, read)


@pytest.fixture(scope="module")
def operator(server: Server) -> Key:
    return key_of(cli_json(server.data_dir, "admin", "create-operator-key"))


@pytest.fixture(scope="module")
def app(server: Server) -> App:
    return new_app(server)


@pytest.fixture(scope="module")
def other_app(server: Server) -> App:
    return new_app(server)


# --- signatures ---------------------------------------------------------------------------


def test_a_good_signature_is_accepted(server: Server, app: App) -> None:
    shown = pinpoint(server, app.read).get_app(ApplicationId=app.app_id)["ApplicationResponse"]
    assert shown["Id"] == app.app_id


def test_a_wrong_secret_is_forbidden(server: Server, app: App) -> None:
    wrong = Key(app.read.key_id, app.read.secret[::-1] + "x")
    status, code, message = refused(
        lambda: pinpoint(server, wrong).get_app(ApplicationId=app.app_id)
    )
    assert (status, code) == (403, "ForbiddenException")
    assert "signature" in message.lower()


def test_a_wrong_secret_is_forbidden_on_unsupported_operations_too(
    server: Server, app: App
) -> None:
    # Otherwise a known key id (400 "not supported") and an unknown one (403) would differ.
    wrong = Key(app.read.key_id, app.read.secret[::-1] + "x")
    status, code, _ = refused(
        lambda: pinpoint(server, wrong).get_campaigns(ApplicationId=app.app_id)
    )
    assert (status, code) == (403, "ForbiddenException")


def test_an_unknown_access_key_is_forbidden(server: Server, app: App) -> None:
    unknown = Key("SPW" + uuid.uuid4().hex[:17].upper(), "s" * 40)
    status, code, _ = refused(lambda: pinpoint(server, unknown).get_app(ApplicationId=app.app_id))
    assert (status, code) == (403, "ForbiddenException")


def test_an_unsigned_request_is_forbidden(server: Server, app: App) -> None:
    client = pinpoint(server, None, signature_version=botocore.UNSIGNED)
    status, code, message = refused(lambda: client.get_app(ApplicationId=app.app_id))
    assert (status, code) == (403, "ForbiddenException")
    assert "Missing Authentication Token" in message


def test_a_body_changed_after_signing_is_forbidden_and_not_acted_on(
    server: Server, operator: Key
) -> None:
    client = pinpoint(server, operator)
    signed_name = f"signed-{uuid.uuid4().hex[:8]}"
    sent_name = f"swappd-{uuid.uuid4().hex[:8]}"  # the same length: Content-Length still holds

    def tamper(request: Any, **_: Any) -> None:
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        assert signed_name.encode() in body
        request.body = body.replace(signed_name.encode(), sent_name.encode())

    client.meta.events.register("before-send.pinpoint.CreateApp", tamper)
    status, code, _ = refused(
        lambda: client.create_app(CreateApplicationRequest={"Name": signed_name})
    )
    assert (status, code) == (403, "ForbiddenException")
    names = {
        a["Name"] for a in pinpoint(server, operator).get_apps()["ApplicationsResponse"]["Item"]
    }
    assert sent_name not in names and signed_name not in names


def _signed_request(
    server: Server, key: Key, method: str, path: str, body: bytes, headers: dict[str, str]
) -> AWSRequest:
    """A request signed by botocore's own signer, as an SDK would send it."""
    request = AWSRequest(method=method, url=server.base_url + path, data=body, headers=headers)
    SigV4Auth(AwsCredentials(key.key_id, key.secret), "mobiletargeting", REGION).add_auth(request)
    return request


@pytest.mark.parametrize("declared", ["body", "UNSIGNED-PAYLOAD"])
def test_a_body_that_does_not_match_its_declared_hash_is_forbidden(
    server: Server, operator: Key, declared: str
) -> None:
    signed = json.dumps({"Name": f"hashed-{uuid.uuid4().hex[:8]}"}).encode()
    payload_hash = hashlib.sha256(signed).hexdigest() if declared == "body" else declared
    request = _signed_request(
        server,
        operator,
        "POST",
        "/v1/apps",
        signed,
        {"Content-Type": "application/json", "X-Amz-Content-SHA256": payload_hash},
    )
    sent = json.dumps({"Name": f"evil-{uuid.uuid4().hex[:8]}"}).encode()
    with server.fresh_client() as http:
        answer = http.post("/v1/apps", content=sent, headers=dict(request.headers.items()))
    assert answer.status_code == 403, answer.text
    assert answer.headers["x-amzn-ErrorType"] == "ForbiddenException"
    assert answer.json()["Message"]


def test_the_same_signed_request_sent_as_signed_is_accepted(server: Server, operator: Key) -> None:
    """The control for the test above: the hand-sent request itself is fine."""
    name = f"handsent-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"Name": name}).encode()
    request = _signed_request(
        server,
        operator,
        "POST",
        "/v1/apps",
        body,
        {
            "Content-Type": "application/json",
            "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
        },
    )
    with server.fresh_client() as http:
        answer = http.post("/v1/apps", content=body, headers=dict(request.headers.items()))
    assert answer.status_code == 201, answer.text
    assert answer.json()["Name"] == name


@pytest.fixture
def clock_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dt.timedelta], None]]:
    """Move the clock botocore signs with (``botocore.auth.get_current_datetime``)."""
    real = botocore.auth.get_current_datetime

    def shift(offset: dt.timedelta) -> None:
        monkeypatch.setattr(
            botocore.auth, "get_current_datetime", lambda *a, **k: real(*a, **k) + offset
        )

    yield shift


@pytest.mark.parametrize("minutes", [-20, 20])
def test_a_signature_20_minutes_off_is_forbidden(
    server: Server, app: App, clock_off: Callable[[dt.timedelta], None], minutes: int
) -> None:
    client = pinpoint(server, app.read)
    clock_off(dt.timedelta(minutes=minutes))
    status, code, message = refused(lambda: client.get_app(ApplicationId=app.app_id))
    assert (status, code) == (403, "ForbiddenException")
    assert "expired" in message.lower()


def test_a_signature_a_few_minutes_off_is_accepted(
    server: Server, app: App, clock_off: Callable[[dt.timedelta], None]
) -> None:
    client = pinpoint(server, app.read)
    clock_off(dt.timedelta(minutes=-5))
    assert client.get_app(ApplicationId=app.app_id)["ApplicationResponse"]["Id"] == app.app_id


def test_an_error_carries_pinpoints_request_id(server: Server, app: App) -> None:
    client = pinpoint(server, None, signature_version=botocore.UNSIGNED)
    with pytest.raises(ClientError) as caught:
        client.get_app(ApplicationId=app.app_id)
    response = caught.value.response
    assert response["ResponseMetadata"]["RequestId"]
    assert response["RequestID"] == response["ResponseMetadata"]["RequestId"]
    assert response["Message"] == response["Error"]["Message"]


# --- apps and keys ------------------------------------------------------------------------


def test_an_unknown_app_is_not_found(server: Server, app: App, operator: Key) -> None:
    unknown = uuid.uuid4().hex
    for key in (app.read, operator):
        status, code, message = refused(
            lambda key=key: pinpoint(server, key).get_app(ApplicationId=unknown)
        )
        assert (status, code) == (404, "NotFoundException")
        assert unknown in message


def test_another_projects_app_is_not_found(server: Server, app: App, other_app: App) -> None:
    client = pinpoint(server, app.write)
    status, code, _ = refused(lambda: client.get_app(ApplicationId=other_app.app_id))
    assert (status, code) == (404, "NotFoundException")
    status, code, _ = refused(lambda: client.delete_app(ApplicationId=other_app.app_id))
    assert code in {"NotFoundException", "ForbiddenException"}  # never acted on
    assert pinpoint(server, other_app.read).get_app(ApplicationId=other_app.app_id)


def test_a_project_key_lists_only_its_own_app(server: Server, app: App, other_app: App) -> None:
    shown = pinpoint(server, app.read).get_apps()["ApplicationsResponse"]
    assert [item["Id"] for item in shown["Item"]] == [app.app_id]
    assert "NextToken" not in shown


def test_an_operator_key_lists_every_app(
    server: Server, app: App, other_app: App, operator: Key
) -> None:
    client = pinpoint(server, operator)
    seen: list[str] = []
    token: str | None = None
    while True:  # Pinpoint has no paginators: page by hand, 1 at a time
        page = client.get_apps(PageSize="1", **({"Token": token} if token else {}))
        found = page["ApplicationsResponse"]
        assert len(found["Item"]) <= 1
        seen += [item["Id"] for item in found["Item"]]
        token = found.get("NextToken")
        if not token:
            break
    assert {app.app_id, other_app.app_id} <= set(seen)
    assert len(seen) == len(set(seen))


def test_create_app_needs_an_operator_key(server: Server, app: App, operator: Key) -> None:
    name = f"made-{uuid.uuid4().hex[:8]}"
    for key in (app.write, app.read):
        status, code, message = refused(
            lambda key=key: pinpoint(server, key).create_app(
                CreateApplicationRequest={"Name": name}
            )
        )
        assert (status, code) == (403, "ForbiddenException")
        assert "operator key" in message
    made = pinpoint(server, operator).create_app(
        CreateApplicationRequest={"Name": name, "tags": {"team": "growth"}}
    )
    assert made["ResponseMetadata"]["HTTPStatusCode"] == 201
    shown = made["ApplicationResponse"]
    assert shown["Name"] == name and shown["tags"] == {"team": "growth"}
    assert len(shown["Id"]) == 32 and int(shown["Id"], 16) >= 0
    assert shown["Arn"].startswith(f"arn:aws:mobiletargeting:{REGION}:")
    assert shown["Arn"].endswith(f":apps/{shown['Id']}")
    assert (
        pinpoint(server, operator).get_app(ApplicationId=shown["Id"])["ApplicationResponse"]["Name"]
        == name
    )


def test_delete_app_needs_an_operator_key(server: Server, operator: Key) -> None:
    doomed = new_app(server)
    status, code, _ = refused(
        lambda: pinpoint(server, doomed.write).delete_app(ApplicationId=doomed.app_id)
    )
    assert (status, code) == (403, "ForbiddenException")
    gone = pinpoint(server, operator).delete_app(ApplicationId=doomed.app_id)
    assert gone["ApplicationResponse"]["Id"] == doomed.app_id
    status, code, _ = refused(
        lambda: pinpoint(server, operator).get_app(ApplicationId=doomed.app_id)
    )
    assert (status, code) == (404, "NotFoundException")


def test_an_unsupported_operation_says_so_in_pinpoints_error_format(
    server: Server, app: App, operator: Key
) -> None:
    for key in (app.read, operator):
        status, code, message = refused(
            lambda key=key: pinpoint(server, key).get_campaigns(ApplicationId=app.app_id)
        )
        assert 400 <= status < 500
        assert code in PINPOINT_CODES
        assert "not support" in message and "campaigns" in message


def test_an_operator_keeps_a_pinpoint_application_id(server: Server, operator: Key) -> None:
    app_id = uuid.uuid4().hex
    name = f"migrated-{app_id[:8]}"
    result = run_cli(server.data_dir, "admin", "create-project", name, "--app-id", app_id, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["project_id"] == app_id
    shown = pinpoint(server, operator).get_app(ApplicationId=app_id)["ApplicationResponse"]
    assert (shown["Id"], shown["Name"]) == (app_id, name)
    # …and the project's own keys act on it under that id.
    read = key_of(create_key(server.data_dir, app_id, "read"))
    assert (
        pinpoint(server, read).get_app(ApplicationId=app_id)["ApplicationResponse"]["Id"] == app_id
    )


def test_an_app_id_that_is_not_32_hex_is_refused_by_the_cli(server: Server) -> None:
    result = run_cli(
        server.data_dir,
        "admin",
        "create-project",
        f"bad-{uuid.uuid4().hex[:6]}",
        "--app-id",
        "not-an-app-id",
    )
    assert result.returncode != 0
    assert "app" in (result.stdout + result.stderr).lower()


def test_a_proxy_that_changes_the_host_or_the_path_breaks_the_signature(
    server: Server, app: App
) -> None:
    """Why docs/pinpoint.md asks a reverse proxy to keep the Host and the path: both are signed."""
    path = f"/v1/apps/{app.app_id}"
    request = _signed_request(server, app.read, "GET", path, b"", {})
    headers = dict(request.headers.items())
    with server.fresh_client() as http:
        assert http.get(path, headers=headers).status_code == 200
        rehosted = http.get(path, headers={**headers, "Host": "spillway.example.com"})
        assert rehosted.status_code == 403, rehosted.text
        # A client pointed at https://proxy/pinpoint signs /pinpoint/v1/…; a proxy that strips
        # the prefix hands Spillway a path the signature does not cover.
        prefixed = _signed_request(server, app.read, "GET", "/pinpoint" + path, b"", {})
        stripped = http.get(path, headers=dict(prefixed.headers.items()))
        assert stripped.status_code == 403, stripped.text
        assert stripped.headers["x-amzn-ErrorType"] == "ForbiddenException"
