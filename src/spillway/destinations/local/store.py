"""Local folder destination: objects are files; a commit is an atomic rename.

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

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from spillway.destinations.base import (
    Check,
    DestinationError,
    Needs,
    ObjectStore,
    ObjectWriter,
    StoredObject,
    Tenant,
    object_checks,
)
from spillway.destinations.fields import check_folder, stored

SETTING = "SPILLWAY_LOCAL_ROOT"
TURNED_OFF = (
    "local folders are turned off on this server; the operator enables them with "
    f"{SETTING} (each project then writes inside its own subfolder of it)"
)
TEMP_PREFIX = ".spillway-"


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


def project_folder(tenant: Tenant) -> Path:
    """``<SPILLWAY_LOCAL_ROOT>/<project id>`` (the root resolved), or ValueError when off."""
    root = local_root()
    if root is None:
        raise ValueError(TURNED_OFF)
    app_id = tenant.app_id
    if not app_id or app_id in (".", "..") or "/" in app_id or "\\" in app_id:
        raise ValueError(f"project id {app_id!r} cannot name a folder")
    return root.resolve() / app_id


def shown(tenant: Tenant, path: str) -> str:
    """How messages name a folder: inside the project's folder, not the server's layout."""
    return f"<{SETTING}>/{tenant.app_id}/{path}".rstrip("/")


def directory_of(config: LocalConfig, tenant: Tenant) -> tuple[Path, Path]:
    """The project's folder and the destination's directory inside it (symlinks resolved).

    ValueError, saying what to change, when the directory is anywhere else.
    """
    project = project_folder(tenant)
    path = config.path
    if path.startswith("/"):  # stored before per-project folders
        candidate = Path(path)
        what = f"path {path!r} (stored as an absolute path)"
        fix = (
            f"move its files into {shown(tenant, '')} and set path to a folder relative to it "
            "(PATCH config.path)"
        )
    else:
        candidate = project / path
        what = f"path {path!r}" if path else "this project's folder"
        fix = "use a folder that is not a symlink leading elsewhere"
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise ValueError(f"{what} cannot be resolved (a symlink loop?): {fix}") from None
    if not resolved.is_relative_to(project):
        raise ValueError(
            f"{what} resolves outside this project's folder {shown(tenant, '')}: {fix}"
        )
    return project, resolved


class _FileWriter(ObjectWriter):
    def __init__(self, store: LocalStore, key: str, target: Path) -> None:
        super().__init__(key)
        self._target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        # Whatever appeared on the way (a symlink swapped in) must still be inside.
        store.inside(target.parent.resolve(), key)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=target.parent)
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")

    def _write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def _commit(self) -> StoredObject:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self._target)  # replaces a symlink there, never follows it
        return StoredObject(self.key, self.size, {"path": self.key})

    def _abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalStore(ObjectStore):
    """Objects as files below a directory inside the project's folder."""

    kind = "local"

    def __init__(
        self,
        config: LocalConfig,
        tenant: Tenant,
        *,
        project: Path | None = None,
        root: Path | None = None,
        refusal: str | None = None,
    ) -> None:
        super().__init__(config.folder)
        self.config = config
        self.tenant = tenant
        self.project = project  # <SPILLWAY_LOCAL_ROOT>/<project id>, resolved
        self.root = root  # the destination's directory, resolved
        # Set when the operator's settings do not allow this destination: every call fails.
        self.refusal = refusal
        self.where = shown(tenant, config.path if not config.path.startswith("/") else "")

    def _base(self) -> tuple[Path, Path]:
        if self.refusal is not None or self.root is None or self.project is None:
            raise DestinationError(self.refusal or TURNED_OFF)
        return self.project, self.root

    def inside(self, path: Path, key: str) -> Path:
        """``path`` (resolved) when it lies inside this destination's directory."""
        project, root = self._base()
        if not (path.is_relative_to(root) and path.is_relative_to(project)):
            raise DestinationError(
                f"object key {key!r} leads outside this destination's folder {self.where}"
            )
        return path

    def _path(self, key: str) -> Path:
        """Where ``key`` lives, symlinks resolved; refused anywhere outside the directory."""
        _, root = self._base()
        if not key or "\x00" in key or key.startswith("/"):
            raise DestinationError(f"object key {key!r} is not a relative file name")
        try:
            path = (root / key).resolve()
        except RuntimeError:  # a symlink loop
            raise DestinationError(f"object key {key!r} cannot be resolved") from None
        return self.inside(path, key)

    def open_object(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> ObjectWriter:
        return _FileWriter(self, key, self._path(key))

    def read_object(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def list_objects(self, prefix: str) -> list[str]:
        """Files under ``prefix`` only: the walk starts at the prefix's own folder and never
        enters a folder that cannot hold such keys, nor follows a symlink."""
        _, root = self._base()
        start = root
        if "/" in prefix:
            start = self._path(prefix.rsplit("/", 1)[0])
        if not start.is_dir():
            return []
        keys = []
        for current, folders, files in os.walk(start):
            here = Path(current).relative_to(root).as_posix()
            here = "" if here == "." else here + "/"
            folders[:] = [
                name
                for name in folders
                if (here + name + "/").startswith(prefix) or prefix.startswith(here + name + "/")
            ]
            for name in files:
                key = here + name
                if (
                    key.startswith(prefix)
                    and not name.startswith(TEMP_PREFIX)
                    and not os.path.islink(os.path.join(current, name))
                ):
                    keys.append(key)
        return sorted(keys)

    def delete_object(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def validate(self, needs: Needs) -> list[Check]:
        try:
            _, root = self._base()
        except DestinationError as exc:
            return [Check.failed("directory", str(exc))]
        project, _ = self._base()
        if not project.parent.is_dir():  # the operator's root, as the store was built with
            return [
                Check.failed(
                    "directory",
                    f"the server's {SETTING} folder does not exist: the operator must create it",
                )
            ]
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.inside(root.resolve(), self.config.path or ".")
        except DestinationError as exc:
            return [Check.failed("directory", str(exc))]
        except OSError as exc:
            return [
                Check.failed(
                    "directory",
                    f"cannot create {self.where} ({exc.strerror or exc.__class__.__name__}): "
                    "the operator must let the Spillway process write there",
                )
            ]
        if not os.access(root, os.W_OK):
            return [
                Check.failed("directory", f"{self.where} is not writable by the Spillway process")
            ]
        checks = [Check.passed("directory", f"{self.where} exists and is writable")]
        return checks + object_checks(self, needs, self.explain)

    def explain(self, exc: BaseException) -> str:
        """A sentence for a failed file operation, naming paths inside the project only."""
        if isinstance(exc, DestinationError):
            return str(exc)
        if isinstance(exc, OSError):
            return f"{exc.strerror or exc.__class__.__name__} in {self.where}"
        return f"{exc.__class__.__name__} in {self.where}"
