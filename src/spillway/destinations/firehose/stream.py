"""Firehose: PutRecordBatch with newline-terminated records, DescribeDeliveryStream."""

from __future__ import annotations

from typing import Any

from spillway.destinations.aws.stream import AwsRecordStream, Description
from spillway.destinations.base import StreamRecord
from spillway.destinations.firehose.checks import describe
from spillway.destinations.firehose.client import FIREHOSE, target
from spillway.destinations.firehose.config import FirehoseConfig


class FirehoseStream(AwsRecordStream, service=FIREHOSE):
    """A Direct PUT delivery stream; each record ends with a newline (one JSON per line)."""

    config: FirehoseConfig

    def _put(self, records: list[StreamRecord]) -> list[dict[str, Any]]:
        response = self.client.put_record_batch(
            **target(self.config),
            Records=[{"Data": r.data + b"\n"} for r in records],
        )
        return list(response.get("RequestResponses", []))

    def _describe(self) -> Description:
        return describe(self.client, self.config, self.where)
