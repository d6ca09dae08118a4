"""Registry entry of the Firehose kind. The models load no AWS library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillway.destinations.aws.config import CredentialsInput, public_credentials
from spillway.destinations.base import Tenant
from spillway.destinations.firehose.config import FirehoseConfig as Config

if TYPE_CHECKING:
    from spillway.destinations.firehose.stream import FirehoseStream

Credentials = CredentialsInput


def build(config: Config, credentials: CredentialsInput, tenant: Tenant) -> FirehoseStream:
    """A record stream into the delivery stream, authenticating as configured."""
    from spillway.destinations.firehose.stream import FirehoseStream

    return FirehoseStream(config, credentials.value, tenant.external_id)


__all__ = ["Config", "Credentials", "build", "public_credentials"]
