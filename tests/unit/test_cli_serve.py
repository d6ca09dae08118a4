"""The pieces of ``spillway serve``'s start-up: the block it prints and the socket it takes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from spillway.cli_serve import PortUnavailable, base_url, command_name, listen, next_steps
from spillway.settings import Settings


def test_the_database_password_is_never_shown(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+psycopg://spill:hunter2@db.internal/spillway"
    )
    block = next_steps(settings, "127.0.0.1", 8080, has_project=False, command="spillway")
    assert "hunter2" not in block
    assert "database:  postgresql+psycopg://spill:***@db.internal/spillway" in block


def test_every_address_is_shown_as_a_url_a_browser_opens() -> None:
    assert base_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert base_url("::", 9000) == "http://[::1]:9000"
    assert base_url("10.0.0.5", 80) == "http://10.0.0.5:80"


def test_the_commands_name_the_spillway_that_runs() -> None:
    assert command_name(".venv/bin/spillway") == ".venv/bin/spillway"
    assert command_name("spillway") == "spillway"


def test_listen_reports_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortUnavailable, match=rf"^port {port} is in use: stop what uses it"):
            listen("127.0.0.1", port)
    with listen("127.0.0.1", 0) as sock:  # a free one is taken and listening
        assert sock.getsockname()[1] > 0
