"""Files only the service can read (issue 8, item 8): the data directory 0700, the database and
key files 0600, from the CLI and from ``spillway serve``, fresh or found looser."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.acceptance.conftest import (
    ServerFactory,
    auth,
    create_credentials,
    create_project,
    make_events,
)

DB_FILES = ("spillway.db", "spillway.db-wal", "spillway.db-shm")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(data_dir: Path) -> dict[str, str]:
    """Octal modes of the data dir and everything in it, by name."""
    found = {".": oct(mode(data_dir))}
    found.update({p.name: oct(mode(p)) for p in data_dir.iterdir()})
    return found


def test_cli_on_a_fresh_data_dir_makes_private_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"  # neither exists yet
    create_credentials(data_dir, "shop")  # create-project, create-key write and read
    assert mode(data_dir) == 0o700, modes(data_dir)
    assert mode(data_dir / "spillway.db") == 0o600, modes(data_dir)
    assert mode(data_dir / "secret.key") == 0o600, modes(data_dir)
    for path in data_dir.iterdir():
        assert not mode(path) & 0o077, modes(data_dir)


def test_serve_on_a_fresh_data_dir_makes_private_files(
    tmp_path: Path, start_spillway: ServerFactory
) -> None:
    data_dir = tmp_path / "served"  # does not exist: `spillway serve` creates it
    server = start_spillway(data_dir)
    creds = create_credentials(data_dir, "shop", read_key=False)
    sent = server.client.post(
        "/api/v1/events",
        content=json.dumps(make_events(5)),
        headers={"Content-Type": "application/json", **auth(creds.write_token)},
    )
    assert sent.status_code == 200, sent.text
    # While the server runs, SQLite keeps its -wal and -shm files beside the database.
    assert {p.name for p in data_dir.iterdir()} >= {*DB_FILES, "secret.key"}, modes(data_dir)
    assert mode(data_dir) == 0o700, modes(data_dir)
    for name in (*DB_FILES, "secret.key"):
        assert mode(data_dir / name) == 0o600, (name, modes(data_dir))


def test_serve_tightens_a_data_dir_left_readable(
    tmp_path: Path, start_spillway: ServerFactory
) -> None:
    data_dir = tmp_path / "old"
    create_project(data_dir, "shop")
    # As an older Spillway left it: 0755 and 0644.
    data_dir.chmod(0o755)
    for path in data_dir.iterdir():
        path.chmod(0o644)
    server = start_spillway(data_dir)
    assert mode(data_dir) == 0o700, modes(data_dir)
    for path in data_dir.iterdir():
        assert mode(path) == 0o600, modes(data_dir)
    server.stop()
    log = server.log()
    assert "tightened the permissions of the data directory" in log, log
    assert "spillway.db from 0644 to 0600" in log, log


def test_a_shared_directory_is_left_alone_but_the_files_are_private(
    tmp_path: Path, start_spillway: ServerFactory
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    (shared / "someone-elses-notes.txt").write_text("not Spillway's")
    server = start_spillway(shared)
    assert mode(shared) == 0o755  # not ours alone: not changed under the operator's feet
    assert mode(shared / "spillway.db") == 0o600
    assert mode(shared / "secret.key") == 0o600
    server.stop()
    assert "is not Spillway's alone" in server.log()
