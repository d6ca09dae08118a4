"""The ordered validation of an S3 destination."""

from __future__ import annotations

import re
from typing import Any, Protocol

from spillway.destinations.aws.client import AwsAuth, Failure, error_code
from spillway.destinations.aws.config import REGION_PATTERN
from spillway.destinations.aws.identity import after_identity, identity_checks
from spillway.destinations.base import (
    Check,
    CheckStatus,
    Needs,
    Objects,
    StoredObject,
    object_checks,
    skip_rest,
)
from spillway.destinations.s3.client import explain
from spillway.destinations.s3.config import S3Config


class S3Store(Objects, Protocol):
    """What the checks read of the store they validate (``store.S3Store``)."""

    config: S3Config
    auth: AwsAuth
    last_commit: StoredObject | None

    @property
    def client(self) -> Any: ...


_LATER = ("write", "read", "list", "delete", "encryption")
_REGION = re.compile(REGION_PATTERN.strip("^$"))


def run_checks(store: S3Store, needs: Needs) -> list[Check]:
    """credentials → role → external id → bucket → write/read/list/delete → encryption."""
    checks = identity_checks(
        store.auth, service="S3", target="your bucket", proof="the write check"
    )
    stopped = after_identity(checks, ("bucket", *_LATER))
    if stopped is not None:
        return stopped

    bucket = _bucket(store)
    checks.append(bucket)
    if bucket.status is CheckStatus.FAILED:
        return checks + skip_rest(_LATER, "bucket")

    store.last_commit = None
    objects = object_checks(store, needs, str)
    checks.extend(objects)
    checks.append(_encryption(store, objects[0]))
    return checks


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
    if region and region != config.region and _REGION.fullmatch(region):  # a region, nothing else
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
