"""How Kinesis calls name the stream (the client itself is ``aws.client.AwsAuth``'s)."""

from __future__ import annotations

from spillway.destinations.aws.stream import StreamService
from spillway.destinations.base import KINESIS_LIMITS
from spillway.destinations.kinesis.config import KinesisConfig


def target(config: KinesisConfig) -> dict[str, str]:
    """Which stream a call names: an ARN names the stream's account too, so it is passed whole
    where it was given."""
    arn = config.arn
    return {"StreamARN": arn} if arn else {"StreamName": config.name}


# The IAM actions Spillway needs, named in access-denied advice.
ACTIONS = "kinesis:PutRecords and kinesis:DescribeStreamSummary"
# The service as the code every AWS stream shares needs it (see aws.stream.StreamService).
KINESIS = StreamService("kinesis", KINESIS_LIMITS, "kinesis", "Kinesis", ACTIONS, "SequenceNumber")
