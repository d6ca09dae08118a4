"""The server's file system as a local destination reaches it: the project's folder, the
destination's directory inside it (symlinks resolved), and the names of temporary files."""

from __future__ import annotations

from pathlib import Path

from spillway.destinations.base import Tenant
from spillway.destinations.local.config import SETTING, TURNED_OFF, LocalConfig, local_root

TEMP_PREFIX = ".spillway-"


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
