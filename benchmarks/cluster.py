"""One workload on three deployments: SQLite, PostgreSQL, and PostgreSQL behind a load balancer.

Run: .venv/bin/python benchmarks/cluster.py [--events 200000] [--topologies a,b,c] [--keep]
                                            [--rate 5000] [--seconds 20] [--own-pg] [--dir DIR]

The deployments, one after the other, each fresh:

(a) SQLite, one ``spillway serve`` (API and worker in one process);
(b) PostgreSQL, one ``spillway serve`` (API and worker in one process);
(c) PostgreSQL, ``scripts/cluster.sh up --serves 2 --workers 2``: two ``spillway serve
    --no-worker`` and two ``spillway worker`` behind HAProxy.

PostgreSQL is one throwaway cluster (``tests.servers.postgres()``: fsync, synchronous_commit and
full_page_writes off), a fresh database for (b) and another for (c), which gets it through
``cluster.sh --database-url`` so that both run on the same server settings; ``--own-pg`` lets
cluster.sh start its own instead. Each deployment gets its own moto server (S3 and Kinesis).

The workload, through the deployment's URL (for (c), the load balancer's):

1. Ingest: a project and a write key (``spillway admin``), then ``--events`` demo events posted
   as pre-serialised 500-event batches from 4 client threads on keep-alive connections, as
   benchmarks/ingest.py does. Events/s from the first POST to the last answer.
2. Export: a jsonl + gzip export to S3 (moto, as benchmarks/export.py) with ``start:
   "retention"`` so that it covers the events just stored, triggered by ``POST .../run``;
   events/s from the trigger to the run's ``finished_at`` (the worker's pickup included, shown
   apart), and over the run's own ``started_at`` → ``finished_at``. The run must cover every
   acknowledged event. The export is then disabled.
3. Stream: a Kinesis stream export (moto, 4 shards); ``--rate`` events/s offered for
   ``--seconds`` (50-event POSTs from 2 threads on a fixed schedule, benchmarks/stream.py's
   ``offer``); latency = the record's ``ApproximateArrivalTimestamp`` (moto's clock, the same
   machine's) minus the time its POST was answered, for every event, matched by ``event_uuid``.

CPU is read from /proc for every process group (Spillway, PostgreSQL, HAProxy, moto, this
client) over the ingest and the stream phases, to say what a core buys (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import orjson

from _common import ROOT, event_batches, table
from stream import (
    clock_probe,
    create_stream,
    machine_cpu,
    moto_pid,
    offer,
    percentile,
    read_stream,
)

if TYPE_CHECKING:
    from tests.server_moto import Moto

SPILLWAY = str(ROOT / ".venv/bin/spillway")
CLUSTER_SH = ROOT / "scripts/cluster.sh"
TICK = os.sysconf("SC_CLK_TCK")
BATCH = 500
CLIENTS = 4
STREAM_BATCH = 50
STREAM_CLIENTS = 2
BUCKET = "spillway-cluster-bench"
NAMES = {
    "a": "(a) SQLite, 1 serve",
    "b": "(b) PG, 1 serve",
    "c": "(c) PG, 2 serves + 2 workers, HAProxy",
}

# Process groups as the table names them; in (a) and (b) the worker is inside `serve`.
LABELS = {"spillway": "serve(s)", "worker": "workers (c)", "others": "other processes"}


# ---------------------------------------------------------------- processes and CPU


def _proc_table() -> dict[int, tuple[int, float]]:
    """Every process: pid -> (parent pid, CPU seconds of it and its reaped children)."""
    out: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        # utime, stime, cutime, cstime: a backend that exited counts in its parent once reaped.
        cpu = sum(int(x) for x in fields[11:15]) / TICK
        out[int(entry.name)] = (int(fields[1]), cpu)
    return out


def group_cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group: its root processes and all their descendants."""
    procs = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    for name, roots in groups.items():
        total, todo, seen = 0.0, list(roots), set()
        while todo:
            pid = todo.pop()
            if pid in seen or pid not in procs:
                continue
            seen.add(pid)
            total += procs[pid][1]
            todo += children.get(pid, [])
        out[name] = total
    return out


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server listening on the URL's port (its -p option), if it is local."""
    port = str(urlsplit(url.replace("+psycopg", "")).port or 5432).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and b"-p" in argv:
            at = argv.index(b"-p")
            if at + 1 < len(argv) and argv[at + 1] == port:
                return int(entry.name)
    return None


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def free_range(count: int) -> int:
    """A port P such that P..P+count-1 are all free right now."""
    from tests.servers import free_port  # importable once _common set the path

    for _ in range(200):
        base = free_port()
        if base + count >= 65_000:
            continue
        ports = range(base, base + count)
        if all(_free(port) for port in ports):
            return base
    raise RuntimeError(f"no {count} consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_healthy(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{base}/healthz did not answer 200 within {timeout:g} s")


# ---------------------------------------------------------------- deployments


@dataclass
class Deployment:
    """A running deployment: its URL, the environment of its CLI, its processes by group."""

    key: str
    base: str
    env: dict[str, str]
    groups: dict[str, list[int]] = field(default_factory=dict)
    note: str = ""


def base_env(workdir: Path, moto: Moto) -> dict[str, str]:
    """This environment without SPILLWAY_*, plus what every deployment is given alike."""
    from tests.servers import allowed_endpoints

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    env.update(
        SPILLWAY_DATA_DIR=str(workdir),
        SPILLWAY_LOG_LEVEL="WARNING",
        # moto on a loopback port: listed, as an operator lists a MinIO (docs/security.md).
        SPILLWAY_ALLOWED_ENDPOINTS=allowed_endpoints() or moto.endpoint,
    )
    return env


def spillway(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [SPILLWAY, *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode:
        raise SystemExit(f"spillway {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    if "--json" not in args:
        return {}
    answer: dict[str, Any] = orjson.loads(result.stdout)
    return answer


@contextmanager
def one_serve(
    key: str, workdir: Path, moto: Moto, database_url: str | None
) -> Iterator[Deployment]:
    """(a) or (b): one ``spillway serve`` with its worker, on SQLite or the given database."""
    from tests.servers import free_port, wait_for_port

    env = base_env(workdir, moto)
    groups: dict[str, list[int]] = {}
    if database_url:
        env["SPILLWAY_DATABASE_URL"] = database_url
        env["SPILLWAY_SECRET_KEY"] = secrets.token_urlsafe(48)
        pg = postmaster_pid(database_url)
        groups["postgres"] = [pg] if pg else []
    spillway(env, "admin", "migrate")
    port = free_port()
    with (workdir / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [SPILLWAY, "serve", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the benchmark reaches it through us only
        )
    try:
        wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        yield Deployment(key, base, env, {"spillway": [server.pid], **groups})
    finally:
        stop(server)


@contextmanager
def cluster(
    workdir: Path, moto: Moto, database_url: str | None, serves: int, workers: int
) -> Iterator[Deployment]:
    """(c): scripts/cluster.sh up, always followed by cluster.sh down (and a kill of leftovers)."""
    if not CLUSTER_SH.exists():
        raise SystemExit(f"{CLUSTER_SH} does not exist yet: topology (c) cannot run")
    env = base_env(workdir, moto)
    del env["SPILLWAY_DATA_DIR"]  # cluster.sh gives each process what it needs
    port = free_range(serves + 1)
    state = workdir / "cluster"
    up = [str(CLUSTER_SH), "up", "--serves", str(serves), "--workers", str(workers)]
    up += ["--port", str(port), "--dir", str(state)]
    if database_url:
        up += ["--database-url", database_url]
    pids: dict[str, int] = {}
    try:
        result = subprocess.run(
            up, env=env, capture_output=True, text=True, check=False, timeout=600
        )
        pids = read_pids(state)
        if result.returncode:
            raise SystemExit(
                f"cluster.sh up failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        cli_env = dict(env)
        cli_env.update(read_env(state / "env"))
        groups: dict[str, list[int]] = {"spillway": [], "worker": [], "haproxy": [], "postgres": []}
        for name, pid in pids.items():
            if name.startswith("serve"):
                groups["spillway"].append(pid)
            elif name.startswith("worker"):
                groups["worker"].append(pid)
            elif "haproxy" in name:
                groups["haproxy"].append(pid)
            elif "postgres" in name or name.startswith("pg"):
                groups["postgres"].append(pid)
        pg = postmaster_pid(cli_env.get("SPILLWAY_DATABASE_URL", ""))
        if pg and pg not in groups["postgres"]:
            groups["postgres"].append(pg)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        note = ", ".join(f"{name} {pid}" for name, pid in sorted(pids.items()))
        yield Deployment("c", base, cli_env, groups, note)
    finally:
        down = [str(CLUSTER_SH), "down", "--dir", str(state)]
        subprocess.run(down, env=env, capture_output=True, check=False, timeout=120)
        # Whatever `down` left running of what `up` started for us (pids it wrote), by pid.
        for pid in (pids or read_pids(state)).values():
            _kill(pid)


def read_pids(state: Path) -> dict[str, int]:
    pids: dict[str, int] = {}
    for path in sorted((state / "pids").glob("*.pid")):
        text = path.read_text().strip()
        if text.isdigit():
            pids[path.stem] = int(text)
    return pids


def read_env(path: Path) -> dict[str, str]:
    """KEY=value lines (optionally ``export``, optionally quoted) of cluster.sh's env file."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip().removeprefix("export ").strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        out[name.strip()] = value.strip().strip("'\"")
    return out


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def create_database(server_url: str, name: str) -> str:
    """A fresh database on the benchmark's PostgreSQL; its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


# ---------------------------------------------------------------- the workload


@dataclass
class Phase:
    """CPU seconds by process group over a phase, and its wall time."""

    wall: float
    cpu: dict[str, float]


@dataclass
class Result:
    key: str
    ingest_rate: float = 0.0
    ingest: Phase | None = None
    export_events: int = 0
    export_rate: float = 0.0  # trigger -> finished_at
    export_run_rate: float = 0.0  # started_at -> finished_at
    export_pickup: float = 0.0  # trigger -> started_at, seconds
    export: Phase | None = None
    stream_achieved: float = 0.0
    latencies: list[float] = field(default_factory=list)
    stream_missing: int = 0
    stream_duplicates: int = 0
    stream: Phase | None = None
    windows: list[float] = field(default_factory=list)  # worst latency per tenth of the load
    note: str = ""


def measured(dep: Deployment, moto_root: int, work: Callable[[], Any]) -> tuple[Any, Phase]:
    """Run ``work()``; its result, wall time and the CPU of each process group meanwhile."""
    groups = {**dep.groups, "moto": [moto_root]}
    before, machine0, client0 = group_cpu(groups), machine_cpu(), time.process_time()
    started = time.perf_counter()
    answer = work()
    wall = time.perf_counter() - started
    after, machine = group_cpu(groups), machine_cpu() - machine0
    cpu = {name: after[name] - before[name] for name in groups}
    cpu["client"] = time.process_time() - client0
    cpu["others"] = max(0.0, machine - sum(cpu.values()))
    return answer, Phase(wall, cpu)


def post_all(base: str, token: str, bodies: list[bytes], clients: int) -> int:
    """Post every body from ``clients`` threads (keep-alive); the events accepted."""
    url = urlsplit(base)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    accepted = [0] * clients
    failures: list[str] = []

    def client(number: int) -> None:
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
        try:
            for body in bodies[number::clients]:
                conn.request("POST", "/api/v1/events", body, headers)
                response = conn.getresponse()
                answer = response.read()
                if response.status != 200:
                    failures.append(f"{response.status}: {answer[:200]!r}")
                    return
                accepted[number] += orjson.loads(answer)["accepted"]
        except (OSError, http.client.HTTPException) as exc:
            failures.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"ingest failed: {failures[0]}")
    return sum(accepted)


def s3_destination(http: httpx.Client, moto: Moto) -> str:
    s3: Any = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    made = http.post(
        "/api/v1/destinations",
        json={
            "name": "moto-s3",
            "kind": "s3",
            "config": {
                "bucket": BUCKET,
                "folder": "bench",
                "endpoint_url": moto.endpoint,
                "sse": "none",
            },
            "credentials": {
                "mode": "access_key",
                "access_key_id": moto.admin_key,
                "secret_access_key": moto.admin_secret,
            },
        },
    )
    if made.status_code != 201:
        raise SystemExit(f"S3 destination refused: {made.status_code} {made.text}")
    return str(made.json()["id"])


def run_export(http: httpx.Client, moto: Moto, result: Result, expected: int) -> None:
    destination = s3_destination(http, moto)
    # Weekly, so that no scheduled window closes between creation and the run now.
    made = http.post(
        "/api/v1/exports",
        json={
            "name": "files",
            "destination_id": destination,
            "format": "jsonl",
            "compression": "gzip",
            "frequency": "weekly",
            "start": "retention",
        },
    )
    if made.status_code != 201:
        raise SystemExit(f"export refused: {made.status_code} {made.text}")
    export_id = made.json()["id"]
    triggered = time.time()
    answer = http.post(f"/api/v1/exports/{export_id}/run")
    if answer.status_code != 202:
        raise SystemExit(f"run now refused: {answer.status_code} {answer.text}")
    run_id = answer.json()["run_id"]
    deadline = time.monotonic() + 600
    while True:
        run = http.get(f"/api/v1/exports/{export_id}/runs/{run_id}").json()
        if run["status"] == "succeeded":
            break
        if run["status"] == "failed":  # the worker would retry; a benchmark stops and says why
            raise SystemExit(f"the export run failed: {run['error']} (attempt {run['attempts']})")
        if time.monotonic() > deadline:
            raise SystemExit(f"the export run did not succeed in 600 s: {run}")
        time.sleep(0.02)
    if run["events"] != expected:
        raise SystemExit(f"the export run covered {run['events']:,} events, not {expected:,}")
    result.export_events = run["events"]
    finished, started = run["finished_at"] / 1000, run["started_at"] / 1000
    result.export_rate = run["events"] / (finished - triggered)
    result.export_run_rate = run["events"] / max(finished - started, 1e-3)
    result.export_pickup = started - triggered
    # The stream phase measures the stream alone.
    http.patch(f"/api/v1/exports/{export_id}", json={"status": "disabled"}).raise_for_status()


def run_stream(
    dep: Deployment,
    http: httpx.Client,
    headers: dict[str, str],
    moto: Moto,
    moto_root: int,
    result: Result,
    rate: int,
    seconds: float,
) -> None:
    from tests.server_moto import REGION

    from spillway.demo import synthetic_events

    stream = create_stream(moto)
    made = http.post(
        "/api/v1/destinations",
        json={
            "name": "kinesis",
            "kind": "kinesis",
            "config": {"stream": stream, "region": REGION, "endpoint_url": moto.endpoint},
            "credentials": {
                "mode": "access_key",
                "access_key_id": moto.admin_key,
                "secret_access_key": moto.admin_secret,
            },
        },
    )
    if made.status_code != 201:
        raise SystemExit(f"Kinesis destination refused: {made.status_code} {made.text}")
    made = http.post(
        "/api/v1/exports",
        json={"name": "live", "destination_id": made.json()["id"], "frequency": "stream"},
    )
    if made.status_code != 201:
        raise SystemExit(f"stream export refused: {made.status_code} {made.text}")
    export_id = made.json()["id"]
    total = int(rate * seconds) // STREAM_BATCH * STREAM_BATCH
    events = list(synthetic_events(total, users=1_000, seed=100))
    bodies = [orjson.dumps(events[i : i + STREAM_BATCH]) for i in range(0, total, STREAM_BATCH)]
    uuids = [
        [e["event_uuid"] for e in events[i : i + STREAM_BATCH]]
        for i in range(0, total, STREAM_BATCH)
    ]
    del events
    time.sleep(2.0)  # the worker(s) see the new export and build their client, as in stream.py

    def load() -> list[float]:
        accepted, _, _, _ = offer(dep.base, headers, bodies, rate, STREAM_BATCH, STREAM_CLIENTS)
        deadline = time.monotonic() + 180
        while True:
            shown = http.get(f"/api/v1/exports/{export_id}").json()
            if shown["lag"]["events"] == 0 and shown["delivery"]["records_sent"] >= total:
                return accepted
            if time.monotonic() > deadline:
                raise SystemExit(f"the stream did not catch up in 180 s: {shown}")
            time.sleep(0.02)

    accepted, result.stream = measured(dep, moto_root, load)
    records = read_stream(moto, stream)
    accepted_at = {one: at for batch, at in zip(uuids, accepted, strict=True) for one in batch}
    arrived: dict[str, float] = {}
    for record in records:
        key = orjson.loads(record["Data"])["event"]["event_uuid"]
        when = record["ApproximateArrivalTimestamp"].timestamp()
        if key in arrived:
            result.stream_duplicates += 1
            when = min(when, arrived[key])
        arrived[key] = when
    result.latencies = sorted(arrived[k] - at for k, at in accepted_at.items() if k in arrived)
    result.stream_missing = sum(1 for k in accepted_at if k not in arrived)
    first, last = min(accepted), max(accepted)
    result.stream_achieved = (total - STREAM_BATCH) / (last - first)
    # The worst latency of the events accepted in each tenth of the load: a backlog that
    # builds up (too little CPU) climbs; a wait for the next poll stays level.
    span = (last - first) / 10 or 1.0
    result.windows = [0.0] * 10
    for k, at in accepted_at.items():
        if k in arrived:
            tenth = min(9, int((at - first) / span))
            result.windows[tenth] = max(result.windows[tenth], arrived[k] - at)


def workload(dep: Deployment, moto: Moto, bodies: list[bytes], args: argparse.Namespace) -> Result:
    result = Result(dep.key, note=dep.note)
    moto_root = moto_pid()
    spillway(dep.env, "admin", "create-project", "bench", "--json")
    token = spillway(dep.env, "admin", "create-key", "bench", "--scope", "write", "--json")
    headers = {"Authorization": f"Bearer {token['token']}", "Content-Type": "application/json"}
    expected = args.events // BATCH * BATCH
    print(f"  ingest: {expected:,} events, {args.clients} clients, {BATCH} per POST", flush=True)
    count, result.ingest = measured(
        dep, moto_root, lambda: post_all(dep.base, token["token"], bodies, args.clients)
    )
    if count != expected:
        raise SystemExit(f"only {count:,} of {expected:,} events accepted")
    result.ingest_rate = count / result.ingest.wall
    print(f"    {result.ingest_rate:,.0f} events/s", flush=True)
    with httpx.Client(base_url=dep.base, headers=headers, timeout=60) as http:
        print("  export: run now of a start=retention export to S3 (moto)", flush=True)
        _, result.export = measured(dep, moto_root, lambda: run_export(http, moto, result, count))
        print(
            f"    {result.export_rate:,.0f} events/s from the trigger "
            f"(pickup {result.export_pickup:.2f} s), {result.export_run_rate:,.0f} over the run",
            flush=True,
        )
        print(f"  stream: {args.rate:,} events/s for {args.seconds:g} s to Kinesis", flush=True)
        run_stream(dep, http, headers, moto, moto_root, result, args.rate, args.seconds)
        print(
            f"    p50 {percentile(result.latencies, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(result.latencies, 0.99) * 1000:.0f} ms at "
            f"{result.stream_achieved:,.0f} events/s; missing {result.stream_missing}",
            flush=True,
        )
        print(
            "    worst latency per tenth of the load, ms: "
            + " ".join(f"{w * 1000:.0f}" for w in result.windows),
            flush=True,
        )
    return result


# ---------------------------------------------------------------- report


def report(results: dict[str, Result], args: argparse.Namespace, pg_note: str) -> None:
    keys = list(results)

    def ratio(num: str, den: str, value: Callable[[Result], float]) -> str:
        if num not in results or den not in results:
            return ""
        top, bottom = value(results[num]), value(results[den])
        return f"{top / bottom:.2f}x" if bottom > 0 and not math.isnan(top) else ""

    def row(label: str, value: Callable[[Result], float], fmt: str) -> tuple[str, ...]:
        values = [value(results[k]) for k in keys]
        cells = ["-" if math.isnan(v) else fmt.format(v) for v in values]
        return (label, *cells, ratio("b", "a", value), ratio("c", "b", value))

    def per_event(phase: str, group: str) -> Callable[[Result], float]:
        def value(r: Result) -> float:
            p: Phase | None = getattr(r, phase)
            events = {
                "ingest": r.ingest_rate * p.wall if p else 0,
                "export": r.export_events,
                "stream": len(r.latencies),
            }[phase]
            if p is None or group not in p.cpu:  # no such process in this deployment
                return math.nan
            return p.cpu[group] / max(events, 1) * 1e6

        return value

    def p(q: float) -> Callable[[Result], float]:
        return lambda r: percentile(r.latencies, q) * 1000 if r.latencies else float("nan")

    def cpu_rows(phase: str, groups: tuple[str, ...]) -> None:
        for group in groups:
            label = LABELS.get(group, group)
            rows.append(row(f"  CPU µs/event: {label}", per_event(phase, group), "{:.0f}"))

        def busy(r: Result) -> float:
            p: Phase | None = getattr(r, phase)
            return sum(p.cpu.values()) / p.wall if p else math.nan

        rows.append(row("  cores busy (whole machine)", busy, "{:.2f}"))

    rows: list[tuple[str, ...]] = [("", *(NAMES[k] for k in keys), "b/a", "c/b")]
    rows.append(row("ingest events/s", lambda r: r.ingest_rate, "{:,.0f}"))
    cpu_rows("ingest", ("spillway", "worker", "postgres", "haproxy", "client", "others"))
    rows.append(row("export events/s (trigger→done)", lambda r: r.export_rate, "{:,.0f}"))
    rows.append(row("  over the run itself", lambda r: r.export_run_rate, "{:,.0f}"))
    rows.append(row("  worker pickup, s", lambda r: r.export_pickup, "{:.2f}"))
    cpu_rows("export", ("spillway", "worker", "postgres", "moto"))
    rows.append(row("stream offered → achieved/s", lambda r: r.stream_achieved, "{:,.0f}"))
    rows.append(row("  latency p50, ms", p(0.5), "{:.0f}"))
    rows.append(row("  latency p99, ms", p(0.99), "{:.0f}"))
    rows.append(row("  latency max, ms", p(1.0), "{:.0f}"))
    rows.append(row("  missing events", lambda r: r.stream_missing, "{:.0f}"))
    cpu_rows("stream", ("spillway", "worker", "postgres", "haproxy", "moto", "client", "others"))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{args.events // BATCH * BATCH:,} events ingested, exported (jsonl+gzip to moto S3); "
        f"stream {args.rate:,}/s for {args.seconds:g} s to moto Kinesis; {os.cpu_count()} cores, "
        f"load average now {load}"
    )
    print(pg_note)
    print(table(rows))
    dup = ", ".join(f"{k}: {results[k].stream_duplicates}" for k in keys)
    print(f"(stream duplicates {dup}; CPU per event: process CPU from /proc over the phase)")

    verdicts: list[tuple[str, ...]] = [("target", "measured", "met")]

    def verdict(name: str, ok: bool | None, shown: str) -> None:
        verdicts.append((name, shown, "n/a" if ok is None else ("PASS" if ok else "FAIL")))

    a, b, c = results.get("a"), results.get("b"), results.get("c")
    if a and b:
        ab = b.ingest_rate / a.ingest_rate
        verdict("PG 1 serve ingest >= SQLite 1 serve", ab >= 1.0, f"b/a {ab:.2f}x")
    if b and c:
        cb = c.ingest_rate / b.ingest_rate
        verdict("PG 2 serves ingest >= 1.5x 1 serve", cb >= 1.5, f"c/b {cb:.2f}x")
    if c and c.latencies:
        p99 = percentile(c.latencies, 0.99)
        ok = p99 < 1.0 and c.stream_achieved >= 0.95 * args.rate and not c.stream_missing
        verdict(
            f"(c) stream p99 < 1 s at {args.rate:,} events/s",
            ok,
            f"p99 {p99 * 1000:.0f} ms at {c.stream_achieved:,.0f}/s",
        )
    if len(verdicts) > 1:
        print()
        print(table(verdicts))
    command = " ".join([".venv/bin/python", "benchmarks/cluster.py", *sys.argv[1:]])
    print(f"\ncommand: {command}")


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events ingested, exported")
    parser.add_argument("--topologies", default="a,b,c", help="which of a, b, c to run")
    parser.add_argument(
        "--clients", type=int, default=CLIENTS, help="ingest: client threads posting at once"
    )
    parser.add_argument("--rate", type=int, default=5_000, help="stream: offered events/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="stream: for how long")
    parser.add_argument("--own-pg", action="store_true", help="(c): cluster.sh starts its own PG")
    parser.add_argument("--keep", action="store_true", help="leave the work dir (logs) behind")
    parser.add_argument("--dir", type=Path, default=None, help="where the work dir goes")
    args = parser.parse_args()
    # A TERM (timeout, CI) unwinds like Ctrl-C, so every deployment is torn down.
    signal.signal(signal.SIGTERM, _interrupted)
    keys = [k.strip() for k in args.topologies.split(",") if k.strip()]
    if not keys or set(keys) - set(NAMES):
        raise SystemExit("--topologies takes a comma-separated subset of a,b,c")
    if "c" in keys and not CLUSTER_SH.exists():
        raise SystemExit(f"{CLUSTER_SH} does not exist: run --topologies a,b")
    from tests.server_moto import moto_server
    from tests.servers import postgres

    workdir = Path(tempfile.mkdtemp(prefix="spillway-cluster-bench-", dir=args.dir))
    print(
        f"work dir {workdir}; {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} before starting",
        flush=True,
    )
    bodies = [
        orjson.dumps(batch) for batch in event_batches(args.events // BATCH * BATCH, BATCH, seed=7)
    ]
    results: dict[str, Result] = {}
    pg_note = "PostgreSQL: not used"
    try:
        with ExitStack() as stack:
            server_url = None
            if {"b", "c"} & set(keys) and not (keys == ["c"] and args.own_pg):
                server_url = stack.enter_context(postgres())
                version = server_version(server_url)
                pg_note = (
                    f"PostgreSQL {version}: one cluster from tests.servers.postgres() (fsync, "
                    "synchronous_commit, full_page_writes off; max_connections 200), a fresh "
                    "database per topology"
                )
                pg_note += (
                    "; (c) on cluster.sh's own PostgreSQL (--own-pg)"
                    if args.own_pg
                    else "; (c) given it by cluster.sh --database-url"
                )
            elif "c" in keys:
                pg_note = "PostgreSQL: (c) on cluster.sh's own (--own-pg)"
            for key in keys:
                print(f"\n{NAMES[key]}", flush=True)
                here = workdir / key
                here.mkdir()
                with ExitStack() as inner:
                    if server_url is not None:
                        # Gone once the deployment is down, so that autovacuum and checkpoints
                        # of its 300,000 rows do not weigh on the next one.
                        inner.callback(drop_databases, server_url)
                    moto = inner.enter_context(moto_server())
                    offset = clock_probe(moto)
                    if abs(offset) > 0.05:
                        print(f"  warning: moto's clock is {offset * 1000:+.0f} ms off this one")
                    if key == "a":
                        dep = inner.enter_context(one_serve(key, here, moto, None))
                    elif key == "b":
                        assert server_url is not None
                        url = create_database(server_url, f"bench_{uuid.uuid4().hex[:8]}")
                        dep = inner.enter_context(one_serve(key, here, moto, url))
                    else:
                        url = None
                        if not args.own_pg:
                            assert server_url is not None
                            url = create_database(server_url, f"bench_{uuid.uuid4().hex[:8]}")
                        dep = inner.enter_context(cluster(here, moto, url, 2, 2))
                        print(f"  processes: {dep.note}", flush=True)
                    results[key] = workload(dep, moto, bodies, args)
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, args, pg_note)


def drop_databases(server_url: str) -> None:
    """Drop every benchmark database of the server (a deployment's, once it is down)."""
    import psycopg

    with psycopg.connect(server_url.replace("+psycopg", ""), autocommit=True) as conn:
        names = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench_%'")
        for (name,) in names.fetchall():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


if __name__ == "__main__":
    main()
