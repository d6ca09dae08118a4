"""Registry entry of the local folder kind."""

from __future__ import annotations

from typing import Any

from spillway.destinations.base import Tenant
from spillway.destinations.local.store import LocalConfig as Config
from spillway.destinations.local.store import LocalCredentials as Credentials
from spillway.destinations.local.store import LocalStore


def build(config: Config, credentials: Credentials, tenant: Tenant) -> LocalStore:
    """A store writing files below ``config.path``."""
    return LocalStore(config)


def public_credentials(credentials: Credentials) -> dict[str, Any]:
    """Nothing secret to mask."""
    return {"mode": credentials.mode}


__all__ = ["Config", "Credentials", "build", "public_credentials"]
