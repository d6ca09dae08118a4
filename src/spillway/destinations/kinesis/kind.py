"""Registry entry of the Kinesis kind. The models load no AWS library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillway.destinations.aws.config import CredentialsInput, public_credentials
from spillway.destinations.base import Tenant
from spillway.destinations.kinesis.config import KinesisConfig as Config

if TYPE_CHECKING:
    from spillway.destinations.kinesis.stream import KinesisStream

Credentials = CredentialsInput


def build(config: Config, credentials: CredentialsInput, tenant: Tenant) -> KinesisStream:
    """A record stream into the Kinesis data stream, authenticating as configured."""
    from spillway.destinations.kinesis.stream import KinesisStream

    return KinesisStream(config, credentials.value, tenant.external_id)


__all__ = ["Config", "Credentials", "build", "public_credentials"]
