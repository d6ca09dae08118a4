"""What ``spillway serve`` does before the server runs: take the port (saying plainly when it is
in use) and tell a newcomer where things are and what to do next."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spillway.settings import Settings

# Addresses that mean "every interface": not something a browser can open.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
BACKLOG = 2048  # uvicorn's default


class PortUnavailable(Exception):
    """The address cannot be listened on; the message says why and what to do."""


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, for uvicorn to serve on.

    Taken before anything else starts, so a port in use is reported as such (and nothing has
    claimed to be listening); connections that arrive before the app is ready wait in the
    backlog.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # A restarted server may take the port while the previous one's connections linger in
    # TIME_WAIT; on Linux this never lets two processes listen on the same port.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(
                f"port {port} is in use: stop what uses it or choose another with --port / PORT="
            ) from None
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def base_url(host: str, port: int) -> str:
    """The URL a browser on this machine opens (loopback when listening on every address)."""
    shown = _ANY_ADDRESS.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def command_name(argv0: str | None = None) -> str:
    """How to run this ``spillway`` from the current directory: ``spillway`` when that is the
    one on PATH, else its path (``.venv/bin/spillway`` under ``make run``)."""
    path = argv0 if argv0 is not None else sys.argv[0]
    if os.sep not in path:
        return path or "spillway"
    found = shutil.which("spillway")
    if found is not None and Path(found).resolve() == Path(path).resolve():
        return "spillway"
    if os.path.isabs(path):
        relative = os.path.relpath(path)
        return path if relative.startswith("..") else relative
    return path


def next_steps(settings: Settings, host: str, port: int, *, has_project: bool, command: str) -> str:
    """The start-up block: the URL, the data dir, the database (password hidden), then the two
    commands that create a project and a key, or, once there is one, where the UI and docs are."""
    from sqlalchemy.engine import make_url

    url = base_url(host, port)
    database = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    everywhere = " (on every address)" if host in _ANY_ADDRESS else ""
    lines = [
        f"Spillway is listening on {url}{everywhere}",
        f"  data dir:  {settings.data_dir.resolve()}",
        f"  database:  {database}",
    ]
    if has_project:
        lines += [f"  web UI:    {url}/", f"  API docs:  {url}/docs"]
    else:
        lines += [
            "Next, in another terminal here: create a project and a key (shown once)",
            f"  {command} admin create-project my-app",
            f"  {command} admin create-key my-app --scope write",
        ]
    return "\n".join(lines)
