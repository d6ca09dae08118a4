"""Registry entry of the Kinesis kind. The models (``config``) load no AWS library."""

from __future__ import annotations

from spillway.destinations.aws.admission import admit_stream as admit
from spillway.destinations.aws.config import CredentialsInput as Credentials
from spillway.destinations.aws.config import public_credentials
from spillway.destinations.aws.stream_kind import stream_builder, stream_capabilities
from spillway.destinations.kinesis.config import KinesisConfig as Config
from spillway.destinations.kinesis.stream import KinesisStream

capabilities = stream_capabilities("stream", "kinesis stream")
build = stream_builder(KinesisStream)

__all__ = ["Config", "Credentials", "admit", "build", "capabilities", "public_credentials"]
