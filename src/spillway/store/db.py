"""Engine creation and schema migration, identical on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from spillway.filemodes import private_sqlite

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary constants for pg_advisory_xact_lock, one per purpose.
PG_LOCK_MIGRATE = 7_301_001
PG_LOCK_INGEST = 7_301_002


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of every stored timestamp."""
    return time.time_ns() // 1_000_000


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed when the block ends, rolled back if it raises.

    Marked ``write`` so that SQLite takes its lock up front (``BEGIN IMMEDIATE``) instead of
    failing to upgrade a read transaction under contention.
    """
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        yield conn


def create_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine tuned for the dialect: WAL + immediate write transactions on SQLite.

    ``pool_size`` (``SPILLWAY_DB_POOL_SIZE``) bounds a PostgreSQL engine's connections: that
    many kept, as many again opened under load. Several processes share max_connections.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return sa.create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)


def _sqlite_engine(url: str) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:" and not path.startswith("file:"):
        # The directory 0700, the database files 0600: they hold every event.
        private_sqlite(Path(path))
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite's own is lazy and
        # would start writers as readers, leading to SQLITE_BUSY on upgrade).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable against a killed process; only power loss can take
        # the last commits, which is the usual trade for a 10x faster commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A larger page cache keeps the uuid index's random pages in memory, and rarer
        # checkpoints mean fewer fsyncs; both matter most for ingest throughput.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers ask for the lock up front; readers take a snapshot without blocking anyone.
        if conn.get_execution_options().get("write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def unique_violation(exc: sa.exc.IntegrityError, index: sa.Index) -> bool:
    """Whether ``exc`` is a duplicate key in ``index`` (and not some other constraint)."""
    diag = getattr(exc.orig, "diag", None)  # psycopg names the violated constraint
    if diag is not None and getattr(diag, "constraint_name", None):
        return bool(diag.constraint_name == index.name)
    table = index.table.name if index.table is not None else ""
    columns = ", ".join(f"{table}.{column.name}" for column in index.columns)
    return f"UNIQUE constraint failed: {columns}" in str(exc.orig)  # SQLite's wording


def write_lock(conn: Connection, lock_id: int) -> None:
    """Serialise writers of one kind. On SQLite, BEGIN IMMEDIATE already did."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call from several processes at once."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with write(engine) as conn:
        write_lock(conn, PG_LOCK_MIGRATE)
        config.attributes["connection"] = conn
        before = _schema_revision(conn)
        command.upgrade(config, revision)
        after = _schema_revision(conn)
    # One line when the schema changed, none otherwise (alembic's own INFO lines stay off).
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "empty", after)


def _schema_revision(conn: Connection) -> str | None:
    """The revision the database's schema is at; None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    revision: str | None = MigrationContext.configure(conn).get_current_revision()
    return revision
