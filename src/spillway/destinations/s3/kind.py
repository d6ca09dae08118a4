"""Registry entry of the S3 kind."""

from __future__ import annotations

from spillway.destinations.aws.config import CredentialsInput, public_credentials
from spillway.destinations.base import Tenant
from spillway.destinations.s3.config import S3Config as Config
from spillway.destinations.s3.store import S3Store

Credentials = CredentialsInput


def build(config: Config, credentials: CredentialsInput, tenant: Tenant) -> S3Store:
    """A store for the bucket, authenticating as configured."""
    return S3Store(config, credentials.value, tenant.external_id)


__all__ = ["Config", "Credentials", "build", "public_credentials"]
