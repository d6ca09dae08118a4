"""With SPILLWAY_LOG_LEVEL=DEBUG, no secret of any auth mode reaches the log.

Each case runs a real ``spillway serve`` (with its worker) at DEBUG against a real test server,
validates a destination, creates it, exports to it, and then searches the whole log for every
secret involved: the destination's own (secret keys, session tokens, account keys, SAS
signatures, private keys), the operator's (Spillway's own AWS identity), the AssumeRole
answer's, and the integration key's. botocore, the Azure SDK and google-auth all print such
values at DEBUG; Spillway keeps them at WARNING and redacts every line.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import (
    Credentials,
    Server,
    ServerFactory,
    auth,
    create_credentials,
    make_events,
)
from tests.integration.destinations.case_azure_blob import AzureWorld
from tests.integration.destinations.case_gcs import GcsWorld, key_json, new_pem
from tests.integration.destinations.case_s3 import S3World, allow, policy
from tests.server_gcs import token_endpoint

RUN_TIMEOUT = 90.0


@dataclass
class Case:
    """One auth mode: the destination body, the server's extra env, the secrets to look for."""

    body: dict[str, Any]
    secrets: list[str]
    env: dict[str, str] = field(default_factory=dict)
    project: str = ""  # a project name fixed in advance (for SPILLWAY_SERVICE_IDENTITY)
    # Export and check the run succeeded (off where the test server cannot serve the mode).
    run: bool = True


def s3_access_key_with_session_token(s3: S3World, **_: Any) -> Case:
    iam: Any = s3.moto.client("iam")
    name = "Temp-" + uuid.uuid4().hex[:8]
    trust = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    bucket = f"arn:aws:s3:::{s3.bucket}"
    iam.put_role_policy(
        RoleName=name, PolicyName="w", PolicyDocument=policy(allow("s3:*", [bucket, f"{bucket}/*"]))
    )
    sts: Any = s3.moto.client("sts")
    temp = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="spillway-test")["Credentials"]
    return Case(
        body={
            "kind": "s3",
            "config": {"bucket": s3.bucket, "endpoint_url": s3.moto.endpoint, "sse": "none"},
            "credentials": {
                "mode": "access_key",
                "access_key_id": temp["AccessKeyId"],
                "secret_access_key": temp["SecretAccessKey"],
                "session_token": temp["SessionToken"],
            },
        },
        secrets=[temp["SecretAccessKey"], temp["SessionToken"]],
    )


def s3_role(s3: S3World, **_: Any) -> Case:
    iam: Any = s3.moto.client("iam")
    name = "SpillwayExport-" + uuid.uuid4().hex[:8]
    trust = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    bucket = f"arn:aws:s3:::{s3.bucket}"
    iam.put_role_policy(
        RoleName=name, PolicyName="w", PolicyDocument=policy(allow("s3:*", [bucket, f"{bucket}/*"]))
    )
    service = s3.user(allow("sts:AssumeRole", role["Arn"]))  # Spillway's own identity
    secret = service.secret_access_key.get_secret_value()
    return Case(
        body={
            "kind": "s3",
            "config": {"bucket": s3.bucket, "endpoint_url": s3.moto.endpoint, "sse": "none"},
            "credentials": {"mode": "role", "role_arn": role["Arn"]},
        },
        # The AssumeRole answer's secret key and token are the server's to find: see below.
        secrets=[secret],
        env={
            "AWS_ACCESS_KEY_ID": service.access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_ENDPOINT_URL_STS": s3.moto.endpoint,
        },
    )


def s3_service_identity(s3: S3World, **_: Any) -> Case:
    service = s3.full_user()
    secret = service.secret_access_key.get_secret_value()
    project = "logs-" + uuid.uuid4().hex[:8]
    return Case(
        body={
            "kind": "s3",
            "config": {"bucket": s3.bucket, "sse": "none"},
            "credentials": {"mode": "service_identity"},
        },
        secrets=[secret],
        env={
            "AWS_ACCESS_KEY_ID": service.access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_ENDPOINT_URL_S3": s3.moto.endpoint,
            "AWS_ENDPOINT_URL_STS": s3.moto.endpoint,
            "SPILLWAY_SERVICE_IDENTITY": f"{project}:{s3.bucket}",
        },
        project=project,
    )


def azure(mode: str) -> Callable[..., Case]:
    def make(azure: AzureWorld, **_: Any) -> Case:
        key = azure.azurite.account_key
        credentials: dict[str, Any] = {"mode": mode, "account_name": azure.azurite.account_name}
        secrets = [key]
        if mode == "account_key":
            credentials["account_key"] = key
        elif mode == "connection_string":
            credentials = {"mode": mode, "connection_string": azure.azurite.connection_string()}
        else:
            sas = azure.sas_token("racwdl")
            credentials["sas_token"] = sas
            secrets.append(re.search(r"sig=([^&]+)", sas).group(1))  # type: ignore[union-attr]
        return Case(
            body={
                "kind": "azure_blob",
                "config": {"container": azure.container, "account_url": azure.azurite.account_url},
                "credentials": credentials,
            },
            secrets=secrets,
        )

    return make


def gcs_service_account(gcs: GcsWorld, token_url: str, **_: Any) -> Case:
    pem = new_pem()
    key = key_json(private_key=pem, token_uri=f"{token_url}/token")
    body_lines = [line for line in pem.splitlines() if not line.startswith("-----")]
    return Case(
        body={
            "kind": "gcs",
            "config": {"bucket": gcs.bucket, "endpoint_url": gcs.endpoint},
            "credentials": {"mode": "service_account", "key_json": key},
        },
        # Any line of the key's body would be a leak; look for a few distinctive ones.
        secrets=[body_lines[1], body_lines[len(body_lines) // 2], body_lines[-2]],
    )


CASES: dict[str, Callable[..., Case]] = {
    "s3-access-key-session-token": s3_access_key_with_session_token,
    "s3-role": s3_role,
    "s3-service-identity": s3_service_identity,
    "azure-account-key": azure("account_key"),
    "azure-connection-string": azure("connection_string"),
    "azure-sas-token": azure("sas_token"),
    "gcs-service-account": gcs_service_account,
}

# Values that must never appear unredacted, whoever made them: what botocore prints of the
# AssumeRole answer the server gets (role mode), of signed headers, of Azure's SharedKey.
LEAK_PATTERNS = [
    re.compile(r"<(SecretAccessKey|SessionToken)>(?!\[redacted\])[^<]+<"),
    re.compile(r"(?i)x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?(?!\[redacted\])[A-Za-z0-9/+]"),
    re.compile(r"(?i)authorization['\"]?\s*[:=]\s*b?['\"]?(?!\[redacted\])\w"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?!\[redacted\])"),
]


@pytest.fixture
def token_url() -> Iterator[str]:
    with token_endpoint() as url:
        yield url


@pytest.mark.parametrize("mode", list(CASES))
def test_no_secret_in_the_debug_log(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path, start_spillway: ServerFactory
) -> None:
    worlds: dict[str, Any] = {}
    if mode.startswith("s3"):
        worlds["s3"] = request.getfixturevalue("s3_world")
    elif mode.startswith("azure"):
        worlds["azure"] = request.getfixturevalue("azure_world")
    else:
        worlds["gcs"] = request.getfixturevalue("gcs_world")
        worlds["token_url"] = request.getfixturevalue("token_url")
    case = CASES[mode](**worlds)  # set-up calls happen here, before the server logs anything

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {"SPILLWAY_LOG_LEVEL": "DEBUG", **case.env}
    creds = create_credentials(data_dir, case.project or None, env=env)
    server = start_spillway(data_dir, extra_env=env, worker=True)
    exported = exercise(server, creds, case)
    server.stop()  # flush everything the process had to say
    log = server.log()

    secrets = [*case.secrets, creds.write["secret"], creds.read_token]
    for secret in secrets:
        assert secret not in log, f"{mode}: a secret ({secret[:6]}…) is in the log:\n{log[-4000:]}"
    for pattern in LEAK_PATTERNS:
        found = pattern.search(log)
        assert found is None, f"{mode}: {found.group(0)!r} in the log" if found else ""
    assert "DEBUG spillway.logs: logging at DEBUG" in log, f"not at DEBUG:\n{log[-4000:]}"
    assert exported, f"{mode}: the export did not succeed; see the log:\n{log[-4000:]}"


def exercise(server: Server, creds: Credentials, case: Case) -> bool:
    """Validate, create, ingest, export once; True when the run succeeded."""
    write = auth(creds.write_token)
    client = server.client
    checked = client.post("/api/v1/destinations/validate", json=case.body, headers=write)
    assert checked.status_code == 200, checked.text
    assert checked.json()["ok"] is True, checked.json()
    # A failing validation logs too: send a wrong secret where there is one.
    wrong = {**case.body, "credentials": {**case.body["credentials"]}}
    for name in ("secret_access_key", "account_key"):
        if name in wrong["credentials"]:
            wrong["credentials"][name] = "A" * 40 + "=="
    assert client.post("/api/v1/destinations/validate", json=wrong, headers=write).status_code < 500

    created = client.post("/api/v1/destinations", json={**case.body, "name": "d"}, headers=write)
    assert created.status_code == 201, created.text
    destination = created.json()["id"]
    assert client.post(f"/api/v1/destinations/{destination}/validate", headers=write).json()["ok"]
    made = client.post(
        "/api/v1/exports",
        json={"name": "events", "destination_id": destination, "frequency": "daily"},
        headers=write,
    )
    assert made.status_code == 201, made.text
    export = made.json()["id"]
    assert client.post("/api/v1/events", json=make_events(20), headers=write).status_code == 200
    run = client.post(f"/api/v1/exports/{export}/run", headers=write)
    assert run.status_code == 202, run.text
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        runs = client.get(f"/api/v1/exports/{export}/runs", headers=auth(creds.read_token))
        statuses = {r["id"]: r["status"] for r in runs.json()["runs"]}
        status = statuses.get(run.json()["run_id"])
        if status in ("succeeded", "failed"):
            return status == "succeeded"
        time.sleep(0.5)
    return False
