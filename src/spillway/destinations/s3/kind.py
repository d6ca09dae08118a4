"""Registry entry of the S3 kind."""

from __future__ import annotations

from spillway.destinations.aws import service_identity
from spillway.destinations.aws.config import AUTH_MODES, CredentialsInput, public_credentials
from spillway.destinations.base import Capabilities, Tenant, object_location
from spillway.destinations.s3.config import S3Config as Config
from spillway.destinations.s3.store import S3Store

Credentials = CredentialsInput


capabilities = Capabilities(
    stream=False,
    updatable=("bucket", "folder", "region", "endpoint_url", "sse", "kms_key_arn"),
    auth_modes=AUTH_MODES,
    location=object_location("s3", "bucket"),
    multipart=True,
)


def _refusal(config: Config, credentials: CredentialsInput, tenant: Tenant | None) -> str | None:
    return service_identity.refusal(
        credentials.value, config.endpoint_url, tenant, "bucket", (config.bucket,)
    )


def admit(config: Config, credentials: CredentialsInput, tenant: Tenant | None) -> None:
    """Refuse what the operator does not allow this project (service_identity mode)."""
    problem = _refusal(config, credentials, tenant)
    if problem:
        raise ValueError(problem)


def build(config: Config, credentials: CredentialsInput, tenant: Tenant) -> S3Store:
    """A store for the bucket, authenticating as configured; one the operator no longer allows
    fails every call with a DestinationError (nothing is sent)."""
    return S3Store(
        config, credentials.value, tenant.external_id, refusal=_refusal(config, credentials, tenant)
    )


__all__ = ["Config", "Credentials", "admit", "build", "capabilities", "public_credentials"]
