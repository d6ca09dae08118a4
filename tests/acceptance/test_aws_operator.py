"""A real ``spillway serve`` and the operator's AWS settings: SPILLWAY_SERVICE_IDENTITY is
checked at start, and a role destination on a custom endpoint never gets Spillway's own
identity (the operator's STS, AWS_ENDPOINT_URL_STS, is where AssumeRole goes)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import ServerFactory, auth, create_credentials, run_cli
from tests.integration.destinations.case_s3 import S3World, allow, policy
from tests.server_recorder import DENIED, recorder
from tests.servers import allow_endpoint, free_port


def test_one_bucket_granted_to_two_projects_stops_the_server_at_start(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "serve",
        "--no-worker",
        "--port",
        str(free_port()),
        env={"SPILLWAY_SERVICE_IDENTITY": "acme:shared-exports,beta:shared-exports"},
        timeout=30,
    )
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "SPILLWAY_SERVICE_IDENTITY" in said
    assert "'shared-exports' for two projects" in said


def test_a_role_on_a_custom_endpoint_gets_no_service_identity_from_a_real_server(
    tmp_path: Path, start_spillway: ServerFactory, s3_world: S3World
) -> None:
    moto = s3_world.moto
    iam: Any = moto.client("iam")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    creds = create_credentials(data_dir, read_key=False)
    # The role trusts anyone (moto does not check the External ID anyway).
    trust = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    name = "SpillwayExport-" + uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(RoleName=name, PolicyName="s3", PolicyDocument=policy(allow("s3:*", "*")))
    service = s3_world.user(allow("sts:AssumeRole", role["Arn"]))
    secret = service.secret_access_key.get_secret_value()
    with recorder(status=403, body=DENIED, content_type="application/xml") as custom:
        allow_endpoint(custom.url)  # in SPILLWAY_ALLOWED_ENDPOINTS of the server below
        server = start_spillway(
            data_dir,
            extra_env={
                # Spillway's own identity, and the operator's STS: moto.
                "AWS_ACCESS_KEY_ID": service.access_key_id,
                "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_ENDPOINT_URL_STS": moto.endpoint,
            },
        )
        answer = server.client.post(
            "/api/v1/destinations/validate",
            headers=auth(creds.write_token),
            json={
                "kind": "s3",
                "config": {"bucket": s3_world.bucket, "endpoint_url": custom.url, "sse": "none"},
                "credentials": {"mode": "role", "role_arn": role["Arn"]},
            },
        )
        seen = custom.seen()
    for forbidden in (service.access_key_id, secret, "AssumeRole", "GetCallerIdentity"):
        assert forbidden not in seen
    assert answer.status_code == 200, answer.text
    checks = {check["name"]: check for check in answer.json()["checks"]}
    assert checks["credentials"]["status"] == "passed", checks
    assert checks["role"]["status"] == "passed", checks
    assert custom.requests, "the destination's endpoint was never called"
    assert "Credential=ASIA" in seen  # the role's temporary key, from moto's STS
