"""Local folder destination: objects are files; a commit is an atomic rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from spillway.destinations.base import (
    Capabilities,
    Check,
    Needs,
    ObjectStore,
    ObjectWriter,
    StoredObject,
    object_checks,
)


class LocalConfig(BaseModel):
    """Where the files go."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, description="An absolute directory path on the server.")
    folder: str = Field(default="", description="Folder path inside the directory.")


class LocalCredentials(BaseModel):
    """A local folder needs no credentials."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["none"] = "none"


class _FileWriter(ObjectWriter):
    def __init__(self, root: Path, key: str) -> None:
        super().__init__(key)
        self._target = root / key
        self._target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".spillway-", suffix=".part", dir=self._target.parent)
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")

    def _write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def _commit(self) -> StoredObject:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self._target)
        return StoredObject(self.key, self.size, {"path": str(self._target)})

    def _abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalStore(ObjectStore):
    """Objects as files below a directory."""

    kind = "local"
    capabilities = Capabilities(objects=True, streams=False, multipart=False)

    def __init__(self, config: LocalConfig) -> None:
        super().__init__(config.folder)
        self.root = Path(config.path)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} points outside {self.root}")
        return path

    def open_object(
        self, key: str, *, content_type: str = "application/octet-stream"
    ) -> ObjectWriter:
        self._path(key)
        return _FileWriter(self.root, key)

    def read_object(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def list_objects(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".spillway-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_object(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def validate(self, needs: Needs) -> list[Check]:
        if not self.root.is_absolute():
            return [Check.failed("directory", f"{self.root} is not an absolute path")]
        if not self.root.is_dir():
            return [
                Check.failed(
                    "directory",
                    f"{self.root} does not exist on the Spillway server; create it first",
                )
            ]
        if not os.access(self.root, os.W_OK):
            return [
                Check.failed("directory", f"{self.root} is not writable by the Spillway process")
            ]
        checks = [Check.passed("directory", f"{self.root} exists and is writable")]
        return checks + object_checks(self, needs, lambda exc: str(exc))
