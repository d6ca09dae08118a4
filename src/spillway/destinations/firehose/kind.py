"""Registry entry of the Firehose kind. The models (``config``) load no AWS library."""

from __future__ import annotations

from spillway.destinations.aws.admission import admit_stream as admit
from spillway.destinations.aws.config import CredentialsInput as Credentials
from spillway.destinations.aws.config import public_credentials
from spillway.destinations.aws.stream_kind import stream_builder, stream_capabilities
from spillway.destinations.firehose.config import FirehoseConfig as Config
from spillway.destinations.firehose.stream import FirehoseStream

capabilities = stream_capabilities("delivery_stream", "firehose delivery stream")
build = stream_builder(FirehoseStream)

__all__ = ["Config", "Credentials", "admit", "build", "capabilities", "public_credentials"]
