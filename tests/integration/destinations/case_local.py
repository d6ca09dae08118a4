"""Local folder case."""

from __future__ import annotations

from pathlib import Path

import pytest

from spillway.destinations.base import ObjectStore
from spillway.destinations.local.store import LocalConfig, LocalStore
from tests.integration.destinations.cases import StoreCase


@pytest.fixture
def local_case(tmp_path: Path) -> StoreCase:
    root = tmp_path / "bucket"
    root.mkdir()

    def make(part_size: int) -> ObjectStore:
        store = LocalStore(LocalConfig(path=str(root), folder="exports"))
        store.part_size = part_size
        return store

    def raw_read(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.is_file() else None

    def unwritable() -> ObjectStore:
        locked = tmp_path / "locked"
        locked.mkdir(exist_ok=True)
        locked.chmod(0o500)
        return LocalStore(LocalConfig(path=str(locked / "sub"), folder="exports"))

    return StoreCase(
        kind="local",
        make=make,
        make_bad_credentials=unwritable,
        make_missing_bucket=lambda: LocalStore(LocalConfig(path=str(tmp_path / "nope"))),
        raw_read=raw_read,
        credentials_check="directory",
        bucket_check="directory",
        min_part_size=1024,
    )
