"""Export throughput: a jsonl+gzip run to S3 (moto), next to raw read+gzip and DuckDB.

Run: .venv/bin/python benchmarks/export.py [--events 1000000] [--repeat 3] [--dir /dev/shm]
     [--max-file-mb 64] [--baseline-src /tmp/before/src]

One SQLite store holds the events; every figure comes from the same run on the same rows, and
the three measurements take turns, round after round, so a busy neighbour slows all of them:

- Spillway: `export_service.run_now` + `Scheduler.tick()`, the worker's real path (fix the range,
  count, read, frame, gzip, hash, multipart upload to a local `moto_server`, manifest, cursor
  commit), in a fresh child process that reports its peak RSS (VmHWM) and CPU time. That
  process first delivers a small run of another project, untimed, as a worker that has run
  before would have (modules loaded, statements compiled); the timed run still makes its S3
  client anew, as every run does. The objects are checked afterwards: manifest count,
  decompressed line count, record shape, and the same bytes (sha256) in every round;
- raw: the same rows (`seq`, `payload`, same order) read with the sqlite3 module and gzipped,
  joined by newlines, with the encoder's own compressor (isal, level 1), and nothing else;
- baseline (with `--baseline-src`): the same Spillway run by another copy of the code (e.g.
  `git archive HEAD src | tar -x -C /tmp/before`), on its own export of the same range, taking
  turns with this one (which goes first alternates by round); its files must hold the same bytes
  under the same names. The ratio pairs the two runs of each round;
- DuckDB: `COPY (SELECT <seed-001 record>) TO 'x.json.gz' (FORMAT JSON, COMPRESSION GZIP)`.
  DuckDB's sqlite extension would have to be downloaded, which is impossible offline here, so
  the payloads are first loaded into a DuckDB table (untimed) and only the COPY is timed.

Setup (untimed) stores demo events (`spillway demo`'s generator, judged as the ingest API
judges them) with the store's own insert, in batches of 5,000.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from _common import MIB, judged_rows, peak_rss_mib, table
from spillway.api import models as api_models
from spillway.engine.encode import compressor, run_meta
from spillway.engine.scheduler import Scheduler
from spillway.model import Actor, Run
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from spillway.store import runs as q
from spillway.store.catalog import export_by_id
from spillway.store.db import create_engine, migrate
from spillway.store.events import EventRow, insert_events

if TYPE_CHECKING:
    from tests.server_moto import Moto

BATCH = 5_000
T0 = 1_795_392_000  # 2026-11-23 00:00:00 UTC; the fake clock stays inside the first window
NOW = T0 + 200
RECEIVED_MS = (T0 + 100) * 1000
BOX_KEY = b"b" * 48
BUCKET = "spillway-bench"
FIELDS = ["app_name", "export_hour", "db_name", "event", "export_day"]


class Clock:
    """The scheduler's clock, fixed: no scheduled window closes during the benchmark."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- setup (untimed) -------------------------------------------------------------------


def _batch(number: int) -> list[EventRow]:
    return judged_rows(BATCH, seed=number, received_ms=RECEIVED_MS)


def store_events(engine: Any, project_id: int, count: int, first_batch: int = 0) -> float:
    """Store ``count`` demo events (a multiple of BATCH); returns the seconds it took.

    A worker process generates and judges while this one inserts; a short queue of batches
    in flight keeps memory small.
    """
    started = time.perf_counter()
    with multiprocessing.Pool(1) as pool:
        pending: deque[Any] = deque()
        for number in range(first_batch, first_batch + count // BATCH):
            pending.append(pool.apply_async(_batch, (number,)))
            if len(pending) > 3:
                _insert(engine, project_id, pending.popleft().get())
        while pending:
            _insert(engine, project_id, pending.popleft().get())
    with engine.connect() as conn:  # reads come from the database file, as after a long day
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


def _insert(engine: Any, project_id: int, rows: list[EventRow]) -> None:
    if insert_events(engine, project_id, RECEIVED_MS, rows):
        raise SystemExit("generated uuids collided; pick other seeds")


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


def make_export(engine: Any, actor: Actor, destination: str, name: str, limit: int) -> str:
    body = api_models.ExportIn(
        name=name,
        destination_id=destination,
        format="jsonl",
        compression="gzip",
        max_file_bytes=limit,
    )
    return str(export_service.create(engine, actor, body, now=T0 * 1000).id)


# --- Spillway: one run in a fresh process -----------------------------------------------


def child(spec: str) -> None:
    """Subprocess: warm up, then deliver one manual run; print timing and peak RSS as JSON."""
    args = json.loads(spec)
    engine = create_engine(args["db_url"])
    deliver(engine, args["warm_up_id"])
    idle = peak_rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    run = deliver(engine, args["export_id"])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = peak_rss_mib()
    result = {
        "seconds": seconds,
        "cpu": cpu,
        "events": run.events,
        "bytes": run.bytes,
        "files": run.files,
        "seq": [run.seq_from, run.seq_to],
        "idle_mib": idle,
        "peak_mib": peak,
    }
    print(json.dumps(result))


def deliver(engine: Any, export_id: str) -> Run:
    """A manual run of the export, delivered by the scheduler as a worker does: the run row."""
    with engine.connect() as conn:
        export = export_by_id(conn, export_id)
    assert export is not None
    actor = Actor("bench", export.project_id)
    run_id = export_service.run_now(engine, actor, export_id, now=NOW * 1000)
    done = Scheduler(engine, SecretBox(BOX_KEY), clock=Clock(NOW)).tick()
    with engine.connect() as conn:
        run = q.get_run(conn, run_id)
    if done != {"runs": 1, "failed": 0} or run is None or run.status != "succeeded":
        raise SystemExit(f"export run failed: {done} {run and run.error}")
    return run


def spillway_run(
    db_url: str, export_id: str, warm_up_id: str, src: str | None = None
) -> dict[str, Any]:
    """One run in a fresh process; ``src``: another copy of the code's ``src`` to run instead."""
    from tests.servers import allowed_endpoints  # importable once _common set the path

    spec = json.dumps({"db_url": db_url, "export_id": export_id, "warm_up_id": warm_up_id})
    # The child reaches moto at a loopback port: listed, as an operator would list it.
    env = {**os.environ, "SPILLWAY_ALLOWED_ENDPOINTS": allowed_endpoints()}
    if src:  # ahead of the installed (editable) package
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    answer = subprocess.run(
        [sys.executable, __file__, "--child", spec],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if answer.returncode != 0:
        raise SystemExit(f"export subprocess failed:\n{answer.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    return result


def verify(moto: Moto, result: dict[str, Any], expected: int) -> str:
    """Check the run's objects against its manifest and ``expected``; the files' sha256s."""
    from isal import igzip

    s3: Any = moto.client("s3")
    files = result["files"]
    # One file is `<base>.json.gz`, split files are `<base>_<n>.json.gz`.
    base = re.sub(r"_\d+\.json\.gz$" if len(files) > 1 else r"\.json\.gz$", "", files[0])
    manifest = orjson.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{base}.manifest.json")["Body"].read()
    )
    lines, first = 0, b""
    for key in files:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        with igzip.GzipFile(fileobj=body, mode="rb") as unzipped:
            while block := unzipped.read(8 * MIB):
                first = first or block.split(b"\n", 1)[0]
                lines += block.count(b"\n")
    record = orjson.loads(first)
    counts = (manifest["records"], lines, result["events"])
    if counts != (expected,) * 3:
        raise SystemExit(f"export incomplete: manifest, lines, run = {counts}, not {expected:,}")
    if list(record) != FIELDS or not isinstance(record["event"], dict):
        raise SystemExit(f"unexpected record shape: {first[:300]!r}")
    names = ",".join(Path(f["key"]).name for f in manifest["files"])
    return names + " " + ",".join(f["sha256"] for f in manifest["files"])


# --- baselines -------------------------------------------------------------------------


class _Counter:
    """A sink that only counts."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)


def _rows(db_path: Path, seq: tuple[int, int], size: int = 10_000) -> Iterator[list[Any]]:
    conn = sqlite3.connect(db_path)
    try:
        cursor = conn.execute(
            "SELECT seq, payload FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", seq
        )
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        conn.close()


def raw_run(db_path: Path, seq: tuple[int, int]) -> dict[str, Any]:
    """Read (seq, payload) in order and gzip the payloads joined by newlines, nothing else."""
    sink = _Counter()
    gzip = compressor("gzip", sink)  # the encoder's own: isal, level 1
    count = 0
    started, cpu = time.perf_counter(), time.process_time()
    for rows in _rows(db_path, seq):
        gzip.write(b"\n".join([row[1] for row in rows]))
        gzip.write(b"\n")
        count += len(rows)
    gzip.finish()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "events": count, "bytes": sink.size}


class DuckDb:
    """The rows in a DuckDB table (loaded untimed), and a timed COPY of them to json.gz."""

    def __init__(self, workdir: Path, db_path: Path, seq: tuple[int, int]) -> None:
        import duckdb
        import pyarrow as pa

        self.out = workdir / "duckdb.json.gz"
        self.con = duckdb.connect(str(workdir / "bench.duckdb"))
        self.con.execute("CREATE TABLE events (seq BIGINT, event JSON)")
        for rows in _rows(db_path, seq):
            chunk = pa.table(
                {
                    "seq": pa.array([row[0] for row in rows], pa.int64()),
                    "payload": pa.array([row[1] for row in rows], pa.binary()).cast(pa.string()),
                }
            )
            self.con.register("chunk", chunk)
            self.con.execute("INSERT INTO events SELECT seq, CAST(payload AS JSON) FROM chunk")
            self.con.unregister("chunk")
        self.con.execute("CHECKPOINT")
        self.threads = self.con.execute("SELECT current_setting('threads')").fetchone()

    def run(self, meta: dict[str, str]) -> dict[str, Any]:
        from isal import igzip

        sql = (
            "COPY (SELECT ? AS app_name, ? AS export_hour, ? AS db_name, event, ? AS export_day "
            f"FROM events ORDER BY seq) TO '{self.out}' (FORMAT JSON, COMPRESSION GZIP)"
        )
        params = [meta["app_name"], meta["export_hour"], meta["db_name"], meta["export_day"]]
        started, cpu = time.perf_counter(), time.process_time()
        self.con.execute(sql, params)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        with igzip.open(self.out, "rb") as unzipped:
            first = unzipped.readline()
            lines = 1
            while block := unzipped.read(8 * MIB):
                lines += block.count(b"\n")
        record = orjson.loads(first)
        if list(record) != FIELDS or not isinstance(record["event"], dict):
            raise SystemExit(f"DuckDB wrote another shape: {first[:300]!r}")
        size = self.out.stat().st_size
        self.out.unlink()
        return {"seconds": seconds, "cpu": cpu, "events": lines, "bytes": size}


# --- report ----------------------------------------------------------------------------


def report(events: int, files: int, rounds: list[dict[str, dict[str, Any]]], threads: Any) -> None:
    """The figures table and the targets table."""

    def rates(name: str) -> list[float]:
        return [r[name]["events"] / r[name]["seconds"] for r in rounds]

    def cells(name: str) -> tuple[str, ...]:
        values = rates(name)
        spread = f"{min(values):,.0f}-{max(values):,.0f}" if len(values) > 1 else ""
        seconds = statistics.median(r[name]["seconds"] for r in rounds)
        cpu = statistics.median(r[name]["cpu"] for r in rounds)
        mib = rounds[-1][name]["bytes"] / MIB
        median = statistics.median(values)
        return (f"{median:,.0f}", spread, f"{seconds:.2f}", f"{cpu:.2f}", f"{mib:,.0f}")

    def target(name: str, value: float, shown: str, op: str, goal: float) -> tuple[str, ...]:
        met = value >= goal if op == ">=" else value < goal
        verdict = "met" if met else "NOT met"
        return (name, shown.format(value), f"{op} {shown.format(goal)}", verdict)

    rate = statistics.median(rates("spillway"))
    # Ratios pair the measurements of one round (the same load on the machine).
    to_raw = statistics.median(r["raw"]["seconds"] / r["spillway"]["seconds"] for r in rounds)
    to_duck = statistics.median(r["duckdb"]["seconds"] / r["spillway"]["seconds"] for r in rounds)
    baseline = "baseline" in rounds[0]
    to_base = baseline and statistics.median(
        r["baseline"]["seconds"] / r["spillway"]["seconds"] for r in rounds
    )
    peak = max(r["spillway"]["peak_mib"] for r in rounds)
    idle = max(r["spillway"]["idle_mib"] for r in rounds)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{events:,} events, jsonl + gzip, {files} file(s) per run; {len(rounds)} round(s), "
        f"medians; {os.cpu_count()} cores, load average now {load}"
    )
    print(
        table(
            [
                ("", "events/s", "range", "wall s", "CPU s [1]", "MiB out"),
                ("Spillway export to S3 (moto)", *cells("spillway")),
                *([("baseline (--baseline-src)", *cells("baseline"))] if baseline else []),
                ("raw read + gzip (isal 1)", *cells("raw")),
                ("DuckDB COPY json.gz [2]", *cells("duckdb")),
            ]
        )
    )
    if baseline:
        to_raw_base = statistics.median(
            r["raw"]["seconds"] / r["baseline"]["seconds"] for r in rounds
        )
        print(
            f"\nbaseline / raw {to_raw_base:.2f}, Spillway / raw {to_raw:.2f}; Spillway is "
            f"{to_base:.3f}x the baseline's speed (median of the rounds' paired ratios: "
            + ", ".join(
                f"{r['baseline']['seconds'] / r['spillway']['seconds']:.3f}" for r in rounds
            )
            + "); CPU s, baseline / Spillway: "
            + ", ".join(f"{r['baseline']['cpu'] / r['spillway']['cpu']:.3f}" for r in rounds)
        )
    print()
    print(
        table(
            [
                ("", "measured", "target", ""),
                target("Spillway events/s", rate, "{:,.0f}", ">=", 500_000),
                target("ratio Spillway / raw", to_raw, "{:.2f}", ">=", 0.40),
                target("ratio Spillway / DuckDB", to_duck, "{:.2f}", ">=", 3.0),
                target("peak RSS of the export, MiB [3]", peak, "{:,.0f}", "<", 300),
            ]
        )
    )
    print(
        "\n[1] CPU time of the measuring process, all its threads (moto's, a process apart, not"
        "\n    included); less sensitive than wall time to other jobs on the machine."
        f"\n[2] DuckDB with {threads} threads. Its sqlite extension cannot be downloaded here, so"
        "\n    the rows were loaded into a DuckDB table first (untimed); only the COPY is timed."
        f"\n[3] VmHWM of the worker process, {idle:,.0f} MiB of it before the timed run"
        "\n    (interpreter, imports, the warm-up run)."
    )


# --- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="a multiple of 5,000")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the three measurements")
    parser.add_argument(
        "--max-file-mb",
        type=int,
        default=0,
        help="the export's max_file_bytes in MiB (planned, uncompressed); 0: one file per run",
    )
    parser.add_argument(
        "--baseline-src",
        default=None,
        help="another copy of the code's src directory, run in turn with this one (same rows)",
    )
    parser.add_argument("--dir", default=None, help="where the databases go (default: $TMPDIR)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from tests.server_moto import moto_server  # importable once _common set the path

    events = -(-args.events // BATCH) * BATCH
    limit = args.max_file_mb * MIB or 2**40
    with tempfile.TemporaryDirectory(prefix="spillway-bench-", dir=args.dir) as tmp:
        workdir = Path(tmp)
        db_path = workdir / "spillway.db"
        db_url = f"sqlite:///{db_path}"
        engine = create_engine(db_url)
        migrate(engine)
        project = create_project(engine, "bench")
        actor = Actor("bench", project.id)
        other = create_project(engine, "warm-up")
        other_actor = Actor("bench", other.id)
        with moto_server() as moto:
            s3: Any = moto.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            # An export starts at the store's high-water mark, so each is created before the
            # events it is to deliver. The warm-up project's few events come last, so that its
            # runs read only those; the timed runs' range ends past them (they are skipped).
            destination = setup_destination(engine, actor, moto, "bench")
            export_ids = [
                make_export(engine, actor, destination, f"round{n}", limit)
                for n in range(args.repeat)
            ]
            base_ids = [
                make_export(engine, actor, destination, f"baseline{n}", limit)
                for n in range(args.repeat if args.baseline_src else 0)
            ]
            seconds = store_events(engine, project.id, events)
            print(f"setup: {events:,} events stored in {seconds:.1f} s (untimed)", flush=True)
            with engine.connect() as conn:
                seq = (0, q.high_water_now(conn))
            warm_up = setup_destination(engine, other_actor, moto, "warm-up")
            warm_up_ids = [
                make_export(engine, other_actor, warm_up, f"warm-up{n}", limit)
                for n in range(args.repeat * (2 if args.baseline_src else 1))
            ]
            store_events(engine, other.id, BATCH, first_batch=10**6)
            with engine.connect() as conn:
                run_range = (0, q.high_water_now(conn))
            started = time.perf_counter()
            duck = DuckDb(workdir, db_path, seq)
            print(f"setup: DuckDB table loaded in {time.perf_counter() - started:.1f} s (untimed)")
            meta = run_meta(project.name, project.app_id, NOW)
            rounds: list[dict[str, dict[str, Any]]] = []
            digests: set[str] = set()
            files = 0
            for number, export_id in enumerate(export_ids, 1):
                runs = [("spillway", None, export_id, warm_up_ids[number - 1])]
                if args.baseline_src:
                    base = (
                        "baseline",
                        args.baseline_src,
                        base_ids[number - 1],
                        warm_up_ids[-number],
                    )
                    runs.insert(number % 2, base)  # who goes first alternates
                measured: dict[str, dict[str, Any]] = {}
                for name, src, run_export, warm_up_id in runs:
                    result = spillway_run(db_url, run_export, warm_up_id, src)
                    if tuple(result["seq"]) != run_range:
                        raise SystemExit(f"the run covered {result['seq']}, not {run_range}")
                    digests.add(verify(moto, result, events))
                    measured[name] = result
                spillway = measured["spillway"]
                files = len(spillway["files"])
                raw = raw_run(db_path, seq)
                duckdb = duck.run(meta)
                for name, result in (("raw", raw), ("DuckDB", duckdb)):
                    if result["events"] != events:
                        raise SystemExit(f"{name} saw {result['events']:,} of {events:,} events")
                rounds.append({**measured, "raw": raw, "duckdb": duckdb})
                baseline = measured.get("baseline")
                print(
                    f"round {number}: Spillway {events / spillway['seconds']:,.0f}/s "
                    f"(peak RSS {spillway['peak_mib']:,.0f} MiB), "
                    + (f"baseline {events / baseline['seconds']:,.0f}/s, " if baseline else "")
                    + f"raw {events / raw['seconds']:,.0f}/s, "
                    f"DuckDB {events / duckdb['seconds']:,.0f}/s",
                    flush=True,
                )
            if len(digests) != 1:
                raise SystemExit(f"rounds exported different files for the same range: {digests}")
            report(events, files, rounds, duck.threads and duck.threads[0])
            duck.con.close()
        engine.dispose()


if __name__ == "__main__":
    main()
