"""How Firehose calls name the delivery stream (the client itself is ``aws.client.AwsAuth``'s)."""

from __future__ import annotations

from spillway.destinations.aws.stream import StreamService
from spillway.destinations.base import FIREHOSE_LIMITS
from spillway.destinations.firehose.config import FirehoseConfig


def target(config: FirehoseConfig) -> dict[str, str]:
    """Which delivery stream a call names: by its name, also where an ARN was given (Firehose
    calls take no ARN)."""
    return {"DeliveryStreamName": config.name}


# The IAM actions Spillway needs, named in access-denied advice.
ACTIONS = "firehose:PutRecordBatch and firehose:DescribeDeliveryStream"
# The service as the code every AWS stream shares needs it (see aws.stream.StreamService).
FIREHOSE = StreamService("firehose", FIREHOSE_LIMITS, "firehose", "Firehose", ACTIONS, "RecordId")
