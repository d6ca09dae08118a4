"""The S3 client, and the translation of S3's own errors into advice.

Sessions, roles and the errors every AWS service shares live in ``destinations.aws``.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config as BotoConfig

from spillway.destinations.aws import client as aws
from spillway.destinations.aws.client import AwsAuth, error_code
from spillway.destinations.s3.config import S3Config

# Retries inside botocore stay short: the engine retries whole runs with its own backoff.
BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=60,
    # Path-style addressing works with every S3-compatible endpoint and with dotted buckets.
    s3={"addressing_style": "path"},
    request_checksum_calculation="when_supported",
)


def explain(exc: BaseException, config: S3Config | None = None) -> str:
    """A sentence a person can act on, for any error boto3 raises."""
    bucket = config.bucket if config else "the bucket"
    code = error_code(exc)
    if code == "NoSuchBucket":
        return f"bucket {bucket} does not exist (NoSuchBucket): check the name and region"
    if code in ("AccessDenied", "AccessDeniedException", "403"):
        return (
            f"access denied on {bucket} (AccessDenied): the IAM policy or bucket policy does not "
            "allow this action on this resource"
        )
    if code.startswith("KMS.") or code in ("KMSAccessDeniedException", "KMSInvalidStateException"):
        return (
            f"the KMS key refused the request ({code}): the key policy must allow "
            "kms:GenerateDataKey and kms:Encrypt for the identity Spillway uses"
        )
    if code == "PermanentRedirect" or code == "AuthorizationHeaderMalformed":
        return f"bucket {bucket} is in another region ({code}): set the bucket's region"
    return aws.explain(exc, "S3")


def classify(exc: BaseException, config: S3Config) -> Exception:
    """Wrap an AWS error as transient (retry later) or terminal (a person must act)."""
    return aws.classify(exc, explain(exc, config))


def auth_for(
    config: S3Config, credentials: Any, external_id: str, refusal: str | None = None
) -> AwsAuth:
    """How a destination reaches AWS, with the bucket's region and endpoint."""
    return AwsAuth(
        credentials,
        external_id,
        region=config.region,
        endpoint_url=config.endpoint_url,
        refusal=refusal,
    )


def s3_client(auth: AwsAuth) -> Any:
    """The S3 client for a destination."""
    return auth.client("s3", BOTO_CONFIG)
