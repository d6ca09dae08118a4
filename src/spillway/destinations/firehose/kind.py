"""Registry entry of the Firehose kind. The models load no AWS library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillway.destinations.aws.admission import admit_stream as admit
from spillway.destinations.aws.admission import stream_refusal
from spillway.destinations.aws.config import AUTH_MODES, CredentialsInput, public_credentials
from spillway.destinations.base import Capabilities, Tenant, stream_location
from spillway.destinations.firehose.config import FirehoseConfig as Config

if TYPE_CHECKING:
    from spillway.destinations.firehose.stream import FirehoseStream

Credentials = CredentialsInput


capabilities = Capabilities(
    stream=True,
    updatable=("delivery_stream", "region", "endpoint_url"),
    auth_modes=AUTH_MODES,
    location=stream_location("firehose delivery stream", "delivery_stream"),
    multipart=False,
)


def build(config: Config, credentials: CredentialsInput, tenant: Tenant) -> FirehoseStream:
    """A record stream into the delivery stream, authenticating as configured; one the operator
    no longer allows fails every call with a DestinationError (nothing is sent)."""
    from spillway.destinations.firehose.stream import FirehoseStream

    return FirehoseStream(
        config,
        credentials.value,
        tenant.external_id,
        refusal=stream_refusal(config, credentials, tenant),
    )


__all__ = ["Config", "Credentials", "admit", "build", "capabilities", "public_credentials"]
