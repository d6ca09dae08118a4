"""A destination kind for tests only: it is created like any other, then every write raises an
error nobody foresaw (not a TransientError, not a TerminalError: a bug).

Register it for one test with ``monkeypatch.setitem(registry.KINDS, "chaos", CHAOS)`` and
create destinations of kind ``chaos`` with ``force`` (there is nothing to validate).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from spillway.destinations.base import (
    Capabilities,
    Check,
    Needs,
    ObjectStore,
    ObjectWriter,
    Tenant,
    object_location,
)

CHAOS = "tests.integration.chaos"
MESSAGE = "chaos: the store blew up in a way nobody planned for"


capabilities = Capabilities(
    stream=False,
    updatable=("folder",),
    auth_modes=("none",),
    location=object_location("chaos", "folder"),
)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = ""


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["none"] = "none"


class ChaosStore(ObjectStore):
    """Builds fine; every operation raises a plain RuntimeError."""

    kind = "chaos"

    def open_object(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> ObjectWriter:
        raise RuntimeError(MESSAGE)

    def read_object(self, key: str) -> bytes:
        raise RuntimeError(MESSAGE)

    def list_objects(self, prefix: str) -> list[str]:
        raise RuntimeError(MESSAGE)

    def delete_object(self, key: str) -> None:
        raise RuntimeError(MESSAGE)

    def validate(self, needs: Needs) -> list[Check]:
        return [Check.failed("write", MESSAGE)]


def build(config: Config, credentials: Credentials, tenant: Tenant) -> ChaosStore:
    return ChaosStore(config.folder)


def public_credentials(credentials: Credentials) -> dict[str, Any]:
    return {"mode": credentials.mode}
