"""Registry entry of the Azure Blob kind: what it is and allows, and its factory.

The models (``config``) load no Azure library; the SDK loads when a store is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spillway.destinations.azure_blob.config import AzureBlobConfig as Config
from spillway.destinations.azure_blob.config import AzureCredentials as Credentials
from spillway.destinations.azure_blob.config import public_credentials, refusal, resolve
from spillway.destinations.base import Capabilities, Tenant, object_location

if TYPE_CHECKING:
    from spillway.destinations.azure_blob.store import AzureBlobStore

capabilities = Capabilities(
    stream=False,
    updatable=("container", "folder", "account_url"),
    auth_modes=("connection_string", "account_key", "sas_token"),
    location=object_location("azure", "container"),
    multipart=True,
)


def build(config: Config, credentials: Credentials, tenant: Tenant) -> AzureBlobStore:
    """A store for the container, authenticating as configured (no External ID on Azure). One
    the operator's settings no longer allow refuses every call before connecting anywhere."""
    from spillway.destinations.azure_blob.store import AzureBlobStore

    return AzureBlobStore(
        config, resolve(config, credentials), refusal=refusal(config, credentials)
    )


__all__ = ["Config", "Credentials", "build", "capabilities", "public_credentials"]
