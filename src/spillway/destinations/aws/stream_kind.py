"""What the Kinesis and Firehose kind modules share: their description and their factory.

Each kind's ``kind.py`` names its config, its stream class and where it writes; the rest is
here, so adding another AWS record stream touches its own folder and the registry line only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from spillway.destinations.aws.admission import stream_refusal
from spillway.destinations.aws.config import AUTH_MODES, CredentialsInput, StreamConfig
from spillway.destinations.aws.stream import AwsRecordStream
from spillway.destinations.base import Capabilities, Tenant, stream_location

S = TypeVar("S", bound=AwsRecordStream)


def stream_capabilities(target_field: str, what: str) -> Capabilities:
    """A record stream named by ``config[target_field]``; an update may move it to another
    stream, region or endpoint (the credentials are rotated apart)."""
    return Capabilities(
        stream=True,
        updatable=(target_field, "region", "endpoint_url"),
        auth_modes=AUTH_MODES,
        location=stream_location(what, target_field),
        multipart=False,
    )


def stream_builder(stream_class: type[S]) -> Callable[[StreamConfig, CredentialsInput, Tenant], S]:
    """The kind's ``build``, making ``stream_class`` streams."""

    def build(config: StreamConfig, credentials: CredentialsInput, tenant: Tenant) -> S:
        """A record stream into the configured stream, authenticating as configured; one the
        operator no longer allows fails every call with a DestinationError (nothing is sent)."""
        return stream_class(
            config,
            credentials.value,
            tenant.external_id,
            refusal=stream_refusal(config, credentials, tenant),
        )

    return build
