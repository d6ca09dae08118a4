"""Session-wide fixtures: real servers, fresh databases, a running Spillway."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.store.db import create_engine, migrate
from tests import servers

# Each destination kind's test server and fresh-bucket fixtures (the conformance suite's cases).
pytest_plugins = [
    "tests.integration.destinations.case_local",
    "tests.integration.destinations.case_s3",
    "tests.integration.destinations.case_gcs",
    "tests.integration.destinations.case_azure_blob",
    "tests.integration.destinations.case_memory",
    "tests.integration.destinations.policy",
]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the session's PostgreSQL server (started here; fails the test if it can't)."""
    try:
        with servers.postgres() as url:
            yield url
    except servers.ServerFailed as exc:
        pytest.fail(f"PostgreSQL test server did not start: {exc}")


@pytest.fixture
def local_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's SPILLWAY_LOCAL_ROOT for this test (in this process and in subprocesses
    it starts): `local` destinations exist only with it, each project inside its subfolder."""
    root = tmp_path_factory.mktemp("local-root")
    monkeypatch.setenv("SPILLWAY_LOCAL_ROOT", str(root))
    return root


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'spillway.db'}"
        return
    with _fresh_pg(request.getfixturevalue("postgres_url")) as url:
        yield url


@contextmanager
def _fresh_pg(base: str) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, for tests that open several engines on it (as
    several processes would)."""
    with _fresh_pg(postgres_url) as url:
        engine = create_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on a fresh database of each dialect."""
    eng = create_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()
