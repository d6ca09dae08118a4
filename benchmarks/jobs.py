"""Export and import jobs: endpoints to jsonl.gz on S3 (moto) and back, next to DuckDB and a raw
insert.

Run: .venv/bin/python benchmarks/jobs.py [--endpoints 1000000] [--dir /dev/shm] [--quick]

One SQLite store holds the endpoints of one project; every figure comes from the same run:

- setup, timed as the import's baseline: synthetic endpoints (ids, user ids over 40 % as many
  users as endpoints, channel and address, attributes, user attributes, demographic, location,
  metrics) inserted into the ``endpoints`` table with the sqlite3 module's ``executemany``,
  10,000 rows a transaction, the JSON columns as the store keeps them. Only the inserts are
  timed, not generating the rows. Then, untimed, each endpoint's export line parts are
  stored as the store's write path stores them (``store.endpoints.fill_missing_lines``);
- Spillway export: ``services.jobs.create_export`` of ``endpoints`` (jsonl, gzip) to a stored
  S3 destination on a local ``moto_server`` (IAM auth on), then the job runner serving it:
  planning (the snapshot in ``job_rows``), every piece, the manifest. Timed end to end in a
  fresh child process, which reports its peak RSS (VmHWM) and CPU time;
- DuckDB: ``COPY (SELECT <the same fields, Pinpoint's names and nesting>) TO 'x.json.gz'``.
  DuckDB's sqlite extension cannot be downloaded here, so the endpoints are loaded into a
  DuckDB table first (untimed) and only the COPY is timed;
- Spillway import: ``services.jobs.create_import`` of the export job's own pieces into a fresh
  project, served by the runner (read, parse, check, merge, store), in a fresh child process.

The export's pieces are checked (manifest counts, line counts, record shape), and the import's
result against the source project (every endpoint, a sample compared field by field).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from _common import MIB, peak_rss_mib, table
from spillway.model import Actor
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import jobs as job_service
from spillway.services.projects import create_project
from spillway.store.db import create_engine, migrate

if TYPE_CHECKING:
    from tests.server_moto import Moto

BOX_KEY = b"b" * 48
BUCKET = "spillway-bench-jobs"
INSERT_BATCH = 10_000
PIECE = 100_000
T0_MS = 1_795_392_000_000  # 2026-11-23 00:00:00 UTC
FIELDS = [
    "Id",
    "ChannelType",
    "Address",
    "EndpointStatus",
    "OptOut",
    "EffectiveDate",
    "Attributes",
    "Demographic",
    "Location",
    "Metrics",
    "User",
    "ApplicationId",
    "CreationDate",
]

# --- synthetic endpoints ---------------------------------------------------------------

_MAKES = [("Apple", "iPhone15,2", "ios", "17.1"), ("Google", "Pixel 8", "android", "14")]
_MAKES += [("Samsung", "SM-S911B", "android", "13"), ("Apple", "iPhone14,7", "ios", "16.6")]
_PLACES = [
    ("Berlin", "DE", 52.52, 13.405, "10115", "BE", "Europe/Berlin", "de-DE"),
    ("Lyon", "FR", 45.764, 4.8357, "69001", "ARA", "Europe/Paris", "fr-FR"),
    ("Austin", "US", 30.2672, -97.7431, "73301", "TX", "America/Chicago", "en-US"),
    ("Osaka", "JP", 34.6937, 135.5023, "530-0001", "27", "Asia/Tokyo", "ja-JP"),
    ("Recife", "BR", -8.0476, -34.877, "50000-000", "PE", "America/Recife", "pt-BR"),
]
_PLANS = ["free", "plus", "pro", "team"]
_INTERESTS = ["sport", "music", "travel", "food", "news", "games", "film", "books"]
_COLUMNS = (
    "project_id, endpoint_id, user_id, channel_type, address, endpoint_status, opt_out, "
    "attributes, user_attributes, demographic, location, metrics, effective_date, "
    "created_at, updated_at"
)


def endpoint_rows(project_id: int, start: int, count: int, users: int) -> list[tuple[Any, ...]]:
    """``count`` endpoints from number ``start``: one in three is an email address, the rest
    push tokens; a user owns 2.5 endpoints on average. Deterministic for a given range."""
    rng = random.Random(start)
    dumps = json.dumps  # the store keeps JSON columns as json.dumps text (SQLAlchemy's JSON)
    rows = []
    for n in range(start, start + count):
        user = rng.randrange(users)
        make, model, platform, version = _MAKES[n % len(_MAKES)]
        city, country, lat, lon, postal, region, zone, locale = _PLACES[rng.randrange(5)]
        email = n % 3 == 0
        channel = "EMAIL" if email else ("APNS" if platform == "ios" else "GCM")
        address = f"user{user}.{n}@example.com" if email else f"{n:016x}{user:08x}" * 4
        attributes = {
            "plan": [_PLANS[user % 4]],
            "interests": rng.sample(_INTERESTS, 2),
        }
        user_attributes = {"tier": [str(user % 5)], "first_name": [f"name{user % 997}"]}
        demographic = {
            "app_version": f"3.{n % 7}.0",
            "locale": locale,
            "make": make,
            "model": model,
            "platform": platform,
            "platform_version": version,
            "timezone": zone,
        }
        location = {
            "city": city,
            "country": country,
            "latitude": lat,
            "longitude": lon,
            "postal_code": postal,
            "region": region,
        }
        metrics = {"sessions": float(n % 50), "purchases": float(n % 3)}
        created = T0_MS - rng.randrange(10**9)
        rows.append(
            (
                project_id,
                f"ep-{n:09d}",
                f"user-{user:07d}",
                channel,
                address,
                "ACTIVE" if n % 17 else "INACTIVE",
                "NONE" if n % 23 else "ALL",
                dumps(attributes),
                dumps(user_attributes),
                dumps(demographic),
                dumps(location),
                dumps(metrics),
                f"2026-11-{1 + n % 28:02d}T00:00:00.000Z",
                created,
                created + 1000,
            )
        )
    return rows


def raw_insert(db_path: Path, project_id: int, endpoints: int) -> float:
    """The import's baseline: batched ``executemany`` into ``endpoints``; the seconds spent in
    inserts and commits (generating the rows is not counted)."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    marks = ", ".join("?" * 15)
    sql = f"INSERT INTO endpoints ({_COLUMNS}) VALUES ({marks})"
    spent = 0.0
    users = max(1, endpoints * 2 // 5)
    for start in range(0, endpoints, INSERT_BATCH):
        rows = endpoint_rows(project_id, start, min(INSERT_BATCH, endpoints - start), users)
        started = time.perf_counter()
        with conn:
            conn.executemany(sql, rows)
        spent += time.perf_counter() - started
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return spent


def fill_lines(engine: Any, project_id: int) -> None:
    """Store each endpoint's export line parts, as the store's write path does for an endpoint
    it writes (and migration 0012 for endpoints stored before): the raw insert bypassed it.
    Untimed, like the setup of the other figures."""
    from spillway.engine.jobs.shapes import pinpoint_parts
    from spillway.store import endpoints as endpoint_store
    from spillway.store.db import write

    with write(engine) as conn:
        endpoint_store.fill_missing_lines(conn, project_id, pinpoint_parts, batch=10_000)


# --- Spillway, in a child process per phase --------------------------------------------


def child(spec_json: str) -> None:
    """One phase in this fresh process: an export job or an import job, served to its end."""
    spec = json.loads(spec_json)
    engine = create_engine(spec["db_url"])
    actor = Actor("bench", spec["project_id"])
    target = job_service.Target(destination_id=spec["destination_id"])
    runner = job_service.runner(engine, SecretBox(BOX_KEY))
    idle = peak_rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    if spec["phase"] == "export":
        export = job_service.ExportJobSpec(
            what="endpoints", target=target, max_records_per_piece=spec["piece"]
        )
        job = job_service.create_export(engine, actor, export)
    else:
        job = job_service.create_import(
            engine, actor, job_service.ImportJobSpec(target=target, prefix=spec["prefix"])
        )
    outcome = runner.serve_one(job.id)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    found, pieces = job_service.get(engine, spec["project_id"], job.id, job.type)
    result = {
        "seconds": seconds,
        "cpu": cpu,
        "outcome": outcome,
        "job_id": job.id,
        "processed": found.total_processed,
        "failures": found.failures[:5],
        "keys": [p.key for p in pieces],
        "bytes": sum(p.bytes for p in pieces),
        "idle_mib": idle,
        "peak_mib": peak_rss_mib(),
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result))


def run_child(spec: dict[str, Any], profile: str | None) -> dict[str, Any]:
    from tests.servers import allowed_endpoints  # importable once _common set the path

    env = {**os.environ, "SPILLWAY_ALLOWED_ENDPOINTS": allowed_endpoints()}
    command = [sys.executable]
    if profile:
        command += ["-m", "cProfile", "-o", profile]
    command += [__file__, "--child", json.dumps(spec)]
    answer = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if answer.returncode != 0:
        raise SystemExit(f"{spec['phase']} subprocess failed:\n{answer.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    if result["outcome"] != "COMPLETED":
        raise SystemExit(f"{spec['phase']} job ended {result['outcome']}: {result['failures']}")
    return result


def setup_destination(engine: Any, actor: Actor, moto: Moto, folder: str) -> str:
    config = {"bucket": BUCKET, "folder": folder, "endpoint_url": moto.endpoint, "sse": "none"}
    credentials = {
        "mode": "access_key",
        "access_key_id": moto.admin_key,
        "secret_access_key": moto.admin_secret,
    }
    body = {"name": "moto", "kind": "s3", "config": config, "credentials": credentials}
    row, _ = destination_service.create(engine, SecretBox(BOX_KEY), actor, {**body, "force": True})
    return row.id


def verify_export(moto: Moto, result: dict[str, Any], expected: int) -> None:
    """The manifest's and the pieces' counts, and the first record's shape."""
    from isal import igzip

    s3: Any = moto.client("s3")
    keys = result["keys"]
    manifest_key = keys[0].rsplit("/", 1)[0] + "/manifest.json"
    manifest = orjson.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    lines, first = 0, b""
    for key in keys:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        with igzip.GzipFile(fileobj=body, mode="rb") as unzipped:
            while block := unzipped.read(8 * MIB):
                first = first or block.split(b"\n", 1)[0]
                lines += block.count(b"\n")
    counts = (manifest["records"], lines, result["processed"])
    if counts != (expected,) * 3:
        raise SystemExit(f"export incomplete: manifest, lines, job = {counts}, not {expected:,}")
    record = orjson.loads(first)
    if sorted(record) != sorted(FIELDS) or "UserId" not in record["User"]:
        raise SystemExit(f"unexpected record shape: {first[:400]!r}")


def verify_import(db_path: Path, source: int, copy: int, expected: int) -> None:
    """Every endpoint arrived; a sample has the same fields (JSON compared parsed)."""
    conn = sqlite3.connect(db_path)
    try:
        count = conn.execute("SELECT count(*) FROM endpoints WHERE project_id = ?", (copy,))
        if (found := count.fetchone()[0]) != expected:
            raise SystemExit(f"import stored {found:,} endpoints, not {expected:,}")
        columns = (
            "endpoint_id, user_id, channel_type, address, endpoint_status, opt_out, "
            "attributes, user_attributes, demographic, location, metrics, effective_date"
        )
        sample = f"SELECT {columns} FROM endpoints WHERE project_id = ? AND rowid % 997 = 0"
        wanted = {row[0]: row for row in conn.execute(sample, (source,))}
        query = f"SELECT {columns} FROM endpoints WHERE project_id = ? AND endpoint_id = ?"
        for endpoint_id, row in wanted.items():
            got = conn.execute(query, (copy, endpoint_id)).fetchone()
            parse = [*row[:6], *(json.loads(v) for v in row[6:11]), row[11]]
            if got is None or parse != [*got[:6], *(json.loads(v) for v in got[6:11]), got[11]]:
                raise SystemExit(f"imported {endpoint_id} differs: {row} / {got}")
    finally:
        conn.close()


# --- DuckDB ----------------------------------------------------------------------------


class DuckDb:
    """The endpoints in a DuckDB table (loaded untimed), and a timed COPY to json.gz with the
    same fields, names and nesting as the export job's records."""

    def __init__(self, workdir: Path, db_path: Path, project_id: int) -> None:
        import duckdb
        import pyarrow as pa

        self.out = workdir / "duckdb.json.gz"
        self.con = duckdb.connect(str(workdir / "bench.duckdb"))
        self.con.execute(
            "CREATE TABLE endpoints (endpoint_id VARCHAR, user_id VARCHAR, channel_type VARCHAR,"
            " address VARCHAR, endpoint_status VARCHAR, opt_out VARCHAR, attributes JSON,"
            " user_attributes JSON, demographic JSON, location JSON, metrics JSON,"
            " effective_date VARCHAR, created_at BIGINT)"
        )
        names = [
            "endpoint_id", "user_id", "channel_type", "address", "endpoint_status", "opt_out",
            "attributes", "user_attributes", "demographic", "location", "metrics",
            "effective_date", "created_at",
        ]  # fmt: skip
        source = sqlite3.connect(db_path)
        cursor = source.execute(
            f"SELECT {', '.join(names)} FROM endpoints WHERE project_id = ? ORDER BY endpoint_id",
            (project_id,),
        )
        while rows := cursor.fetchmany(50_000):
            chunk = pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})
            self.con.register("chunk", chunk)
            self.con.execute("INSERT INTO endpoints SELECT * FROM chunk")
            self.con.unregister("chunk")
        source.close()
        self.con.execute("CHECKPOINT")
        self.threads = self.con.execute("SELECT current_setting('threads')").fetchone()

    def run(self, application_id: str) -> dict[str, Any]:
        demographic = ", ".join(
            f"'{pascal}': demographic->>'$.{snake}'"
            for snake, pascal in (
                ("app_version", "AppVersion"),
                ("locale", "Locale"),
                ("make", "Make"),
                ("model", "Model"),
                ("platform", "Platform"),
                ("platform_version", "PlatformVersion"),
                ("timezone", "Timezone"),
            )
        )
        location = (
            "'City': location->>'$.city', 'Country': location->>'$.country', "
            "'Latitude': CAST(location->>'$.latitude' AS DOUBLE), "
            "'Longitude': CAST(location->>'$.longitude' AS DOUBLE), "
            "'PostalCode': location->>'$.postal_code', 'Region': location->>'$.region'"
        )
        sql = f"""
            COPY (
                SELECT endpoint_id AS Id, channel_type AS ChannelType, address AS Address,
                       endpoint_status AS EndpointStatus, opt_out AS OptOut,
                       effective_date AS EffectiveDate, attributes AS Attributes,
                       {{{demographic}}} AS Demographic, {{{location}}} AS Location,
                       metrics AS Metrics,
                       {{'UserAttributes': user_attributes, 'UserId': user_id}} AS "User",
                       ? AS ApplicationId,
                       strftime(make_timestamp(created_at * 1000), '%Y-%m-%dT%H:%M:%S.%gZ')
                           AS CreationDate
                FROM endpoints ORDER BY endpoint_id
            ) TO '{self.out}' (FORMAT JSON, COMPRESSION GZIP)
        """
        started, cpu = time.perf_counter(), time.process_time()
        self.con.execute(sql, [application_id])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        from isal import igzip

        with igzip.open(self.out, "rb") as unzipped:
            first = unzipped.readline()
            lines = 1
            while block := unzipped.read(8 * MIB):
                lines += block.count(b"\n")
        record = orjson.loads(first)
        if sorted(record) != sorted(FIELDS):
            raise SystemExit(f"DuckDB wrote another shape: {first[:400]!r}")
        size = self.out.stat().st_size
        self.out.unlink()
        return {"seconds": seconds, "cpu": cpu, "count": lines, "bytes": size}


# --- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 endpoints, to try things")
    parser.add_argument("--piece", type=int, default=PIECE, help="max_records_per_piece")
    parser.add_argument("--dir", default=None, help="where the databases go (default: $TMPDIR)")
    parser.add_argument("--profile", help="write cProfile stats of the phases to PREFIX.*")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from tests.server_moto import moto_server  # importable once _common set the path

    count = 50_000 if args.quick else args.endpoints
    with tempfile.TemporaryDirectory(prefix="spillway-bench-jobs-", dir=args.dir) as tmp:
        workdir = Path(tmp)
        db_path = workdir / "spillway.db"
        db_url = f"sqlite:///{db_path}"
        engine = create_engine(db_url)
        migrate(engine)
        project = create_project(engine, "bench")
        fresh = create_project(engine, "bench-import")
        raw_seconds = raw_insert(db_path, project.id, count)
        print(f"setup: {count:,} endpoints inserted raw in {raw_seconds:.1f} s", flush=True)
        started = time.perf_counter()
        fill_lines(engine, project.id)
        print(f"setup: export lines stored in {time.perf_counter() - started:.1f} s (untimed)")
        started = time.perf_counter()
        duck = DuckDb(workdir, db_path, project.id)
        print(f"setup: DuckDB table loaded in {time.perf_counter() - started:.1f} s (untimed)")
        with moto_server() as moto:
            s3: Any = moto.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            out_dest = setup_destination(engine, Actor("bench", project.id), moto, "out")
            in_dest = setup_destination(engine, Actor("bench", fresh.id), moto, "out")
            base = {"db_url": db_url, "piece": args.piece}
            export = run_child(
                {**base, "phase": "export", "project_id": project.id, "destination_id": out_dest},
                args.profile and f"{args.profile}.export",
            )
            verify_export(moto, export, count)
            print(f"export: {count / export['seconds']:,.0f} endpoints/s", flush=True)
            duckdb = duck.run(project.app_id)
            if duckdb["count"] != count:
                raise SystemExit(f"DuckDB wrote {duckdb['count']:,} of {count:,} records")
            imported = run_child(
                {
                    **base,
                    "phase": "import",
                    "project_id": fresh.id,
                    "destination_id": in_dest,
                    "prefix": export["job_id"],
                },
                args.profile and f"{args.profile}.import",
            )
            if imported["processed"] != count:
                raise SystemExit(f"import processed {imported['processed']:,} of {count:,}")
            verify_import(db_path, project.id, fresh.id, count)
        report(count, export, duckdb, imported, raw_seconds, duck.threads and duck.threads[0])
        duck.con.close()
        engine.dispose()


def report(
    count: int,
    export: dict[str, Any],
    duckdb: dict[str, Any],
    imported: dict[str, Any],
    raw_seconds: float,
    threads: Any,
) -> None:
    def row(name: str, seconds: float, cpu: float | None, size: int | None) -> tuple[str, ...]:
        return (
            name,
            f"{count / seconds:,.0f}",
            f"{seconds:.2f}",
            "" if cpu is None else f"{cpu:.2f}",
            "" if size is None else f"{size / MIB:,.0f}",
        )

    def target(name: str, value: float, shown: str, op: str, goal: float) -> tuple[str, ...]:
        met = value >= goal if op == ">=" else value < goal
        return (
            name,
            shown.format(value),
            f"{op} {shown.format(goal)}",
            "met" if met else "NOT met",
        )

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    pieces = len(export["keys"])
    print(
        f"\n{count:,} endpoints, jsonl + gzip, {pieces} piece(s); "
        f"{os.cpu_count()} cores, load average now {load}"
    )
    print(
        table(
            [
                ("", "endpoints/s", "wall s", "CPU s [1]", "MiB out"),
                row(
                    "Spillway export job to S3 (moto)",
                    export["seconds"],
                    export["cpu"],
                    export["bytes"],
                ),
                row("DuckDB COPY json.gz [2]", duckdb["seconds"], duckdb["cpu"], duckdb["bytes"]),
                row("Spillway import job from S3", imported["seconds"], imported["cpu"], None),
                row("raw executemany insert", raw_seconds, None, None),
            ]
        )
    )
    print()
    to_duck = duckdb["seconds"] / export["seconds"]
    to_raw = raw_seconds / imported["seconds"]
    print(
        table(
            [
                ("", "measured", "target", ""),
                target("ratio export / DuckDB", to_duck, "{:.2f}", ">=", 3.0),
                target("peak RSS of the export, MiB [3]", export["peak_mib"], "{:,.0f}", "<", 300),
                ("ratio import / raw insert", f"{to_raw:.2f}", "", ""),
                ("peak RSS of the import, MiB [3]", f"{imported['peak_mib']:,.0f}", "", ""),
            ]
        )
    )
    print(
        "\n[1] CPU time of the measuring process (moto runs in a process apart, not included)."
        f"\n[2] DuckDB with {threads} threads; the rows were loaded into a DuckDB table first"
        "\n    (untimed), only the COPY is timed."
        f"\n[3] VmHWM of the job's process; before the job: export {export['idle_mib']:,.0f} MiB,"
        f" import {imported['idle_mib']:,.0f} MiB (interpreter and imports)."
    )


if __name__ == "__main__":
    main()
