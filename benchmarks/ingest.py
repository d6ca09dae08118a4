"""Ingest throughput through the HTTP API, next to a raw insert of the same rows.

Run: .venv/bin/python benchmarks/ingest.py [--events 200000] [--batch 500] [--clients 4]
                                           [--rounds 1] [--dir /dev/shm]
                                           [--database sqlite|postgres]

The server is one `spillway serve` process (one core for Python); the client sends
pre-serialised batches from threads so it stays out of the way. The baseline inserts the very
same normalised rows straight into a fresh, identically migrated database with executemany,
one transaction per batch: the floor cost of storing those rows, with no HTTP, parsing or checks.
With ``--database postgres`` a throwaway PostgreSQL cluster is started (``tests.servers``), each
round gets fresh databases in it, and there are two floors: psycopg's ``executemany``
(pipelined) and a binary ``COPY`` (PostgreSQL's cheapest way in, no dedup), each one transaction
per batch.

Besides events/s (wall clock), each line shows the CPU time spent per event by every process
doing the work (the server and, on PostgreSQL, its backends; the raw loop and its backend): on
a shared machine the CPU figures and their ratio move far less than the wall-clock ones.
With ``--rounds N`` the two alternate N times (fresh databases each round) and the medians are
printed, the ratio being the median of each round's own ratio: on a shared machine, a busy
neighbour then weighs on both sides alike.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import orjson

from _common import LIMITS, ROOT, event_batches
from spillway.ingest import judge
from spillway.secrets import SecretBox
from spillway.services.projects import Scope, create_key, create_project
from spillway.store.db import create_engine, migrate, now_ms

_RAW_SQL = (
    "INSERT INTO events (project_id, received_at, event_time, event_uuid, event_type, "
    "event_name, uid, payload) VALUES ({0}, {0}, {0}, {0}, {0}, {0}, {0}, {0})"
)
_RAW_COPY = (
    "COPY events (project_id, received_at, event_time, event_uuid, event_type, event_name, "
    "uid, payload) FROM STDIN (FORMAT BINARY)"
)
_RAW_PROJECT = (
    "INSERT INTO projects (id, app_id, name, external_id, created_at) "
    "VALUES (1, 'x', 'raw', 'x', 0)"
)
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    """Events/s (wall clock), and CPU seconds per event of every process that did the work:
    the latter barely moves when other jobs share the cores, the former does."""

    rate: float
    cpu_us: float


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _prepared(batches: list[list[dict[str, object]]]) -> list[list[tuple[object, ...]]]:
    """The rows ingest would store (judged exactly as the API judges them), per batch."""
    received = now_ms()
    return [
        [(1, received, *row) for row in judge(batch, received, LIMITS).rows] for batch in batches
    ]


def raw_floors(batches: list[list[dict[str, object]]], url: str) -> dict[str, Measured]:
    """Storing the judged rows straight into freshly migrated databases of the same schema, one
    transaction per batch: executemany, and on PostgreSQL COPY too (its cheapest way in)."""
    prepared = _prepared(batches)
    count = sum(len(rows) for rows in prepared)
    engine = create_engine(url)
    dialect = engine.dialect.name
    engine.dispose()
    if dialect != "postgresql":
        return {"executemany": _measured(count, *_raw_sqlite(prepared, url))}
    copy_url = url + "_copy"
    engine = create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
        admin.exec_driver_sql(f"CREATE DATABASE {copy_url.rsplit('/', 1)[1]}")
    engine.dispose()
    return {
        "executemany": _measured(count, *_raw_postgres(prepared, url, copy=False)),
        "COPY": _measured(count, *_raw_postgres(prepared, copy_url, copy=True)),
    }


def _measured(count: int, seconds: float, cpu: float) -> Measured:
    return Measured(count / seconds, cpu / count * 1e6)


def _raw_postgres(
    prepared: list[list[tuple[object, ...]]], url: str, *, copy: bool
) -> tuple[float, float]:
    """(seconds, CPU seconds of this process and its backend) to store the rows with psycopg,
    one executemany (pipelined) or one binary COPY per transaction."""
    import psycopg

    engine = create_engine(url)
    migrate(engine)
    engine.dispose()
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        conn.execute(_RAW_PROJECT)
        backend = conn.info.backend_pid
        conn.commit()
        sql = _RAW_SQL.format("%s")
        cpu = time.process_time() + _cpu_seconds(backend)
        started = time.perf_counter()
        with conn.cursor() as cursor:
            for rows in prepared:
                if copy:
                    with cursor.copy(_RAW_COPY) as writer:
                        writer.set_types(_copy_types(rows[0]))
                        for row in rows:
                            writer.write_row(row)
                else:
                    cursor.executemany(sql, rows)
                conn.commit()
        elapsed = time.perf_counter() - started
        return elapsed, time.process_time() + _cpu_seconds(backend) - cpu


def _copy_types(row: tuple[object, ...]) -> list[str]:
    """PostgreSQL types of the events columns for a binary COPY: the id is bytes or text,
    whichever schema this checkout has."""
    uuid = "bytea" if isinstance(row[3], bytes) else "text"
    return ["int8", "int8", "int8", uuid, "text", "text", "text", "bytea"]


def _raw_sqlite(prepared: list[list[tuple[object, ...]]], url: str) -> tuple[float, float]:
    """(seconds, CPU seconds) to store the rows with sqlite3: executemany per BEGIN IMMEDIATE."""
    migrate(create_engine(url))
    # The same connection settings (WAL, cache, checkpoints) as the service uses.
    conn = create_engine(url).raw_connection().driver_connection
    assert isinstance(conn, sqlite3.Connection)
    conn.execute(_RAW_PROJECT)
    sql = _RAW_SQL.format("?")
    cpu = time.process_time()
    started = time.perf_counter()
    for rows in prepared:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, time.process_time() - cpu


def http_rate(
    batches: list[list[dict[str, object]]], workdir: Path, clients: int, database_url: str
) -> Measured:
    """Events/s through POST /api/v1/events on a real server process; CPU per event of the
    server process and, on PostgreSQL, of its backends."""
    from tests.servers import free_port, wait_for_port  # importable once _common set the path

    data_dir = workdir / "server"
    env = {**os.environ, "SPILLWAY_DATA_DIR": str(data_dir), "SPILLWAY_LOG_LEVEL": "WARNING"}
    env["SPILLWAY_DATABASE_URL"] = database_url
    os.environ["SPILLWAY_DATA_DIR"] = str(data_dir)
    os.environ["SPILLWAY_DATABASE_URL"] = database_url
    from spillway.settings import Settings

    settings = Settings()
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    create_project(engine, "bench")
    token = create_key(engine, SecretBox(settings.service_key()), "bench", Scope.WRITE).token
    engine.dispose()
    bodies = [orjson.dumps(batch) for batch in batches]
    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/spillway"), "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        accepted = [0] * clients
        failures: list[str] = []

        def client(number: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            for body in bodies[number::clients]:
                conn.request("POST", "/api/v1/events", body, headers)
                response = conn.getresponse()
                answer = response.read()
                if response.status != 200:
                    failures.append(f"{response.status}: {answer[:200]!r}")
                    return
                accepted[number] += orjson.loads(answer)["accepted"]
            conn.close()

        # Warm up on a throwaway batch so imports and the first connection don't count.
        warm = http.client.HTTPConnection("127.0.0.1", port)
        warm.request("GET", "/healthz")
        warm.getresponse().read()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        cpu = _cpu_seconds(server.pid)
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise SystemExit(f"ingest failed: {failures[0]}")
        expected = sum(len(batch) for batch in batches)
        if sum(accepted) != expected:
            raise SystemExit(f"only {sum(accepted)} of {expected} events accepted")
        # The server's backends were all started for this run (the pool opens lazily).
        cpu = _cpu_seconds(server.pid) - cpu + sum(map(_cpu_seconds, _backends(database_url)))
        return Measured(expected / elapsed, cpu / expected * 1e6)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _backends(url: str) -> list[int]:
    """PostgreSQL server processes connected to the database of ``url`` (none for SQLite)."""
    if not url.startswith("postgresql"):
        return []
    engine = create_engine(url)
    with engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalars()
        found = [int(pid) for pid in pids]
    engine.dispose()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the two")
    parser.add_argument("--dir", default=None, help="where the databases go (default: /tmp)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    batches = event_batches(args.events, args.batch, seed=7)
    apis: list[Measured] = []
    raws: dict[str, list[Measured]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="spillway-bench-", dir=args.dir) as tmp,
        _cluster(args.database) as base,
    ):
        url_of = _databases(base, Path(tmp))
        for number in range(args.rounds):
            workdir = Path(tmp) / f"round{number}"
            workdir.mkdir()
            apis.append(http_rate(batches, workdir, args.clients, url_of(f"api{number}")))
            for how, measured in raw_floors(batches, url_of(f"raw{number}")).items():
                raws.setdefault(how, []).append(measured)
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    name = "SQLite" if args.database == "sqlite" else "PostgreSQL"
    print(
        f"events: {args.events:,} in batches of {args.batch}, {args.clients} client threads{rounds}"
        f", {name}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'':<30}{'events/s':>12}{'CPU us/event':>14}")
    _line("HTTP API ingest", apis)
    for how, measured in raws.items():
        _line(f"raw {name} {how}", measured)
    for how, measured in raws.items():
        pairs = list(zip(apis, measured, strict=True))
        wall = statistics.median(a.rate / r.rate for a, r in pairs)
        cpu = statistics.median(r.cpu_us / a.cpu_us for a, r in pairs)
        print(f"ratio API / raw {how:<14}{wall:>12.2f}{cpu:>14.2f}   (target >= 0.60)")


def _line(label: str, measured: list[Measured]) -> None:
    rate = statistics.median(m.rate for m in measured)
    cpu = statistics.median(m.cpu_us for m in measured)
    print(f"{label:<30}{rate:>12,.0f}{cpu:>14.1f}")


def _cluster(database: str) -> AbstractContextManager[str | None]:
    """A throwaway PostgreSQL cluster's URL for ``postgres``; nothing for SQLite."""
    if database == "sqlite":
        return nullcontext()
    from tests.servers import postgres  # importable once _common set the path

    return postgres()


def _databases(base: str | None, tmp: Path) -> Callable[[str], str]:
    """A fresh database URL per name: a SQLite file, or a new database in the cluster."""
    if base is None:
        return lambda name: f"sqlite:///{tmp / (name + '.db')}"

    def create(name: str) -> str:
        admin = create_engine(base)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"CREATE DATABASE bench_{name}")
        admin.dispose()
        return base.rsplit("/", 1)[0] + f"/bench_{name}"

    return create


if __name__ == "__main__":
    main()
