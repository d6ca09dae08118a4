"""Where the memory store writes (a named bucket of a process-wide dict) and its one auth mode."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class MemoryConfig(BaseModel):
    """A bucket name and a folder inside it."""

    model_config = ConfigDict(extra="forbid")
    bucket: str = Field(min_length=1)
    folder: str = ""


class MemoryCredentials(BaseModel):
    """A shared token (see :data:`~tests.integration.destinations.memory.client.TOKEN`)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["token"] = "token"
    token: SecretStr
