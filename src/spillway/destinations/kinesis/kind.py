"""Registry entry of the Kinesis kind. The models load no AWS library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillway.destinations.aws.admission import admit_stream as admit
from spillway.destinations.aws.admission import stream_refusal
from spillway.destinations.aws.config import AUTH_MODES, CredentialsInput, public_credentials
from spillway.destinations.base import Capabilities, Tenant, stream_location
from spillway.destinations.kinesis.config import KinesisConfig as Config

if TYPE_CHECKING:
    from spillway.destinations.kinesis.stream import KinesisStream

Credentials = CredentialsInput


capabilities = Capabilities(
    stream=True,
    updatable=("stream", "region", "endpoint_url"),
    auth_modes=AUTH_MODES,
    location=stream_location("kinesis stream", "stream"),
    multipart=False,
)


def build(config: Config, credentials: CredentialsInput, tenant: Tenant) -> KinesisStream:
    """A record stream into the Kinesis data stream, authenticating as configured; one the operator
    no longer allows fails every call with a DestinationError (nothing is sent)."""
    from spillway.destinations.kinesis.stream import KinesisStream

    return KinesisStream(
        config,
        credentials.value,
        tenant.external_id,
        refusal=stream_refusal(config, credentials, tenant),
    )


__all__ = ["Config", "Credentials", "admit", "build", "capabilities", "public_credentials"]
