"""What the operator allows a stream destination (service_identity grants), for the Kinesis and
Firehose kinds alike: judged when one is configured and again when its stream is built."""

from __future__ import annotations

from spillway.destinations.aws import service_identity
from spillway.destinations.aws.config import CredentialsInput, StreamConfig
from spillway.destinations.base import Tenant


def stream_refusal(
    config: StreamConfig, credentials: CredentialsInput, tenant: Tenant | None
) -> str | None:
    """Why this project may not reach the stream with these credentials, or None when it may."""
    return service_identity.refusal(
        credentials.value, config.endpoint_url, tenant, config.what, config.grant_names
    )


def admit_stream(
    config: StreamConfig, credentials: CredentialsInput, tenant: Tenant | None
) -> None:
    """Refuse what the operator does not allow this project (service_identity mode)."""
    problem = stream_refusal(config, credentials, tenant)
    if problem:
        raise ValueError(problem)
