"""Ingest throughput through the HTTP API, next to a raw SQLite insert of the same rows.

Run: .venv/bin/python benchmarks/ingest.py [--events 200000] [--batch 500] [--clients 4]
                                           [--rounds 1] [--dir /dev/shm]

The server is one `spillway serve` process (one core for Python); the client sends
pre-serialised batches from threads so it stays out of the way. The baseline inserts the very
same normalised rows straight into a fresh, identically migrated SQLite file with executemany,
one transaction per batch: the floor cost of storing those rows, with no HTTP, parsing or checks.
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
from pathlib import Path

import orjson

from _common import LIMITS, ROOT, event_batches
from spillway.ingest import judge
from spillway.secrets import SecretBox
from spillway.services.projects import Scope, create_key, create_project
from spillway.store.db import create_engine, migrate, now_ms


def raw_insert_rate(batches: list[list[dict[str, object]]], workdir: Path) -> float:
    """Rows/s for executemany of the judged rows into a freshly migrated SQLite file."""
    url = f"sqlite:///{workdir / 'raw.db'}"
    migrate(create_engine(url))
    received = now_ms()
    prepared = [
        [(1, received, *row) for row in judge(batch, received, LIMITS).rows] for batch in batches
    ]
    # The same connection settings (WAL, cache, checkpoints) as the service uses.
    conn = create_engine(url).raw_connection().driver_connection
    assert isinstance(conn, sqlite3.Connection)
    conn.execute(
        "INSERT INTO projects (id, app_id, name, external_id, created_at) "
        "VALUES (1, 'x', 'raw', 'x', 0)"
    )
    sql = (
        "INSERT INTO events (project_id, received_at, event_time, event_uuid, event_type, "
        "event_name, uid, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    count = sum(len(rows) for rows in prepared)
    started = time.perf_counter()
    for rows in prepared:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def http_rate(batches: list[list[dict[str, object]]], workdir: Path, clients: int) -> float:
    """Events/s through POST /api/v1/events on a real server process."""
    from tests.servers import free_port, wait_for_port  # importable once _common set the path

    data_dir = workdir / "server"
    env = {**os.environ, "SPILLWAY_DATA_DIR": str(data_dir), "SPILLWAY_LOG_LEVEL": "WARNING"}
    os.environ["SPILLWAY_DATA_DIR"] = str(data_dir)
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
        return expected / elapsed
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the two")
    parser.add_argument("--dir", default=None, help="where the databases go (default: /tmp)")
    args = parser.parse_args()
    batches = event_batches(args.events, args.batch, seed=7)
    apis, raws = [], []
    with tempfile.TemporaryDirectory(prefix="spillway-bench-", dir=args.dir) as tmp:
        for number in range(args.rounds):
            workdir = Path(tmp) / f"round{number}"
            workdir.mkdir()
            apis.append(http_rate(batches, workdir, args.clients))
            raws.append(raw_insert_rate(batches, workdir))
    api, raw = statistics.median(apis), statistics.median(raws)
    ratio = statistics.median(a / r for a, r in zip(apis, raws, strict=True))
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"events: {args.events:,} in batches of {args.batch}, {args.clients} client threads{rounds}"
    )
    print(f"HTTP API ingest : {api:>12,.0f} events/s   (target >= 100,000)")
    print(f"raw SQLite insert: {raw:>12,.0f} events/s")
    print(f"ratio API / raw  : {ratio:>12.2f}          (target >= 0.40)")


if __name__ == "__main__":
    main()
