"""Kinesis Data Streams: PutRecords with per-record results, DescribeStreamSummary."""

from __future__ import annotations

from typing import Any

from spillway.destinations.aws.stream import AwsRecordStream, Description
from spillway.destinations.base import StreamRecord
from spillway.destinations.kinesis.checks import describe
from spillway.destinations.kinesis.client import KINESIS, target
from spillway.destinations.kinesis.config import KinesisConfig


class KinesisStream(AwsRecordStream, service=KINESIS):
    """A Kinesis data stream; records keep their order per partition key (the uid)."""

    config: KinesisConfig

    def _put(self, records: list[StreamRecord]) -> list[dict[str, Any]]:
        response = self.client.put_records(
            Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in records],
            **target(self.config),
        )
        return list(response.get("Records", []))

    def _describe(self) -> Description:
        return describe(self.client, self.config)
