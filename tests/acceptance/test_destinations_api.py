"""The destinations API end to end against moto (IAM enforced): lifecycle, rotation, secrecy."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from spillway import destinations as registry
from spillway import netpolicy
from spillway.api.app import create_app
from spillway.destinations.aws import service_identity
from spillway.secrets import SecretBox
from spillway.services.projects import Scope, create_key, create_project
from spillway.settings import Settings
from spillway.store import catalog
from tests.integration.destinations.case_s3 import S3World
from tests.server_recorder import DENIED, MARKER, PAGE, recorder
from tests.servers import allow_endpoint, free_port
from tests.store_queries import audit_entries


@dataclass
class Api:
    client: TestClient
    write: dict[str, str]
    read: dict[str, str]
    project_id: int
    data_dir: Path
    settings: Settings

    def db_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.data_dir.glob("spillway.db*"))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path)
    app = create_app(settings)
    engine = app.state.context.engine
    project = create_project(engine, "acme")
    box = SecretBox(settings.service_key())
    write = create_key(engine, box, "acme", Scope.WRITE).token
    read = create_key(engine, box, "acme", Scope.READ).token
    with TestClient(app) as client:
        yield Api(
            client,
            {"Authorization": f"Bearer {write}"},
            {"Authorization": f"Bearer {read}"},
            project.id,
            tmp_path,
            settings,
        )


def s3_body(world: S3World, key: Any, name: str = "warehouse", **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "s3",
        "config": {
            "bucket": world.bucket,
            "folder": "spillway",
            "endpoint_url": world.moto.endpoint,
            "sse": "AES256",
            **config,
        },
        "credentials": {
            "mode": "access_key",
            "access_key_id": key.access_key_id,
            "secret_access_key": key.secret_access_key.get_secret_value(),
        },
    }


def test_destination_lifecycle_never_leaks_the_secret(
    api: Api, s3_world: S3World, caplog: pytest.LogCaptureFixture
) -> None:
    # The test's own setup calls to moto (creating keys) happen before logs are captured:
    # botocore logs response bodies at DEBUG, and those would hold the keys we create.
    first = s3_world.full_user()
    second = s3_world.full_user()
    caplog.set_level(logging.DEBUG)
    secrets = [
        first.secret_access_key.get_secret_value(),
        second.secret_access_key.get_secret_value(),
    ]
    answers: list[str] = []

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = api.client.request(method, path, headers=api.write, **kwargs)
        answers.append(response.text)
        return response

    # Validate before creating: a wrong secret fails with the reason, nothing stored.
    wrong = s3_body(s3_world, first)
    wrong["credentials"]["secret_access_key"] = "w" * 40
    answer = call("POST", "/api/v1/destinations/validate", json=wrong)
    assert answer.status_code == 200
    assert answer.json()["ok"] is False
    assert answer.json()["checks"][0]["name"] == "credentials"
    assert "SignatureDoesNotMatch" in answer.json()["checks"][0]["message"]
    assert call("POST", "/api/v1/destinations", json=wrong).status_code == 422

    created = call("POST", "/api/v1/destinations", json=s3_body(s3_world, first))
    assert created.status_code == 201, created.text
    destination = created.json()
    assert destination["credentials"]["mode"] == "access_key"
    masked = destination["credentials"]["access_key_id"]
    assert masked.startswith(first.access_key_id[:4]) and "…" in masked
    assert masked.endswith(first.access_key_id[-4:])
    assert {c["name"] for c in destination["checks"]} >= {"credentials", "bucket", "write"}
    path = f"/api/v1/destinations/{destination['id']}"

    # Rotation to credentials that fail: 4xx with the checks, and the old ones keep working.
    bad = {
        "mode": "access_key",
        "access_key_id": second.access_key_id,
        "secret_access_key": "b" * 40,
    }
    rotated = call("PUT", f"{path}/credentials", json=bad)
    assert rotated.status_code == 422
    assert any(c["status"] == "failed" for c in rotated.json()["checks"])
    assert "old ones stay" in rotated.json()["message"]
    assert call("POST", f"{path}/validate").json()["ok"] is True

    # Rotation to valid credentials: the next write uses them, even once the old key is gone.
    good = {
        "mode": "access_key",
        "access_key_id": second.access_key_id,
        "secret_access_key": secrets[1],
    }
    rotated = call("PUT", f"{path}/credentials", json=good)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["credentials_version"] == 2
    iam: Any = s3_world.moto.client("iam")
    for user in iam.list_users()["Users"]:
        for key in iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]:
            if key["AccessKeyId"] == first.access_key_id:
                iam.delete_access_key(UserName=user["UserName"], AccessKeyId=key["AccessKeyId"])
    assert call("POST", f"{path}/validate").json()["ok"] is True

    # Every read path shows masked credentials only.
    assert call("GET", path).status_code == 200
    assert call("GET", "/api/v1/destinations").status_code == 200

    blobs = {
        "responses": "\n".join(answers),
        "logs": caplog.text,
        "db": api.db_bytes().decode("latin-1"),
    }
    for secret in secrets:
        for where, blob in blobs.items():
            assert secret not in blob, f"a secret appears in the {where}"
    with api.client.app.state.context.engine.connect() as conn:  # type: ignore[attr-defined]
        audit = audit_entries(conn, api.project_id)
    actions = [entry["action"] for entry in audit]
    assert actions[:2] == ["destination.rotate_credentials", "destination.create"]
    assert all(secret not in repr(audit) for secret in secrets)


def test_credentials_csv_from_the_console(api: Api, s3_world: S3World) -> None:
    user = s3_world.full_user()
    body = s3_body(s3_world, user)
    csv_text = (
        "Access key ID,Secret access key\r\n"
        f"{user.access_key_id},{user.secret_access_key.get_secret_value()}\r\n"
    )
    body["credentials"] = {"mode": "credentials_csv", "csv": csv_text}
    created = api.client.post("/api/v1/destinations", json=body, headers=api.write)
    assert created.status_code == 201, created.text
    assert created.json()["credentials"]["source"] == "credentials_csv"
    body["name"] = "other"
    body["credentials"] = {"mode": "credentials_csv", "csv": "user,pass\nfoo,bar\n"}
    refused = api.client.post("/api/v1/destinations", json=body, headers=api.write)
    assert refused.status_code == 422
    assert "AWS console's credentials CSV" in refused.json()["message"]


def test_update_revalidates_and_delete_disables_exports(api: Api, s3_world: S3World) -> None:
    user = s3_world.full_user()
    created = api.client.post(
        "/api/v1/destinations", json=s3_body(s3_world, user), headers=api.write
    ).json()
    path = f"/api/v1/destinations/{created['id']}"
    moved = api.client.patch(path, json={"config": {"folder": "elsewhere"}}, headers=api.write)
    assert moved.status_code == 200, moved.text
    assert moved.json()["config"]["folder"] == "elsewhere"
    missing = api.client.patch(
        path, json={"config": {"bucket": "spw-no-such-bucket-xyz"}}, headers=api.write
    )
    # This user may not look at other buckets, so the write check is what fails.
    assert missing.status_code == 422
    assert "spw-no-such-bucket-xyz" in missing.json()["message"]
    assert api.client.get(path, headers=api.read).json()["config"]["bucket"] == s3_world.bucket
    # What may change comes from the kind's description, and the refusal names it.
    fixed = api.client.patch(path, json={"config": {"account_url": "x"}}, headers=api.write)
    assert fixed.status_code == 400
    updatable = ", ".join(registry.capabilities("s3").updatable)
    assert (
        f"cannot change account_url of a s3 destination; changeable: {updatable}."
        in (fixed.json()["message"])
    )

    engine = api.client.app.state.context.engine  # type: ignore[attr-defined]
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.insert_export(
            conn,
            {
                "id": "e" * 32,
                "project_id": api.project_id,
                "name": "events",
                "destination_id": created["id"],
                "frequency": "daily",
                "settings": {},
                "status": "active",
                "cursor_seq": 0,
            },
        )
    deleted = api.client.delete(path, headers=api.write)
    assert deleted.status_code == 200
    assert deleted.json()["disabled_exports"] == [
        {"id": "e" * 32, "name": "events", "status": "disabled"}
    ]
    with engine.connect() as conn:
        export = catalog.export(conn, api.project_id, "e" * 32)
    assert export is not None and export.status == "disabled"
    assert "deleted" in export.status_reason
    assert api.client.get(path, headers=api.read).status_code == 404


def test_scopes_and_bad_input(api: Api, s3_world: S3World) -> None:
    user = s3_world.full_user()
    body = s3_body(s3_world, user)
    assert api.client.post("/api/v1/destinations", json=body, headers=api.read).status_code == 403
    assert api.client.post("/api/v1/destinations", json=body).status_code == 401
    for broken, words in [
        ({**body, "kind": "ftp"}, "unknown destination kind"),
        ({**body, "config": {"bucket": "Bad_Bucket"}}, "bucket"),
        ({**body, "credentials": {"mode": "access_key"}}, "credentials"),
        ({**body, "config": {**body["config"], "sse": "aws:kms"}}, "kms_key_arn"),
    ]:
        answer = api.client.post("/api/v1/destinations", json=broken, headers=api.write)
        assert 400 <= answer.status_code < 500, answer.text
        assert words in answer.json()["message"]
    assert (
        api.client.post(
            "/api/v1/destinations",
            content=b"{not json",
            headers={**api.write, "Content-Type": "application/json"},
        ).status_code
        == 422
    )
    forced = api.client.post(
        "/api/v1/destinations",
        json={**s3_body(s3_world, user, bucket="spw-not-there-yet"), "force": True},
        headers=api.write,
    )
    assert forced.status_code == 201
    assert forced.json()["checks"] == []


def test_key_secret_not_in_masked_view() -> None:
    from spillway.destinations.s3.config import AccessKey, CredentialsInput
    from spillway.destinations.s3.kind import public_credentials

    value = AccessKey(access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key=SecretStr("s" * 40))
    view = public_credentials(CredentialsInput(value=value))
    assert view == {"mode": "access_key", "access_key_id": "AKIA…MPLE", "source": "typed"}


# --- What the operator allows: custom endpoints and Spillway's own identity (issue 8) -----------


@pytest.fixture
def operator_settings() -> Iterator[None]:
    """Tests below change the process's outbound policy and grants; put them back after."""
    policy_before = netpolicy.current()
    grants_before = service_identity._current
    yield
    netpolicy.configure(policy_before)
    service_identity.configure(grants_before)


def aws_body(kind: str, endpoint_url: str | None, target: str, credentials: Any) -> dict[str, Any]:
    field = {"s3": "bucket", "kinesis": "stream", "firehose": "delivery_stream"}[kind]
    return {
        "name": f"{kind}-{target}",
        "kind": kind,
        "config": {field: target, "endpoint_url": endpoint_url},
        "credentials": credentials,
    }


ACCESS_KEY = {
    "mode": "access_key",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@pytest.mark.parametrize("kind", ["s3", "kinesis", "firehose"])
def test_an_unlisted_endpoint_is_refused_over_http_and_never_reached(
    api: Api, s3_world: S3World, kind: str, operator_settings: None
) -> None:
    with recorder(status=403, body=DENIED, content_type="application/xml") as listener:
        assert not netpolicy.current().listed(netpolicy.origin_of(listener.url))
        body = aws_body(kind, listener.url, "spw-target", ACCESS_KEY)
        answers = [
            api.client.post("/api/v1/destinations/validate", json=body, headers=api.write),
            api.client.post("/api/v1/destinations", json=body, headers=api.write),
            api.client.post(
                "/api/v1/destinations", json={**body, "force": True}, headers=api.write
            ),
        ]
        # Moving a stored destination there is refused too.
        stored = api.client.post(
            "/api/v1/destinations",
            json={**aws_body(kind, None, "spw-target", ACCESS_KEY), "name": "aws", "force": True},
            headers=api.write,
        )
        assert stored.status_code == 201, stored.text
        answers.append(
            api.client.patch(
                f"/api/v1/destinations/{stored.json()['id']}",
                json={"config": {"endpoint_url": listener.url}, "force": True},
                headers=api.write,
            )
        )
        for answer in answers:
            assert answer.status_code == 422, answer.text
            assert "SPILLWAY_ALLOWED_ENDPOINTS" in answer.json()["message"]
        assert listener.connections == 0

        allow_endpoint(listener.url)  # once the operator lists it, the project may use it
        listener.status, listener.body, listener.content_type = 200, PAGE, "text/html"
        listed = api.client.post(
            "/api/v1/destinations", json={**body, "force": True}, headers=api.write
        )
        assert listed.status_code == 201, listed.text
        checked = api.client.post(
            "/api/v1/destinations/validate", json=body, headers=api.write
        ).json()
    assert listener.connections > 0
    # It answered an HTML page: said so, never repeated back.
    assert checked["ok"] is False
    assert "not an AWS response" in str(checked["checks"])
    assert MARKER not in str(checked)


def test_service_identity_is_off_by_default_and_granted_per_project_over_http(
    api: Api, s3_world: S3World, operator_settings: None
) -> None:
    service = {"mode": "service_identity"}
    body = aws_body("s3", None, s3_world.bucket, service)
    service_identity.configure(service_identity.parse_grants(""))  # the default
    for forced in (False, True):
        off = api.client.post(
            "/api/v1/destinations", json={**body, "force": forced}, headers=api.write
        )
        assert off.status_code == 422, off.text
        assert "service_identity is turned off on this server" in off.json()["message"]

    engine = api.client.app.state.context.engine  # type: ignore[attr-defined]
    create_project(engine, "beta")
    beta = {
        "Authorization": "Bearer "
        + create_key(engine, SecretBox(api.settings.service_key()), "beta", Scope.WRITE).token
    }
    service_identity.configure(service_identity.parse_grants(f"acme:{s3_world.bucket}"))
    granted = api.client.post(
        "/api/v1/destinations", json={**body, "force": True}, headers=api.write
    )
    assert granted.status_code == 201, granted.text
    # Another project cannot reach that bucket through the operator's identity, even forced,
    # and acme cannot reach another bucket with it.
    other = api.client.post("/api/v1/destinations", json={**body, "force": True}, headers=beta)
    assert other.status_code == 422
    assert f"may not reach bucket {s3_world.bucket}" in other.json()["message"]
    elsewhere = aws_body("s3", None, "spw-not-granted", service)
    assert (
        api.client.post(
            "/api/v1/destinations", json={**elsewhere, "force": True}, headers=api.write
        ).status_code
        == 422
    )
    # Nor by moving its own destination, or switching one to the service identity.
    path = f"/api/v1/destinations/{granted.json()['id']}"
    moved = api.client.patch(
        path, json={"config": {"bucket": "spw-not-granted"}, "force": True}, headers=api.write
    )
    assert moved.status_code == 422
    keyed = api.client.post(
        "/api/v1/destinations",
        json={**aws_body("s3", None, "spw-not-granted", ACCESS_KEY), "force": True},
        headers=api.write,
    ).json()
    rotated = api.client.put(
        f"/api/v1/destinations/{keyed['id']}/credentials", json=service, headers=api.write
    )
    assert rotated.status_code == 422
    assert "may not reach bucket spw-not-granted" in rotated.json()["message"]


# --- Errors in people's words (issue 14, item 4) ------------------------------------------


def test_bad_values_answer_invalid_request_naming_the_field(api: Api, s3_world: S3World) -> None:
    """The same 422 code as exports; the field as written, and what it expects."""
    body = s3_body(s3_world, s3_world.full_user())
    for broken, words in [
        (
            {**body, "config": {**body["config"], "bucket_name": "acme"}},
            "config.bucket_name: unknown field; did you mean 'bucket'?",
        ),
        (
            {**body, "config": {**body["config"], "endpoint_url": None, "region": "EU"}},
            "config.region: 'EU' is not an AWS region code",
        ),
        (
            {
                **body,
                "config": {**body["config"], "endpoint_url": None},
                "credentials": {**body["credentials"], "secret_access_key": "tooshort"},
            },
            "credentials.secret_access_key: an AWS secret access key is 40 characters; this one "
            "has 8",
        ),
    ]:
        answer = api.client.post("/api/v1/destinations", json=broken, headers=api.write)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_request", answer.text
        assert words in answer.json()["message"], answer.text
    # A request that fails its schema answers the same code.
    schema = api.client.post(
        "/api/v1/destinations", json={**body, "kinds": "s3"}, headers=api.write
    )
    assert schema.status_code == 422, schema.text
    assert schema.json()["error"] == "invalid_request", schema.text
    assert "kinds: unknown field; did you mean 'kind'?" in schema.json()["message"], schema.text


def test_r2_keys_on_a_custom_endpoint_and_an_endpoint_that_does_not_answer(
    api: Api, operator_settings: None
) -> None:
    """R2-style keys are the endpoint's to judge; a closed port is a connectivity failure."""
    url = f"http://127.0.0.1:{free_port()}"
    allow_endpoint(url)
    body = {
        "name": "r2",
        "kind": "s3",
        "config": {"bucket": "acme", "endpoint_url": url, "region": "auto"},
        "credentials": {
            "mode": "access_key",
            "access_key_id": secrets.token_hex(16),
            "secret_access_key": secrets.token_hex(32),
        },
    }
    checked = api.client.post("/api/v1/destinations/validate", json=body, headers=api.write)
    assert checked.status_code == 200, checked.text
    first = checked.json()["checks"][0]
    assert (first["name"], first["status"]) == ("credentials", "failed"), first
    assert f"cannot reach the S3 endpoint {url} (connection refused)" in first["message"], first
    assert "rejected" not in first["message"], first
    refused = api.client.post("/api/v1/destinations", json=body, headers=api.write)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "validation_failed", refused.text
    forced = api.client.post(
        "/api/v1/destinations", json={**body, "force": True}, headers=api.write
    )
    assert forced.status_code == 201, forced.text
