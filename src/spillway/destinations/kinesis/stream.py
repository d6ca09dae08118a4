"""Kinesis Data Streams: PutRecords with per-record results, DescribeStreamSummary."""

from __future__ import annotations

from typing import Any

from spillway.destinations.aws.client import answer_part
from spillway.destinations.aws.stream import AwsRecordStream, Description
from spillway.destinations.base import KINESIS_LIMITS, StreamRecord
from spillway.destinations.kinesis.config import KinesisConfig


class KinesisStream(AwsRecordStream):
    """A Kinesis data stream; records keep their order per partition key (the uid)."""

    kind = "kinesis"
    limits = KINESIS_LIMITS
    service = "kinesis"
    label = "Kinesis"
    actions = "kinesis:PutRecords and kinesis:DescribeStreamSummary"
    success_key = "SequenceNumber"
    config: KinesisConfig

    def _target(self) -> dict[str, str]:
        # An ARN names the stream's account too, so pass it whole where it was given.
        arn = self.config.arn
        return {"StreamARN": arn} if arn else {"StreamName": self.config.name}

    def _put(self, records: list[StreamRecord]) -> list[dict[str, Any]]:
        response = self.client.put_records(
            Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in records],
            **self._target(),
        )
        return list(response.get("Records", []))

    def _describe(self) -> Description:
        answer = self.client.describe_stream_summary(**self._target())
        found = answer_part(answer, "StreamDescriptionSummary")
        mode = found.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
        summary = f"{found.get('OpenShardCount', '?')} open shards, {mode.lower()} mode"
        if found.get("EncryptionType") == "KMS":
            summary += (
                f", encrypted with KMS key {found.get('KeyId')}: Spillway's identity needs "
                "kms:GenerateDataKey on it"
            )
        return Description(status=str(found.get("StreamStatus", "UNKNOWN")), summary=summary)
