"""S3 case: moto's server with IAM authentication enforced; a fresh bucket and user per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
import orjson
import pytest
from pydantic import SecretStr

from spillway.destinations.base import ObjectStore
from spillway.destinations.s3.config import AccessKey, S3Config
from spillway.destinations.s3.store import S3Store
from tests.integration.destinations.cases import StoreCase
from tests.server_moto import Moto, moto_server
from tests.servers import ServerFailed

MIB = 1024 * 1024
EXTERNAL_ID = "spw-test-external-id"


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    """One moto server for the session."""
    try:
        with moto_server() as server:
            yield server
    except ServerFailed as exc:
        pytest.fail(f"moto server did not start: {exc}")


def as_operator(
    monkeypatch: pytest.MonkeyPatch, moto: Moto, key: AccessKey, *services: str
) -> None:
    """Run Spillway's own AWS identity as ``key`` (the default credential chain's environment)
    and point botocore's standard endpoints of ``services`` (default: STS) at moto with
    AWS_ENDPOINT_URL_<SERVICE>, as an operator would; destinations' endpoint_url never is."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key.secret_access_key.get_secret_value())
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for service in services or ("sts",):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service.upper()}", moto.endpoint)


def policy(*statements: dict[str, Any]) -> str:
    """An IAM policy document."""
    return orjson.dumps({"Version": "2012-10-17", "Statement": list(statements)}).decode()


def allow(actions: list[str] | str, resources: list[str] | str) -> dict[str, Any]:
    """One Allow statement."""
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


@dataclass
class S3World:
    """A fresh bucket on moto, and helpers to make users with given policies."""

    moto: Moto
    bucket: str

    def user(self, *statements: dict[str, Any]) -> AccessKey:
        """A new IAM user with exactly these policy statements; returns its access key."""
        iam: Any = self.moto.client("iam")
        name = "u-" + uuid.uuid4().hex[:10]
        iam.create_user(UserName=name)
        if statements:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(*statements))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return AccessKey(
            access_key_id=key["AccessKeyId"], secret_access_key=SecretStr(key["SecretAccessKey"])
        )

    def full_user(self) -> AccessKey:
        """A user allowed everything on this bucket."""
        arn = f"arn:aws:s3:::{self.bucket}"
        return self.user(allow("s3:*", [arn, f"{arn}/*"]))

    def config(self, **overrides: Any) -> S3Config:
        """Destination config for this bucket on moto."""
        values: dict[str, Any] = {
            "bucket": self.bucket,
            "folder": "exports",
            "endpoint_url": self.moto.endpoint,
            "sse": "none",
        }
        values.update(overrides)
        return S3Config(**values)

    def store(self, credentials: Any, **overrides: Any) -> S3Store:
        """A store with these credentials."""
        return S3Store(self.config(**overrides), credentials, EXTERNAL_ID)

    def raw_read(self, key: str) -> bytes | None:
        """Read with the admin's own boto3 client, not Spillway's code."""
        s3: Any = self.moto.client("s3")
        try:
            return bytes(s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise

    def head(self, key: str) -> dict[str, Any]:
        """head_object with checksums, as the admin."""
        s3: Any = self.moto.client("s3")
        result: dict[str, Any] = s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        return result


@pytest.fixture
def s3_world(moto: Moto) -> S3World:
    """A fresh bucket per test."""
    bucket = "spw-" + uuid.uuid4().hex[:16]
    s3: Any = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    return S3World(moto, bucket)


@pytest.fixture
def s3_case(s3_world: S3World) -> StoreCase:
    user = s3_world.full_user()

    def make(part_size: int) -> ObjectStore:
        store = s3_world.store(user)
        store.part_size = part_size
        return store

    def bad_credentials() -> ObjectStore:
        wrong = AccessKey(access_key_id=user.access_key_id, secret_access_key=SecretStr("x" * 40))
        return s3_world.store(wrong)

    admin = AccessKey(
        access_key_id=s3_world.moto.admin_key,
        secret_access_key=SecretStr(s3_world.moto.admin_secret),
    )

    def missing() -> ObjectStore:
        bucket = "spw-missing-" + uuid.uuid4().hex[:8]
        return S3Store(s3_world.config(bucket=bucket), admin, EXTERNAL_ID)

    return StoreCase(
        kind="s3",
        make=make,
        make_bad_credentials=bad_credentials,
        make_missing_bucket=missing,
        raw_read=s3_world.raw_read,
        credentials_check="credentials",
        bucket_check="bucket",
        min_part_size=5 * MIB,
    )
