"""boto3 sessions for each auth mode, and the translation of AWS errors into advice."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig
from botocore.credentials import RefreshableCredentials
from botocore.session import get_session

from spillway.destinations.base import DestinationError
from spillway.destinations.s3.config import AccessKey, AssumeRole, S3Config, ServiceIdentity
from spillway.errors import TransientError

# Retries inside botocore stay short: the engine retries whole runs with its own backoff.
BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=60,
    # Path-style addressing works with every S3-compatible endpoint and with dotted buckets.
    s3={"addressing_style": "path"},
    request_checksum_calculation="when_supported",
)
TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "RequestLimitExceeded",
    "503",
    "500",
}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' otherwise)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def explain(exc: BaseException, config: S3Config | None = None) -> str:
    """A sentence a person can act on, for any error boto3 raises."""
    bucket = config.bucket if config else "the bucket"
    code = error_code(exc)
    if code == "InvalidAccessKeyId" or code == "InvalidClientTokenId":
        return (
            "AWS does not recognise the access key id (InvalidAccessKeyId): check it was copied "
            "whole, that the key is active, and that it belongs to this AWS partition"
        )
    if code == "SignatureDoesNotMatch":
        return (
            "the secret access key does not match the access key id (SignatureDoesNotMatch): "
            "paste the secret again or create a new key"
        )
    if code in ("ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"):
        return "the session token has expired (ExpiredToken): supply fresh temporary credentials"
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
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return f"cannot reach the S3 endpoint ({exc}): check endpoint_url and the network"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "Spillway's own AWS identity has no credentials (no role, profile or env keys)"
    if code:
        message = exc.response.get("Error", {}).get("Message", "")  # type: ignore[attr-defined]
        return f"{code}: {message}".rstrip(": ")
    return f"{exc.__class__.__name__}: {exc}"


def classify(exc: BaseException, config: S3Config) -> Exception:
    """Wrap an AWS error as transient (retry later) or terminal (a person must act)."""
    code = error_code(exc)
    status = 0
    if isinstance(exc, botocore.exceptions.ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    transient_types = (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectionClosedError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ConnectTimeoutError,
    )
    if code in TRANSIENT_CODES or status >= 500 or isinstance(exc, transient_types):
        return TransientError(explain(exc, config))
    return DestinationError(explain(exc, config))


def _base_session(region: str) -> boto3.Session:
    return boto3.Session(region_name=region)


def session_for(config: S3Config, credentials: Any, external_id: str) -> boto3.Session:
    """A session whose credentials follow the chosen mode (roles refresh themselves)."""
    if isinstance(credentials, AccessKey):
        token = credentials.session_token.get_secret_value() if credentials.session_token else None
        return boto3.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key.get_secret_value(),
            aws_session_token=token,
            region_name=config.region,
        )
    if isinstance(credentials, ServiceIdentity):
        return _base_session(config.region)
    if isinstance(credentials, AssumeRole):
        sts = sts_client(config, _base_session(config.region))

        def refresh() -> dict[str, str]:
            response = sts.assume_role(
                RoleArn=credentials.role_arn,
                RoleSessionName=f"spillway-{secrets.token_hex(4)}",
                ExternalId=external_id,
                DurationSeconds=3600,
            )
            creds = response["Credentials"]
            expiry = creds["Expiration"]
            if isinstance(expiry, datetime):
                expiry_text = expiry.astimezone(UTC).isoformat()
            else:
                expiry_text = str(expiry)
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": expiry_text,
            }

        refreshable = RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        botocore_session = get_session()
        # botocore has no public setter for refreshable credentials; this is the known way.
        botocore_session._credentials = refreshable  # type: ignore[attr-defined]
        botocore_session.set_config_variable("region", config.region)
        return boto3.Session(botocore_session=botocore_session)
    raise TypeError(f"unknown S3 credentials {type(credentials).__name__}")


def sts_client(config: S3Config, session: boto3.Session) -> Any:
    """STS on the same endpoint as S3 (moto and some S3-compatible services host both)."""
    return session.client(
        "sts", endpoint_url=config.endpoint_url, region_name=config.region, config=BOTO_CONFIG
    )


def s3_client(config: S3Config, session: boto3.Session) -> Any:
    """The S3 client for a destination."""
    return session.client(
        "s3", endpoint_url=config.endpoint_url, region_name=config.region, config=BOTO_CONFIG
    )
