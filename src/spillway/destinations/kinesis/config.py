"""Kinesis destination settings: the stream (name or ARN), its region, an optional endpoint."""

from __future__ import annotations

from pydantic import Field

from spillway.destinations.aws.config import StreamConfig


class KinesisConfig(StreamConfig):
    """Where records go; with an ARN, the region defaults to the ARN's."""

    what = "Kinesis data stream"
    target_field = "stream"
    arn_service = "kinesis"
    arn_resource = "stream"
    name_pattern = r"[a-zA-Z0-9_.-]{1,128}"

    stream: str = Field(
        description="Stream name, or its ARN arn:aws:kinesis:<region>:<account>:stream/<name>."
    )
