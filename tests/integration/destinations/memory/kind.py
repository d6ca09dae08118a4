"""Registry entry of the memory kind (tests only): its description, models and factory."""

from __future__ import annotations

from typing import Any

from spillway.destinations.base import Capabilities, Tenant, object_location
from tests.integration.destinations.memory.config import MemoryConfig as Config
from tests.integration.destinations.memory.config import MemoryCredentials as Credentials
from tests.integration.destinations.memory.store import MemoryStore

capabilities = Capabilities(
    stream=False,
    updatable=("folder",),  # another bucket is another destination
    auth_modes=("token",),
    location=object_location("memory", "bucket"),
    multipart=True,
)


def build(config: Config, credentials: Credentials, tenant: Tenant) -> MemoryStore:
    """A store on the configured bucket."""
    return MemoryStore(config.bucket, config.folder, credentials.token.get_secret_value())


def public_credentials(credentials: Credentials) -> dict[str, Any]:
    """Never the token."""
    return {"mode": credentials.mode}


__all__ = ["Config", "Credentials", "build", "capabilities", "public_credentials"]
