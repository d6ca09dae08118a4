"""S3 against moto with IAM enforced: least privilege, wrong keys, encryption, checksums, roles."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import SecretStr

from spillway.destinations.base import Check, CheckStatus, Needs, all_passed
from spillway.destinations.s3.config import (
    AccessKey,
    AssumeRole,
    CredentialsInput,
    ServiceIdentity,
    parse_credentials_csv,
)
from spillway.destinations.s3.store import S3Store
from tests.integration.destinations.case_s3 import (
    EXTERNAL_ID,
    S3World,
    allow,
    as_operator,
    policy,
)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_put_only_user_validates_write_and_skips_the_rest(s3_world: S3World) -> None:
    user = s3_world.user(allow("s3:PutObject", f"arn:aws:s3:::{s3_world.bucket}/exports*"))
    checks = by_name(s3_world.store(user).validate(Needs()))
    assert checks["credentials"].status is CheckStatus.PASSED
    assert checks["write"].status is CheckStatus.PASSED
    assert checks["bucket"].status is CheckStatus.SKIPPED  # no s3:ListBucket to look with
    assert "ListBucket" in checks["bucket"].message
    for name in ("read", "list", "delete"):
        assert checks[name].status is CheckStatus.SKIPPED, checks[name]
    assert all_passed(list(checks.values()))


def test_put_only_user_fails_read_when_read_back_is_needed(s3_world: S3World) -> None:
    user = s3_world.user(allow("s3:PutObject", f"arn:aws:s3:::{s3_world.bucket}/exports*"))
    checks = by_name(s3_world.store(user).validate(Needs(read=True, list=True, delete=True)))
    assert checks["write"].status is CheckStatus.PASSED
    for name in ("read", "list", "delete"):
        assert checks[name].status is CheckStatus.FAILED
        assert "AccessDenied" in checks[name].message


def test_wrong_secret_names_the_signature_mismatch(s3_world: S3World) -> None:
    user = s3_world.full_user()
    wrong = AccessKey(access_key_id=user.access_key_id, secret_access_key=SecretStr("y" * 40))
    checks = s3_world.store(wrong).validate(Needs())
    assert checks[0].name == "credentials"
    assert checks[0].status is CheckStatus.FAILED
    assert "SignatureDoesNotMatch" in checks[0].message
    assert all(c.status is CheckStatus.SKIPPED for c in checks[1:])


def test_unknown_access_key_is_told_apart(s3_world: S3World) -> None:
    unknown = AccessKey(access_key_id="AKIAUNKNOWNUNKNOWN00", secret_access_key=SecretStr("z" * 40))
    check = s3_world.store(unknown).validate(Needs())[0]
    assert check.status is CheckStatus.FAILED
    assert "InvalidAccessKeyId" in check.message


def test_policy_on_another_bucket_fails_the_write_with_access_denied(s3_world: S3World) -> None:
    user = s3_world.user(allow("s3:*", ["arn:aws:s3:::some-other-bucket/*"]))
    checks = by_name(s3_world.store(user).validate(Needs()))
    assert checks["credentials"].status is CheckStatus.PASSED
    assert checks["write"].status is CheckStatus.FAILED
    assert "access denied" in checks["write"].message.lower()


@pytest.mark.parametrize("sse", ["AES256", "aws:kms"])
def test_server_side_encryption_is_applied(s3_world: S3World, sse: str) -> None:
    overrides: dict[str, Any] = {"sse": sse}
    if sse == "aws:kms":
        kms: Any = s3_world.moto.client("kms")
        overrides["kms_key_arn"] = kms.create_key()["KeyMetadata"]["Arn"]
    store = s3_world.store(s3_world.full_user(), **overrides)
    store.part_size = 5 * 1024 * 1024
    store.put_object("exports_events/one.json.gz", b"small")
    with store.open_object("exports_events/big.bin") as writer:
        writer.write(os.urandom(11 * 1024 * 1024))
    for key in ("exports_events/one.json.gz", "exports_events/big.bin"):
        head = s3_world.head(key)
        assert head["ServerSideEncryption"] == sse
        if sse == "aws:kms":
            assert head["SSEKMSKeyId"] == overrides["kms_key_arn"]
    encryption = by_name(store.validate(Needs()))["encryption"]
    assert encryption.status is CheckStatus.PASSED, encryption


def test_every_write_carries_a_checksum(s3_world: S3World) -> None:
    store = s3_world.store(s3_world.full_user())
    store.part_size = 5 * 1024 * 1024
    store.put_object("exports_events/small.json", b"{}\n")
    with store.open_object("exports_events/multi.bin") as writer:
        writer.write(os.urandom(11 * 1024 * 1024))
    assert s3_world.head("exports_events/small.json").get("ChecksumCRC32")
    assert s3_world.head("exports_events/multi.bin").get("ChecksumCRC32")


def test_object_lock_bucket_accepts_writes(s3_world: S3World) -> None:
    s3: Any = s3_world.moto.client("s3")
    locked = s3_world.bucket + "-lock"
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=locked,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    admin = AccessKey(
        access_key_id=s3_world.moto.admin_key,
        secret_access_key=SecretStr(s3_world.moto.admin_secret),
    )
    store = S3Store(s3_world.config(bucket=locked), admin, EXTERNAL_ID)
    store.put_object("exports_events/locked.json", b"{}\n")
    assert s3.get_object(Bucket=locked, Key="exports_events/locked.json")["Body"].read() == b"{}\n"


def test_role_is_assumed_with_the_external_id(
    s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam: Any = s3_world.moto.client("iam")
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
        }
    )
    role = iam.create_role(RoleName="SpillwayExport", AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(
        RoleName="SpillwayExport",
        PolicyName="write",
        PolicyDocument=policy(allow("s3:PutObject", f"arn:aws:s3:::{s3_world.bucket}/exports*")),
    )
    service = s3_world.user(allow("sts:AssumeRole", role["Arn"]))
    as_operator(monkeypatch, s3_world.moto, service)  # the operator's STS is moto
    checks = by_name(s3_world.store(AssumeRole(role_arn=role["Arn"])).validate(Needs()))
    assert checks["credentials"].status is CheckStatus.PASSED
    assert checks["role"].status is CheckStatus.PASSED
    # moto does not evaluate trust policies, so the External ID proof is honestly skipped.
    assert checks["external_id"].status is CheckStatus.SKIPPED
    assert "does not evaluate trust policies" in checks["external_id"].message
    assert checks["write"].status is CheckStatus.PASSED


def test_role_that_cannot_be_assumed_says_to_retry(
    s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = s3_world.user()  # no sts:AssumeRole permission at all
    as_operator(monkeypatch, s3_world.moto, service)
    arn = "arn:aws:iam::123456789012:role/NotYetPropagated"
    checks = by_name(s3_world.store(AssumeRole(role_arn=arn)).validate(Needs()))
    assert checks["role"].status is CheckStatus.FAILED
    assert "propagate" in checks["role"].message
    assert "retry" in checks["role"].message
    assert checks["write"].status is CheckStatus.SKIPPED


def test_service_identity_uses_the_default_chain(
    s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = s3_world.full_user()
    # The service identity talks to the endpoints botocore resolves: moto through the
    # operator's AWS_ENDPOINT_URL_S3 / _STS, never through the destination's endpoint_url.
    as_operator(monkeypatch, s3_world.moto, user, "s3", "sts")
    checks = s3_world.store(ServiceIdentity(), endpoint_url=None).validate(Needs(read=True))
    assert all_passed(checks), [c.as_dict() for c in checks]


CONSOLE_CSV = (
    "Access key ID,Secret access key\r\n"
    "AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\r\n"
)
NEW_USER_CSV = (
    "\ufeffUser name,Password,Access key ID,Secret access key,Console login link\n"
    "exporter,,AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,"
    "https://123456789012.signin.aws.amazon.com/console\n"
)


@pytest.mark.parametrize("text", [CONSOLE_CSV, NEW_USER_CSV])
def test_console_credentials_csv_is_accepted(text: str) -> None:
    parsed = CredentialsInput.model_validate({"mode": "credentials_csv", "csv": text})
    assert isinstance(parsed.value, AccessKey)
    assert parsed.value.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    assert parsed.value.source == "credentials_csv"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("access,secret\nAKIAIOSFODNN7EXAMPLE,abc", "first row"),
        ("Access key ID,Secret access key\n", "exactly one"),
        ("Access key ID,Secret access key\nnot-a-key,short\n", "valid key"),
        ("", "csv"),
    ],
)
def test_malformed_credentials_csv_is_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_credentials_csv(text)
