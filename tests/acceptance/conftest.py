"""Acceptance fixtures: the real ``spillway`` console script and a real server subprocess.

Nothing here imports Spillway itself: everything goes through the CLI, HTTP, and the SQLite
file the server writes, as a user (or an operator) would see it. The ``pg_*`` fixtures run a
server on PostgreSQL (the session's test cluster) instead.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.servers import ServerFailed, allowed_endpoints, free_port, wait_for_port

SPILLWAY = str(Path(sys.executable).with_name("spillway"))
CLI_TIMEOUT = 60.0
START_TIMEOUT = 30.0


def cli_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``spillway`` subprocess: ours, minus any SPILLWAY_* we inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    env.update(
        SPILLWAY_DATA_DIR=str(data_dir),
        SPILLWAY_LOG_LEVEL="WARNING",
        # The test servers started so far (moto, emulators), as an operator would list them.
        SPILLWAY_ALLOWED_ENDPOINTS=allowed_endpoints(),
        # Plain, wide help output regardless of the terminal the tests run in.
        COLUMNS="200",
        NO_COLOR="1",
        TERM="dumb",
        PYTHONUNBUFFERED="1",
    )
    if extra:
        env.update(extra)
    return env


def run_cli(
    data_dir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``spillway ARGS`` with ``data_dir`` as its data dir; never raises on exit status."""
    return subprocess.run(
        [SPILLWAY, *args],
        env=cli_env(data_dir, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_json(data_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run a ``--json`` CLI command that must succeed, and parse what it printed."""
    result = run_cli(data_dir, *args, "--json", env=env)
    assert result.returncode == 0, (
        f"spillway {' '.join(args)} exited {result.returncode}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def create_project(
    data_dir: Path, name: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``spillway admin create-project NAME --json``."""
    return cli_json(data_dir, "admin", "create-project", name, env=env)


def create_key(
    data_dir: Path, project: str, scope: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``spillway admin create-key PROJECT --scope S --json`` (project by name or id)."""
    return cli_json(data_dir, "admin", "create-key", project, "--scope", scope, env=env)


@dataclass(frozen=True)
class Credentials:
    """A project with a write key and (unless asked not to) a read key."""

    project_id: str
    write: dict[str, Any]
    read: dict[str, Any] | None = None

    @property
    def write_token(self) -> str:
        """Bearer token of the write key."""
        token: str = self.write["token"]
        return token

    @property
    def read_token(self) -> str:
        """Bearer token of the read key."""
        assert self.read is not None, "these credentials were made without a read key"
        token: str = self.read["token"]
        return token


def create_credentials(
    data_dir: Path,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    read_key: bool = True,
) -> Credentials:
    """A fresh project (named ``name`` or a random name) with a write key and a read key."""
    project = create_project(data_dir, name or f"p-{uuid.uuid4().hex[:10]}", env)
    project_id: str = project["project_id"]
    write = create_key(data_dir, project_id, "write", env)
    read = create_key(data_dir, project_id, "read", env) if read_key else None
    return Credentials(project_id, write, read)


def auth(token: str) -> dict[str, str]:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def db_path(data_dir: Path) -> Path:
    """The SQLite file the server keeps in its data dir."""
    return data_dir / "spillway.db"


def count_events(data_dir: Path, project_id: str | None = None) -> int:
    """Events stored (for one project, by its public id, or in all), read straight from SQLite."""
    with closing(sqlite3.connect(db_path(data_dir), timeout=30)) as conn:
        if project_id is None:
            row = conn.execute("select count(*) from events").fetchone()
        else:
            row = conn.execute(
                "select count(*) from events e join projects p on p.id = e.project_id "
                "where p.app_id = ?",
                (project_id,),
            ).fetchone()
    return int(row[0])


def stored_uuids(data_dir: Path, project_id: str) -> set[str]:
    """Every stored event_uuid of a project, read straight from SQLite."""
    with closing(sqlite3.connect(db_path(data_dir), timeout=30)) as conn:
        rows = conn.execute(
            "select e.event_uuid from events e join projects p on p.id = e.project_id "
            "where p.app_id = ?",
            (project_id,),
        ).fetchall()
    return {str(uuid.UUID(bytes=row[0])) for row in rows}  # stored as 16 bytes (0013)


@dataclass
class Server:
    """A running ``spillway serve`` subprocess."""

    base_url: str
    port: int
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    _client: httpx.Client | None = field(default=None, repr=False)

    def credentials(self, *, read_key: bool = True) -> Credentials:
        """A fresh project on this server's database, with a write and a read key."""
        return create_credentials(self.data_dir, env=self.extra_env, read_key=read_key)

    @property
    def client(self) -> httpx.Client:
        """A client bound to this server (no auth header by default)."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=60.0)
        return self._client

    def fresh_client(self) -> httpx.Client:
        """A client of its own (use it as a context manager): for requests that may break
        the shared client's connection, e.g. ones answered with a 500."""
        return httpx.Client(base_url=self.base_url, timeout=60.0)

    def log(self) -> str:
        """What the server printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log file)"

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no flush, nothing."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not go within 15 s."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(
    data_dir: Path,
    log_path: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    worker: bool = False,
) -> Server:
    """Start ``spillway serve --port <free>`` (``--no-worker`` unless ``worker``) and wait for
    ``/healthz`` to be 200.

    Fails the test, with the server's log, when it does not come up.
    """
    port = free_port()
    env = cli_env(data_dir, extra_env)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [SPILLWAY, "serve", "--port", str(port), *([] if worker else ["--no-worker"])],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(
        f"http://127.0.0.1:{port}", port, data_dir, env, process, log_path, dict(extra_env or {})
    )
    try:
        _wait_healthy(server)
    except (ServerFailed, httpx.HTTPError) as exc:
        server.stop()
        pytest.fail(f"spillway serve did not start: {exc}\n--- server log ---\n{server.log()}")
    return server


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if not server.alive():
            raise ServerFailed(f"the server exited with status {server.process.returncode}")
        try:
            wait_for_port(server.port, timeout=0.5)
        except ServerFailed:
            pass
        else:
            response = httpx.get(server.base_url + "/healthz", timeout=5.0)
            if response.status_code == 200:
                return
        if time.monotonic() > deadline:
            raise ServerFailed(f"/healthz did not answer 200 within {START_TIMEOUT}s")
        time.sleep(0.05)


class ServerFactory:
    """Starts servers for one test (or module) and stops every one of them afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Server] = []

    def __call__(
        self,
        data_dir: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        *,
        worker: bool = False,
    ) -> Server:
        """Start a server on ``data_dir`` (default: a fresh one)."""
        number = len(self.started)
        if data_dir is None:
            data_dir = self.root / f"data-{number}"
            data_dir.mkdir(parents=True)
        log_path = self.root / f"server-{number}.log"
        server = start_server(data_dir, log_path, extra_env, worker=worker)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        """Stop every server still running."""
        for server in self.started:
            server.stop()


@pytest.fixture
def start_spillway(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers (with extra env, or on an existing data dir) that stop after the test."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server with default settings, shared by the tests of a module."""
    factory = ServerFactory(tmp_path_factory.mktemp("spillway"))
    yield factory()
    factory.stop_all()


@pytest.fixture(scope="module")
def creds(server: Server) -> Credentials:
    """A project on the module's server, with a write and a read key."""
    return server.credentials()


@pytest.fixture(scope="session")
def pg_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on a fresh PostgreSQL database (``SPILLWAY_DATABASE_URL``), for the session."""
    name = "acceptance_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    factory = ServerFactory(tmp_path_factory.mktemp("spillway-pg"))
    try:
        yield factory(extra_env={"SPILLWAY_DATABASE_URL": url})
    finally:
        factory.stop_all()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_creds(pg_server: Server) -> Credentials:
    """A project on the PostgreSQL server, with a write and a read key."""
    return pg_server.credentials()


def make_event(index: int, **overrides: Any) -> dict[str, Any]:
    """A realistic, valid event with a fresh event_uuid."""
    event: dict[str, Any] = {
        "event_uuid": str(uuid.uuid4()),
        "event_name": ["App Opened", "Viewed Product", "Added To Cart", "Purchase"][index % 4],
        "event_type": "USER_ACTION_EVENT",
        "uid": f"user-{index % 97:05d}",
        "event_time": 1_763_856_000 + index,
        "event_source": "ACCEPTANCE",
        "event_attributes": {"product_id": f"sku-{index % 13}", "price": index % 50 + 0.99},
        "user_attributes": {"plan": "pro" if index % 7 == 0 else "free", "city": "Lagos"},
        "device_attributes": {"platform": "ANDROID", "os_version": "14"},
    }
    event.update(overrides)
    return event


def make_events(count: int) -> list[dict[str, Any]]:
    """``count`` valid events."""
    return [make_event(i) for i in range(count)]


def ndjson(events: Sequence[object]) -> bytes:
    """Events as NDJSON bytes."""
    return b"".join(json.dumps(event).encode() + b"\n" for event in events)
