"""``make run`` and ``spillway serve`` as a newcomer meets them: the port and host they choose,
an install with only what the service needs, a start-up block that says what to do next, no
migration noise, and a port in use reported as such."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.acceptance.conftest import ServerFactory, create_project, run_cli
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
INFO = {"SPILLWAY_LOG_LEVEL": "INFO"}  # what a newcomer has; the harness's default is WARNING


def make_dry_run(*args: str) -> str:
    """What ``make ARGS`` would run, for a virtualenv that does not exist yet."""
    result = subprocess.run(
        ["make", "-n", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_make_run_takes_port_and_host_and_installs_only_the_service(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    planned = make_dry_run("run", "PORT=9000", "HOST=0.0.0.0", f"VENV={venv}")
    assert f"{venv}/bin/spillway serve --host 0.0.0.0 --port 9000" in planned, planned
    assert f"{venv}/bin/pip install --quiet -e .\n" in planned, planned
    assert "[dev]" not in planned, planned
    default = make_dry_run("run", f"VENV={venv}")
    assert f"{venv}/bin/spillway serve --host 127.0.0.1 --port 8080" in default, default


def test_make_test_still_installs_the_dev_tools(tmp_path: Path) -> None:
    planned = make_dry_run("install", f"VENV={tmp_path / 'venv'}")
    assert "pip install --quiet -e '.[dev]'" in planned, planned


def test_start_up_says_what_to_do_next(start_spillway: ServerFactory) -> None:
    server = start_spillway(extra_env=INFO)
    log = server.log()
    assert f"Spillway is listening on http://127.0.0.1:{server.port}" in log, log
    assert f"data dir:  {server.data_dir.resolve()}" in log, log
    assert f"database:  sqlite:///{(server.data_dir / 'spillway.db').resolve()}" in log, log
    assert "admin create-project my-app" in log, log
    assert "admin create-key my-app --scope write" in log, log
    assert "/docs" not in log, log
    # Migrating a new database is one line of Spillway's, not alembic's set-up chatter.
    assert "alembic" not in log, log
    assert log.count("database schema upgraded from empty to") == 1, log
    server.stop()

    create_project(server.data_dir, "shop")
    again = start_spillway(server.data_dir, INFO)
    log = again.log()
    assert f"web UI:    http://127.0.0.1:{again.port}/" in log, log
    assert f"API docs:  http://127.0.0.1:{again.port}/docs" in log, log
    assert "create-project" not in log, log
    assert "alembic" not in log and "schema upgraded" not in log, log


def test_a_port_in_use_is_reported_before_anything_claims_to_listen(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = run_cli(tmp_path / "data", "serve", "--port", str(port), "--no-worker")
    assert result.returncode == 1, result
    assert (
        f"error: port {port} is in use: stop what uses it or choose another with "
        "--port / PORT=" in result.stderr
    ), result.stderr
    assert "listening" not in result.stdout + result.stderr, result
    # Nothing was started: not even the database was created.
    assert not (tmp_path / "data" / "spillway.db").exists()
