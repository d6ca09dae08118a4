"""Registry entry of the Firehose kind. The models load no AWS library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillway.destinations.aws import service_identity
from spillway.destinations.aws.config import CredentialsInput, public_credentials
from spillway.destinations.base import Tenant
from spillway.destinations.firehose.config import FirehoseConfig as Config

if TYPE_CHECKING:
    from spillway.destinations.firehose.stream import FirehoseStream

Credentials = CredentialsInput


def _refusal(config: Config, credentials: CredentialsInput, tenant: Tenant | None) -> str | None:
    return service_identity.refusal(
        credentials.value, config.endpoint_url, tenant, config.what, (config.name, config.target)
    )


def admit(config: Config, credentials: CredentialsInput, tenant: Tenant | None) -> None:
    """Refuse what the operator does not allow this project (service_identity mode)."""
    problem = _refusal(config, credentials, tenant)
    if problem:
        raise ValueError(problem)


def build(config: Config, credentials: CredentialsInput, tenant: Tenant) -> FirehoseStream:
    """A record stream into the delivery stream, authenticating as configured; one the operator
    no longer allows fails every call with a DestinationError (nothing is sent)."""
    from spillway.destinations.firehose.stream import FirehoseStream

    return FirehoseStream(
        config, credentials.value, tenant.external_id, refusal=_refusal(config, credentials, tenant)
    )


__all__ = ["Config", "Credentials", "admit", "build", "public_credentials"]
