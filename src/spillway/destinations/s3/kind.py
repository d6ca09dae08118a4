"""Registry entry of the S3 kind."""

from __future__ import annotations

from typing import Any

from spillway.destinations.s3.config import AccessKey, AssumeRole, CredentialsInput
from spillway.destinations.s3.config import S3Config as Config
from spillway.destinations.s3.store import S3Store
from spillway.secrets import mask

Credentials = CredentialsInput


def build(config: Config, credentials: CredentialsInput, external_id: str) -> S3Store:
    """A store for the bucket, authenticating as configured."""
    return S3Store(config, credentials.value, external_id)


def public_credentials(credentials: CredentialsInput) -> dict[str, Any]:
    """The masked view: never the secret, only enough of the key id to recognise it."""
    value = credentials.value
    if isinstance(value, AccessKey):
        return {
            "mode": value.mode,
            "access_key_id": mask(value.access_key_id),
            "source": value.source,
        }
    if isinstance(value, AssumeRole):
        return {"mode": value.mode, "role_arn": value.role_arn}
    return {"mode": value.mode}


__all__ = ["Config", "Credentials", "build", "public_credentials"]
