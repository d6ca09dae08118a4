"""What validation asks Firehose of the delivery stream (the steps themselves are every AWS
stream's: ``aws.stream``)."""

from __future__ import annotations

from typing import Any

from spillway.destinations.aws.client import answer_part
from spillway.destinations.aws.stream import Description
from spillway.destinations.firehose.client import target
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


def describe(client: Any, config: FirehoseConfig, where: str) -> Description:
    """DescribeDeliveryStream: its status, where it delivers, and whether it takes direct puts
    (``where``: the stream as messages name it)."""
    response = client.describe_delivery_stream(**target(config))
    found = answer_part(response, "DeliveryStreamDescription")
    summary = f"delivers to {destination_type(found)}"
    encryption = found.get("DeliveryStreamEncryptionConfiguration", {})
    if encryption.get("Status") == "ENABLED":
        summary += f", encrypted at rest ({encryption.get('KeyType', 'AWS_OWNED_CMK')})"
    problem = None
    if found.get("DeliveryStreamType") == "KinesisStreamAsSource":
        source = found.get("Source", {}).get("KinesisStreamSourceDescription", {})
        problem = (
            f"{where} reads from the Kinesis data stream "
            f"{source.get('KinesisStreamARN', '(unknown)')}, so it takes no direct puts: "
            "connect Spillway to that Kinesis stream (kind kinesis) instead, or create a "
            "Direct PUT delivery stream"
        )
    status = str(found.get("DeliveryStreamStatus", "UNKNOWN"))
    return Description(status=status, summary=summary, problem=problem)
