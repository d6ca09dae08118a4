"""What validation asks Kinesis of the stream (the steps themselves are every AWS stream's:
``aws.stream``)."""

from __future__ import annotations

from typing import Any

from spillway.destinations.aws.client import answer_part
from spillway.destinations.aws.stream import Description
from spillway.destinations.kinesis.client import target
from spillway.destinations.kinesis.config import KinesisConfig


def describe(client: Any, config: KinesisConfig) -> Description:
    """DescribeStreamSummary: its status, shards, mode and encryption."""
    answer = client.describe_stream_summary(**target(config))
    found = answer_part(answer, "StreamDescriptionSummary")
    mode = found.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
    summary = f"{found.get('OpenShardCount', '?')} open shards, {mode.lower()} mode"
    if found.get("EncryptionType") == "KMS":
        summary += (
            f", encrypted with KMS key {found.get('KeyId')}: Spillway's identity needs "
            "kms:GenerateDataKey on it"
        )
    return Description(status=str(found.get("StreamStatus", "UNKNOWN")), summary=summary)
