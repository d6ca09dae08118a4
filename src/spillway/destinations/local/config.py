"""Local folder destination settings: a folder inside the project's own folder on the server.

The server's disk is the operator's. A ``local`` destination exists only when the operator sets
``SPILLWAY_LOCAL_ROOT``, and each project writes only inside its own subfolder of it,
``<SPILLWAY_LOCAL_ROOT>/<project id>/``. The config's ``path`` is relative to that subfolder;
a path that is absolute, climbs with ``..`` or resolves (through symlinks) outside it is
refused: by the config model and the registry's ``admit`` when a destination is configured (so
``"force": true`` cannot skip it), when its store is built, and again for every object written,
read, listed or deleted.

Destinations stored before per-project folders (an absolute ``path``) keep working when that
path lies inside the project's subfolder; any other fails its runs with a terminal error that
says what to change.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from spillway.destinations.fields import check_folder, stored

SETTING = "SPILLWAY_LOCAL_ROOT"
TURNED_OFF = (
    "local folders are turned off on this server; the operator enables them with "
    f"{SETTING} (each project then writes inside its own subfolder of it)"
)


def local_root() -> Path | None:
    """The operator's SPILLWAY_LOCAL_ROOT (read now: the setting may be changed by a restart)."""
    from spillway.settings import Settings

    return Settings().local_root


def _relative(value: str, field: str) -> str:
    """A relative folder path without '..' (normalised: no '.', no empty parts)."""
    if "\x00" in value:
        raise ValueError(f"{field} must not contain NUL characters")
    if value.startswith(("/", "\\")) or PurePosixPath(value).is_absolute():
        raise ValueError(
            f"{field} must be relative to this project's own folder (e.g. 'exports'), not an "
            "absolute path: a project writes only inside its subfolder of the server's "
            f"{SETTING}"
        )
    parts = [part for part in value.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{field} must not contain '..': it stays inside this project's folder")
    return "/".join(parts)


class LocalConfig(BaseModel):
    """Where the files go: a folder inside the project's own folder on the server."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        default="",
        description=(
            "Folder inside this project's own folder <SPILLWAY_LOCAL_ROOT>/<project id>/ on the "
            "server, e.g. 'exports'; empty for that folder itself. Relative, without '..'."
        ),
    )
    folder: str = Field(default="", description="Folder path inside the directory.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if stored(info) and value.startswith("/"):
            return value  # stored before per-project folders: judged when its store is built
        return _relative(value, "path")

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        _relative(check_folder(value), "folder")
        return value

    @model_validator(mode="after")
    def _on(self, info: ValidationInfo) -> LocalConfig:
        if not stored(info) and local_root() is None:
            raise ValueError(TURNED_OFF)
        return self


class LocalCredentials(BaseModel):
    """A local folder needs no credentials."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["none"] = "none"


def public_credentials(credentials: LocalCredentials) -> dict[str, Any]:
    """Nothing secret to mask."""
    return {"mode": credentials.mode}
