"""Real servers for the tests, started on loopback. A server that cannot start fails loudly."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ServerFailed(RuntimeError):
    """A test server could not be started; the message says why."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServerFailed(f"nothing listens on port {port} after {timeout}s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path:
        return path
    raise ServerFailed(
        f"PostgreSQL's {name} was not found: install Debian's 'postgresql' package "
        "(scripts/system-deps.sh does it; `make test` runs that script)"
    )


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields a URL to its ``postgres`` database.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="spillway-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerFailed(
                "running as root and there is no 'postgres' user to run as"
            ) from None
        for path in (root, sock):
            os.chown(path, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServerFailed(f"{' '.join(args[:2])} failed: {result.stderr or result.stdout}")

    run(initdb, "-D", str(data), "-A", "trust", "-U", "spillway", "-E", "UTF8", "--no-sync")
    options = (
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://spillway@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


# Origins of the test servers started so far: in-process code reaches them through the
# outbound policy (spillway.netpolicy), and `spillway serve` subprocesses through
# SPILLWAY_ALLOWED_ENDPOINTS, exactly as an operator would list a MinIO or an emulator.
_ALLOWED: set[str] = set()


def allow_endpoint(url: str) -> None:
    """List a test server's origin, here and for servers started from now on."""
    from spillway import netpolicy

    origin = netpolicy.origin_of(url)
    _ALLOWED.add(str(origin))
    netpolicy.configure(netpolicy.Policy(netpolicy.current().allowed | {origin}))


def allowed_endpoints() -> str:
    """The value of SPILLWAY_ALLOWED_ENDPOINTS for a subprocess: every origin listed so far."""
    return ",".join(sorted(_ALLOWED))
