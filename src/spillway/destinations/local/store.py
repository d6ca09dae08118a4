"""Local folder destination: objects are files; a commit is an atomic rename.

See ``config`` for where a project may write; every object written, read, listed or deleted is
checked again to lie inside the destination's directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from spillway.destinations.base import (
    Check,
    DestinationError,
    Needs,
    ObjectStore,
    ObjectWriter,
    StoredObject,
    Tenant,
)
from spillway.destinations.local.checks import run_checks
from spillway.destinations.local.client import TEMP_PREFIX, shown
from spillway.destinations.local.config import TURNED_OFF, LocalConfig


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

    def directories(self) -> tuple[Path, Path]:
        if self.refusal is not None or self.root is None or self.project is None:
            raise DestinationError(self.refusal or TURNED_OFF)
        return self.project, self.root

    def inside(self, path: Path, key: str) -> Path:
        """``path`` (resolved) when it lies inside this destination's directory."""
        project, root = self.directories()
        if not (path.is_relative_to(root) and path.is_relative_to(project)):
            raise DestinationError(
                f"object key {key!r} leads outside this destination's folder {self.where}"
            )
        return path

    def _path(self, key: str) -> Path:
        """Where ``key`` lives, symlinks resolved; refused anywhere outside the directory."""
        _, root = self.directories()
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
        _, root = self.directories()
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
        return run_checks(self, needs)

    def explain(self, exc: BaseException) -> str:
        """A sentence for a failed file operation, naming paths inside the project only."""
        if isinstance(exc, DestinationError):
            return str(exc)
        if isinstance(exc, OSError):
            return f"{exc.strerror or exc.__class__.__name__} in {self.where}"
        return f"{exc.__class__.__name__} in {self.where}"
