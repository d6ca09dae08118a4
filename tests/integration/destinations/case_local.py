"""Local folder case: a folder inside one project's subfolder of the operator's local root."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from spillway.destinations.base import ObjectStore, Tenant
from spillway.destinations.local.config import LocalConfig, LocalCredentials
from spillway.destinations.local.kind import build
from tests.integration.destinations.cases import StoreCase


def tenant() -> Tenant:
    """A project as destinations see it (its app_id names its subfolder)."""
    return Tenant(uuid.uuid4().hex, "acme", "unused-external-id")


def local_store(path: str, project: Tenant, folder: str = "exports") -> ObjectStore:
    """A store built as the registry builds one (config model, then the kind's build)."""
    config = LocalConfig.model_validate({"path": path, "folder": folder})
    return build(config, LocalCredentials(), project)


@pytest.fixture
def local_case(local_root: Path, monkeypatch: pytest.MonkeyPatch) -> StoreCase:
    project = tenant()
    root = local_root / project.app_id / "bucket"

    def make(part_size: int) -> ObjectStore:
        store = local_store("bucket", project)
        store.part_size = part_size
        return store

    def raw_read(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.is_file() else None

    def unwritable() -> ObjectStore:
        # A folder has no credentials: what the server can refuse is the write. Running as root,
        # permissions stop nothing, so a file where this project's folder "bucket" would be
        # makes it impossible to create, as a read-only disk would. The operator's root exists
        # (unlike the missing case): the failure must say the folder cannot be written.
        project_folder = local_root / project.app_id
        project_folder.mkdir(exist_ok=True)
        (project_folder / "bucket").write_bytes(b"not a folder")
        assert local_root.is_dir()
        return local_store("bucket", project)

    def missing() -> ObjectStore:
        # The operator's root itself is missing (the store keeps the root it was built with).
        with monkeypatch.context() as patch:
            patch.setenv("SPILLWAY_LOCAL_ROOT", str(local_root.parent / "nope"))
            return local_store("bucket", project)

    return StoreCase(
        kind="local",
        make=make,
        make_bad_credentials=unwritable,
        make_missing_bucket=missing,
        raw_read=raw_read,
        credentials_check="directory",
        bucket_check="directory",
        min_part_size=1024,
        credentials_words=("cannot create", "write"),
    )
