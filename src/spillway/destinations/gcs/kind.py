"""Registry entry of the GCS kind: what it is and allows, and its factory.

The models (``config``) load no Google library, so the API can check input without the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillway.destinations.base import Capabilities, Tenant, object_location
from spillway.destinations.gcs.config import GcsConfig as Config
from spillway.destinations.gcs.config import GcsCredentials as Credentials
from spillway.destinations.gcs.config import admit, public_credentials, refusal

if TYPE_CHECKING:
    from spillway.destinations.gcs.store import GcsStore

capabilities = Capabilities(
    stream=False,
    updatable=("bucket", "folder", "project", "endpoint_url"),
    auth_modes=("service_account", "anonymous"),
    location=object_location("gs", "bucket"),
    multipart=True,
)


def build(config: Config, credentials: Credentials, tenant: Tenant) -> GcsStore:
    """A store for the bucket (the SDK loads here; nothing talks to Google until used). One the
    operator's settings no longer allow refuses every call before connecting anywhere."""
    from spillway.destinations.gcs.store import GcsStore

    return GcsStore(config, credentials.root, refusal=refusal(config, credentials))


__all__ = ["Config", "Credentials", "admit", "build", "capabilities", "public_credentials"]
