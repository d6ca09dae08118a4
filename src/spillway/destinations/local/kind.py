"""Registry entry of the local folder kind (only when the operator sets SPILLWAY_LOCAL_ROOT)."""

from __future__ import annotations

from spillway.destinations.base import Capabilities, Tenant, object_location
from spillway.destinations.local.client import directory_of
from spillway.destinations.local.config import LocalConfig as Config
from spillway.destinations.local.config import LocalCredentials as Credentials
from spillway.destinations.local.config import public_credentials
from spillway.destinations.local.store import LocalStore
from spillway.errors import Invalid

capabilities = Capabilities(
    stream=False,
    updatable=("path", "folder"),
    auth_modes=("none",),
    location=object_location("local", "path"),
    multipart=False,
)


def admit(config: Config, credentials: Credentials, tenant: Tenant | None) -> None:
    """Where the directory really is (registry.parse calls this for a destination being
    configured, so ``force`` cannot skip it): inside the project's own folder, symlinks
    resolved, or a 422 naming ``config.path``."""
    if tenant is None:
        return  # judged when the store is built
    try:
        directory_of(config, tenant)
    except ValueError as exc:
        raise Invalid("config.path", str(exc)) from None


def build(config: Config, credentials: Credentials, tenant: Tenant) -> LocalStore:
    """A store writing files below ``config.path`` inside the project's folder. One the
    operator's settings do not allow (local folders turned off, a path outside the project's
    folder) refuses every call with a terminal error saying what to change."""
    try:
        project, root = directory_of(config, tenant)
    except ValueError as exc:
        return LocalStore(config, tenant, refusal=f"this destination cannot write here: {exc}")
    return LocalStore(config, tenant, project=project, root=root)


__all__ = ["Config", "Credentials", "admit", "build", "capabilities", "public_credentials"]
