"""The ``spillway`` command as an operator uses it."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from tests.acceptance.conftest import count_events, create_key, create_project, db_path, run_cli


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data dir (Spillway creates its contents)."""
    return tmp_path / "data"


def project_id_by_name(data_dir: Path, name: str) -> str | None:
    """The public id of the project called ``name``, read from SQLite."""
    with closing(sqlite3.connect(db_path(data_dir))) as conn:
        row = conn.execute("select app_id from projects where name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "worker", "admin", "demo"):
        assert re.search(rf"\b{command}\b", result.stdout), result.stdout


def test_create_project_and_key_print_json(data_dir: Path) -> None:
    project = create_project(data_dir, "shop")
    assert re.fullmatch(r"[0-9a-f]{32}", project["project_id"])
    assert project["name"] == "shop"

    key = create_key(data_dir, project["project_id"], "write")
    assert key["project_id"] == project["project_id"]
    assert key["key_id"] and key["secret"]
    assert key["token"] == f"{key['key_id']}.{key['secret']}"
    assert key["scope"] == "write"

    by_name = create_key(data_dir, "shop", "read")
    assert by_name["project_id"] == project["project_id"]
    assert by_name["scope"] == "read"
    assert by_name["key_id"] != key["key_id"]


def test_secret_key_file_is_private(data_dir: Path) -> None:
    create_project(data_dir, "shop")
    create_key(data_dir, "shop", "write")
    mode = stat.S_IMODE((data_dir / "secret.key").stat().st_mode)
    assert mode == 0o600, oct(mode)


def test_create_key_with_bogus_scope_fails_with_a_message(data_dir: Path) -> None:
    create_project(data_dir, "shop")
    result = run_cli(data_dir, "admin", "create-key", "shop", "--scope", "bogus", "--json")
    assert result.returncode != 0
    assert "bogus" in result.stderr
    assert "scope" in result.stderr
    assert "ingest" in result.stderr  # the scopes it may be
    assert result.stdout.strip() == ""


def test_create_key_for_unknown_project_fails_with_a_message(data_dir: Path) -> None:
    create_project(data_dir, "shop")
    result = run_cli(data_dir, "admin", "create-key", "no-such-project", "--json")
    assert result.returncode != 0
    assert "no-such-project" in result.stderr
    assert result.stdout.strip() == ""


def test_duplicate_project_name_fails_with_a_message(data_dir: Path) -> None:
    create_project(data_dir, "shop")
    result = run_cli(data_dir, "admin", "create-project", "shop", "--json")
    assert result.returncode != 0
    assert "already exists" in result.stderr


def test_demo_creates_the_project_and_stores_events_then_worker_keeps_them(
    data_dir: Path,
) -> None:
    result = run_cli(data_dir, "demo", "--events", "1200", "--project", "newproj")
    assert result.returncode == 0, result.stderr
    assert "newproj" in result.stdout
    project_id = project_id_by_name(data_dir, "newproj")
    assert project_id is not None
    assert count_events(data_dir, project_id) == 1200

    # Fresh events are well inside retention: a worker pass prunes nothing.
    worker = run_cli(data_dir, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    report = json.loads(worker.stdout.strip().splitlines()[-1])
    assert report["pruned"] == 0
    assert count_events(data_dir, project_id) == 1200


def test_worker_once_on_an_empty_data_dir(data_dir: Path) -> None:
    result = run_cli(data_dir, "worker", "--once")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pruned"] == 0
