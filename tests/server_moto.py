"""moto's server for S3, STS, IAM and KMS, with IAM authentication enforced after setup."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import orjson

from tests.servers import ServerFailed, allow_endpoint, free_port, wait_for_port

REGION = "us-east-1"
# Requests moto serves before it starts checking signatures and IAM policies: exactly the
# three setup calls below that create the admin user, its policy and its access key.
SETUP_REQUESTS = 3
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class Moto:
    """A running moto server and the admin credentials that manage it."""

    endpoint: str
    admin_key: str
    admin_secret: str

    def client(self, service: str, key: str | None = None, secret: str | None = None) -> object:
        """A boto3 client on this server (admin credentials unless others are given)."""
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key or self.admin_key,
            aws_secret_access_key=secret or self.admin_secret,
        )


@contextmanager
def moto_server() -> Iterator[Moto]:
    """Start moto_server on a free port; yield it with admin credentials; stop it."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])
    env = {
        **os.environ,
        "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS),
        "MOTO_ALLOW_NONEXISTENT_REGION": "true",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.moto_main", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=out,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
    try:
        try:
            wait_for_port(port, timeout=60)
        except ServerFailed as exc:
            raise ServerFailed(f"moto_server did not start: {exc}\n{log.read_text()}") from None
        endpoint = f"http://127.0.0.1:{port}"
        # The operator lists it, as they would a MinIO: destinations may name it as endpoint_url.
        allow_endpoint(endpoint)
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="spillway-test-admin")
        iam.put_user_policy(
            UserName="spillway-test-admin",
            PolicyName="admin",
            PolicyDocument=orjson.dumps(ADMIN_POLICY).decode(),
        )
        key = iam.create_access_key(UserName="spillway-test-admin")["AccessKey"]
        yield Moto(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.unlink(missing_ok=True)
