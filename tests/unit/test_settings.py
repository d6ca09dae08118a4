"""Unit tests of settings: the generated service key and the default database."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from spillway.settings import SECRET_KEY_FILE, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SPILLWAY_* variables: make sure none leak in from outside."""
    for name in list(os.environ):
        if name.upper().startswith("SPILLWAY_"):
            monkeypatch.delenv(name)


def test_secret_key_is_generated_into_the_data_dir_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # does not exist yet
    key = Settings(data_dir=data_dir).service_key()
    path = data_dir / SECRET_KEY_FILE
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().strip() == key
    assert len(key) >= 32
    assert [p.name for p in data_dir.iterdir()] == [SECRET_KEY_FILE]  # no temp file left


def test_secret_key_file_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        Settings(data_dir=tmp_path).service_key()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / SECRET_KEY_FILE).stat().st_mode) == 0o600


def test_generated_secret_key_is_stable_across_calls_and_instances(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).service_key()
    assert Settings(data_dir=tmp_path).service_key() == first
    assert Settings(data_dir=tmp_path).service_key() == first


def test_each_data_dir_gets_its_own_key(tmp_path: Path) -> None:
    one = Settings(data_dir=tmp_path / "one").service_key()
    two = Settings(data_dir=tmp_path / "two").service_key()
    assert one != two


def test_existing_key_file_is_used(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE).write_bytes(b"an-existing-key-that-is-long-enough-123\n")
    assert Settings(data_dir=tmp_path).service_key() == b"an-existing-key-that-is-long-enough-123"


def test_short_secret_key_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPILLWAY_SECRET_KEY", "x" * 31)
    monkeypatch.setenv("SPILLWAY_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="at least 32 characters"):
        Settings().service_key()


def test_secret_key_from_the_environment_wins_and_writes_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPILLWAY_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("SPILLWAY_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.service_key() == b"k" * 32
    assert not (tmp_path / SECRET_KEY_FILE).exists()
    assert "k" * 32 not in repr(settings)  # the key is not shown when settings are logged


def test_default_database_is_sqlite_inside_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert (
        settings.resolved_database_url
        == f"sqlite:///{(tmp_path / 'data').resolve() / 'spillway.db'}"
    )


def test_default_database_path_is_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A relative data dir is resolved, so a later chdir cannot move the database."""
    monkeypatch.chdir(tmp_path)
    url = Settings().resolved_database_url
    assert url == f"sqlite:///{tmp_path.resolve() / '.spillway' / 'spillway.db'}"


def test_database_url_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPILLWAY_DATABASE_URL", "postgresql://spillway@db/spillway")
    assert Settings().resolved_database_url == "postgresql://spillway@db/spillway"
