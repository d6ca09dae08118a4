"""Firehose destination settings: the delivery stream, its region, an optional endpoint."""

from __future__ import annotations

from pydantic import Field

from spillway.destinations.aws.config import StreamConfig


class FirehoseConfig(StreamConfig):
    """Where records go; an ARN is accepted too (the calls use its name)."""

    what = "Firehose delivery stream"
    target_field = "delivery_stream"
    arn_service = "firehose"
    arn_resource = "deliverystream"
    name_pattern = r"[a-zA-Z0-9_.-]{1,64}"

    delivery_stream: str = Field(description="Delivery stream name, e.g. spillway-events.")

    @property
    def grant_names(self) -> tuple[str, ...]:
        """Its name or its ARN: the calls use the name."""
        return (self.name, self.target)
