"""The ordered validation of an S3 destination (SPEC R7)."""

from __future__ import annotations

import secrets
from typing import Any

import botocore.exceptions

from spillway.destinations.base import Check, CheckStatus, Needs, object_checks
from spillway.destinations.s3.client import error_code, explain, sts_client
from spillway.destinations.s3.config import AssumeRole
from spillway.destinations.s3.store import S3Store

Failure = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
_LATER = ("write", "read", "list", "delete", "encryption")
_NO_STS = ("NotImplemented", "InvalidAction", "404", "MethodNotAllowed")


def run_checks(store: S3Store, needs: Needs) -> list[Check]:
    """credentials → role → external id → bucket → write/read/list/delete → encryption."""
    checks: list[Check] = []
    role = store.credentials if isinstance(store.credentials, AssumeRole) else None

    credentials = _credentials(store, role)
    checks.append(credentials)
    if credentials.status is CheckStatus.FAILED:
        return checks + _skip_rest(("role", "external_id", "bucket", *_LATER), "credentials")

    if role is None:
        checks.append(Check.skipped("role", "not used: the destination does not assume a role"))
        checks.append(
            Check.skipped("external_id", "not used: the destination does not assume a role")
        )
    else:
        assumed = _assume(store, role)
        checks.append(assumed)
        if assumed.status is CheckStatus.FAILED:
            return checks + _skip_rest(("external_id", "bucket", *_LATER), "role")
        external = _external_id_enforced(store, role)
        checks.append(external)
        if external.status is CheckStatus.FAILED:
            return checks + _skip_rest(("bucket", *_LATER), "external_id")

    bucket = _bucket(store)
    checks.append(bucket)
    if bucket.status is CheckStatus.FAILED:
        return checks + _skip_rest(_LATER, "bucket")

    store.last_commit = None
    objects = object_checks(store, needs, str)
    checks.extend(objects)
    checks.append(_encryption(store, objects[0]))
    return checks


def _skip_rest(names: tuple[str, ...], failed: str) -> list[Check]:
    return [Check.skipped(name, f"not run: the {failed} check failed") for name in names]


def _credentials(store: S3Store, role: AssumeRole | None) -> Check:
    config = store.config
    whose = (
        "Spillway's own AWS identity"
        if role or store.credentials.mode == "service_identity"
        else "the access key"
    )
    try:
        session = store.session if role is None else _service_session(store)
        identity = sts_client(config, session).get_caller_identity()
    except botocore.exceptions.NoCredentialsError:
        return Check.failed(
            "credentials",
            "Spillway's own AWS identity has no credentials: run it with an instance role, "
            "a profile or AWS_* environment variables, or choose another authentication mode",
        )
    except Failure as exc:
        if config.endpoint_url and error_code(exc) in _NO_STS:
            return Check.skipped(
                "credentials",
                f"{config.endpoint_url} has no STS to ask; the write check proves the credentials",
            )
        return Check.failed("credentials", f"{whose} was rejected: {explain(exc, config)}")
    return Check.passed(
        "credentials", f"AWS accepted {whose} ({identity.get('Arn', 'unknown ARN')})"
    )


def _service_session(store: S3Store) -> Any:
    import boto3

    return boto3.Session(region_name=store.config.region)


def _assume(store: S3Store, role: AssumeRole) -> Check:
    config = store.config
    try:
        found = store.session.get_credentials()  # building the session assumes the role
        if found is None:
            raise botocore.exceptions.NoCredentialsError()
    except Failure as exc:
        return Check.failed(
            "role",
            f"could not assume {role.role_arn} with External ID {store.external_id}: "
            f"{explain(exc, config)}. Check that the role's trust policy names Spillway's AWS "
            "identity and requires this External ID. A new role can take a few seconds to "
            "propagate: retry validation in a minute.",
        )
    return Check.passed("role", f"assumed {role.role_arn} with the project's External ID")


def _external_id_enforced(store: S3Store, role: AssumeRole) -> Check:
    config = store.config
    if config.endpoint_url:
        return Check.skipped(
            "external_id",
            f"{config.endpoint_url} is not AWS and does not evaluate trust policies, so "
            "Spillway cannot prove the role requires its External ID",
        )
    sts = sts_client(config, _service_session(store))
    try:
        sts.assume_role(
            RoleArn=role.role_arn,
            RoleSessionName="spillway-external-id-check",
            ExternalId="spillway-wrong-" + secrets.token_hex(8),
            DurationSeconds=900,
        )
    except Failure as exc:
        if error_code(exc) in ("AccessDenied", "AccessDeniedException"):
            return Check.passed("external_id", "the role refuses a wrong External ID, as it must")
        return Check.skipped(
            "external_id", f"could not test the External ID: {explain(exc, config)}"
        )
    return Check.failed(
        "external_id",
        f"{role.role_arn} can be assumed with a wrong External ID: its trust policy must have "
        f'the condition {{"StringEquals": {{"sts:ExternalId": "{store.external_id}"}}}} so no '
        "other Spillway customer can make Spillway write into your bucket",
    )


def _bucket(store: S3Store) -> Check:
    config = store.config
    try:
        response = store.client.head_bucket(Bucket=config.bucket)
    except Failure as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket"):
            return Check.failed(
                "bucket", f"bucket {config.bucket} does not exist: check the name and the account"
            )
        if code in ("403", "AccessDenied"):
            return Check.skipped(
                "bucket",
                f"cannot look at bucket {config.bucket} without s3:ListBucket; the write check "
                "below proves it is reachable",
            )
        if code in ("301", "PermanentRedirect", "400"):
            return Check.failed(
                "bucket", f"bucket {config.bucket} is not in {config.region}: set its region"
            )
        return Check.failed(
            "bucket", f"could not reach bucket {config.bucket}: {explain(exc, config)}"
        )
    region = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
    if region and region != config.region:
        return Check.failed(
            "bucket", f"bucket {config.bucket} is in {region}, not {config.region}: set its region"
        )
    return Check.passed("bucket", f"bucket {config.bucket} exists and is reachable")


def _encryption(store: S3Store, write: Check) -> Check:
    config = store.config
    if config.sse == "none":
        return Check.skipped("encryption", "server-side encryption is off")
    if write.status is not CheckStatus.PASSED or store.last_commit is None:
        return Check.skipped("encryption", "not run: the write check did not pass")
    details = store.last_commit.details
    if details.get("sse") != config.sse:
        return Check.failed(
            "encryption",
            f"the test object was stored with encryption {details.get('sse')!r}, not {config.sse}",
        )
    if config.sse == "aws:kms" and details.get("kms_key_id") not in (None, config.kms_key_arn):
        return Check.failed(
            "encryption",
            f"the test object was encrypted with KMS key {details.get('kms_key_id')}, "
            f"not {config.kms_key_arn}",
        )
    if config.sse == "aws:kms":
        return Check.passed("encryption", f"KMS key {config.kms_key_arn} encrypted the test object")
    return Check.passed("encryption", "the test object is encrypted with SSE-S3 (AES256)")
