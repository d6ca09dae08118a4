"""Firehose: PutRecordBatch with newline-terminated records, DescribeDeliveryStream."""

from __future__ import annotations

from typing import Any

from spillway.destinations.aws.client import answer_part
from spillway.destinations.aws.stream import AwsRecordStream, Description
from spillway.destinations.base import FIREHOSE_LIMITS, StreamRecord
from spillway.destinations.firehose.config import FirehoseConfig

# DescribeDeliveryStream's destination descriptions, as a person calls them.
_DESTINATIONS = {
    "ExtendedS3DestinationDescription": "Amazon S3",
    "S3DestinationDescription": "Amazon S3",
    "RedshiftDestinationDescription": "Amazon Redshift",
    "AmazonopensearchserviceDestinationDescription": "Amazon OpenSearch Service",
    "AmazonOpenSearchServerlessDestinationDescription": "Amazon OpenSearch Serverless",
    "ElasticsearchDestinationDescription": "Amazon Elasticsearch Service",
    "SplunkDestinationDescription": "Splunk",
    "HttpEndpointDestinationDescription": "an HTTP endpoint",
    "SnowflakeDestinationDescription": "Snowflake",
    "IcebergDestinationDescription": "Apache Iceberg tables",
}


def destination_type(description: dict[str, Any]) -> str:
    """Where a delivery stream delivers, e.g. "Amazon S3 (bucket acme-events)"."""
    names = []
    for destination in description.get("Destinations", []):
        for key, name in _DESTINATIONS.items():
            if key in destination:
                bucket = str(destination[key].get("BucketARN", "")).rsplit(":", 1)[-1]
                names.append(f"{name} (bucket {bucket})" if bucket else name)
                break
    return ", ".join(names) or "an unknown destination"


class FirehoseStream(AwsRecordStream):
    """A Direct PUT delivery stream; each record ends with a newline (one JSON per line)."""

    kind = "firehose"
    limits = FIREHOSE_LIMITS
    service = "firehose"
    label = "Firehose"
    actions = "firehose:PutRecordBatch and firehose:DescribeDeliveryStream"
    success_key = "RecordId"
    config: FirehoseConfig

    def _put(self, records: list[StreamRecord]) -> list[dict[str, Any]]:
        response = self.client.put_record_batch(
            DeliveryStreamName=self.config.name,
            Records=[{"Data": r.data + b"\n"} for r in records],
        )
        return list(response.get("RequestResponses", []))

    def _describe(self) -> Description:
        response = self.client.describe_delivery_stream(DeliveryStreamName=self.config.name)
        found = answer_part(response, "DeliveryStreamDescription")
        summary = f"delivers to {destination_type(found)}"
        encryption = found.get("DeliveryStreamEncryptionConfiguration", {})
        if encryption.get("Status") == "ENABLED":
            summary += f", encrypted at rest ({encryption.get('KeyType', 'AWS_OWNED_CMK')})"
        problem = None
        if found.get("DeliveryStreamType") == "KinesisStreamAsSource":
            source = found.get("Source", {}).get("KinesisStreamSourceDescription", {})
            problem = (
                f"{self.where} reads from the Kinesis data stream "
                f"{source.get('KinesisStreamARN', '(unknown)')}, so it takes no direct puts: "
                "connect Spillway to that Kinesis stream (kind kinesis) instead, or create a "
                "Direct PUT delivery stream"
            )
        status = str(found.get("DeliveryStreamStatus", "UNKNOWN"))
        return Description(status=status, summary=summary, problem=problem)
