"""Stream delivery to Kinesis (moto): sustained throughput, and end-to-end latency under load.

Run: .venv/bin/python benchmarks/stream.py [--events 100000] [--rate 5000] [--seconds 20]
                                           [--linger 200,0] [--dir /dev/shm]

1. Throughput. N demo events (1,000 users) are stored in a fresh SQLite file, then
   ``StreamDelivery(linger_ms=0).pass_once()`` runs until the backlog is drained into a moto
   Kinesis stream. Spillway's cost is this process's CPU time over the drain
   (``time.process_time``; moto is another process, its CPU is read from /proc apart).
   Baseline, same run, same moto server: bare boto3 ``put_records`` of the very same record
   bytes and partition keys, 500 per call, with the botocore config Spillway uses. Spillway's
   CPU is split by timing its steps (SDK call, reading rows, encoding, commits, lag query);
   calls are counted in moto's access log.
2. Latency. ``spillway serve`` (API and stream worker in one process) on a fresh data dir and a
   fresh moto server; a steady offered load (``--batch`` events every batch/rate seconds from
   ``--clients`` threads) is posted to ``/api/v1/events``. An event is *accepted* when its POST
   got its 200 (client clock) and *acknowledged* at its record's ``ApproximateArrivalTimestamp``,
   which moto stamps with ``utcnow()`` when it stores the record (millisecond precision; same
   machine, same clock: a probe record checks it). Latency = acknowledged - accepted, for every
   event, read back from every shard once the export's lag is zero. Also shown: the worst
   latency per tenth of the load (a growing backlog shows), the rate delivery kept while the
   load lasted, PutRecords calls, and the CPU of serve, moto, the load generator and the rest
   of the machine.

The machine is small and shared: each figure is printed beside its baseline from the same run,
and the CPU other processes used meanwhile is shown (busy neighbours slow moto and the server).
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # for `tests.*` (the moto server helpers)
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from tests.server_moto import REGION, Moto, moto_server  # noqa: E402
from tests.servers import allowed_endpoints, free_port, wait_for_port  # noqa: E402

from spillway.api import models as api_models  # noqa: E402
from spillway.demo import synthetic_events  # noqa: E402
from spillway.destinations.aws.stream import STREAM_CONFIG  # noqa: E402
from spillway.engine import streamer  # noqa: E402
from spillway.engine.records import Selection  # noqa: E402
from spillway.engine.stream_records import StreamRecordEncoder  # noqa: E402
from spillway.engine.streamer import StreamDelivery  # noqa: E402
from spillway.ingest import Limits, judge  # noqa: E402
from spillway.model import Actor  # noqa: E402
from spillway.secrets import SecretBox  # noqa: E402
from spillway.services import destinations as destination_service  # noqa: E402
from spillway.services import exports as export_service  # noqa: E402
from spillway.services.projects import create_project  # noqa: E402
from spillway.store import streams as sq  # noqa: E402
from spillway.store.db import create_engine, migrate, now_ms  # noqa: E402
from spillway.store.events import insert_events  # noqa: E402

LIMITS = Limits(10**9, 10**6, 10**6)  # never rejects a demo event
USERS = 1_000
SHARDS = 4
PUT_BATCH = 500  # Kinesis PutRecords takes at most 500 records
TICK = os.sysconf("SC_CLK_TCK")
SPILLWAY = str(Path(sys.executable).with_name("spillway"))
TARGET_PER_CORE = 20_000  # events/s per core of Spillway CPU
TARGET_P99_S = 1.0
TARGET_RATE = 5_000
WINDOWS = 10


# ---------------------------------------------------------------- helpers


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu() -> float:
    """CPU seconds all processes of the machine have used so far (busy time in /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def moto_pid() -> int:
    """The pid of the moto server this process started (``python -m tests.moto_main``)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if b"tests.moto_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
    raise RuntimeError("no moto server among this process's children")


@dataclass
class MotoProcess:
    """A moto server and its pid (to read its CPU time)."""

    moto: Moto
    pid: int

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def requests(self) -> int:
        """Requests moto served so far (its access log; Kinesis calls are all POST /)."""
        log = Path(os.readlink(f"/proc/{self.pid}/fd/1"))
        return log.read_bytes().count(b'"POST / HTTP')


def kinesis(moto: Moto, config: Any = None) -> Any:
    import boto3

    return boto3.client(
        "kinesis",
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id=moto.admin_key,
        aws_secret_access_key=moto.admin_secret,
        config=config,
    )


def create_stream(moto: Moto, shards: int = SHARDS) -> str:
    name = "bench-" + uuid.uuid4().hex[:8]
    client = kinesis(moto)
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return name


def read_stream(moto: Moto, name: str) -> list[dict[str, Any]]:
    """Every record of every shard (moto answers a shard's records in few calls)."""
    client = kinesis(moto)
    out: list[dict[str, Any]] = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = client.get_records(ShardIterator=iterator, Limit=10_000)
            out += answer["Records"]
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    return out


def clock_probe(moto: Moto) -> float:
    """ApproximateArrivalTimestamp minus the midpoint of the put (seconds; ~0 if one clock)."""
    name = create_stream(moto, shards=1)
    client = kinesis(moto)
    client.put_record(StreamName=name, Data=b"probe", PartitionKey="probe")  # warm
    before = time.time()
    client.put_record(StreamName=name, Data=b"probe", PartitionKey="probe")
    after = time.time()
    arrival = read_stream(moto, name)[-1]["ApproximateArrivalTimestamp"].timestamp()
    return float(arrival - (before + after) / 2)


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(widths[i + 1]) for i, cell in enumerate(row[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------- 1. throughput


class CpuSplit:
    """CPU time spent inside some functions, while patched (to split Spillway's drain)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        self.cpu[label] = 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.cpu[label] += time.process_time() - started

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


@dataclass
class Drain:
    events: int
    wall: float
    cpu: float
    moto_cpu: float
    calls: int
    others_cpu: float  # CPU used by every other process of the machine meanwhile
    split: dict[str, float] | None = None

    @property
    def rate(self) -> float:
        return self.events / self.wall

    @property
    def per_core(self) -> float:
        return self.events / self.cpu


def store(engine: Any, project_id: int, count: int, seed: int) -> None:
    raw = list(synthetic_events(count, users=USERS, seed=seed))
    for start in range(0, count, 5_000):
        received = now_ms()
        insert_events(
            engine, project_id, received, judge(raw[start : start + 5_000], received, LIMITS).rows
        )


def throughput(
    mp: MotoProcess, workdir: Path, count: int, profile: Path | None
) -> tuple[Drain, Drain]:
    moto = mp.moto
    engine = create_engine(f"sqlite:///{workdir / 'throughput.db'}")
    migrate(engine)
    box = SecretBox(b"k" * 48)
    project = create_project(engine, "bench-stream")
    actor = Actor("bench", project.id)
    destination, _ = destination_service.create(
        engine,
        box,
        actor,
        {
            "name": "kinesis",
            "kind": "kinesis",
            "config": {
                "stream": create_stream(moto),
                "region": REGION,
                "endpoint_url": moto.endpoint,
            },
            "credentials": {
                "mode": "access_key",
                "access_key_id": moto.admin_key,
                "secret_access_key": moto.admin_secret,
            },
        },
    )
    export = export_service.create(
        engine,
        actor,
        api_models.ExportIn(name="live", destination_id=destination.id, frequency="stream"),
    )
    delivery = StreamDelivery(engine, box, linger_ms=0)
    # Warm up (untimed): the SDK client is built and cached, SQLite pages are hot.
    store(engine, project.id, PUT_BATCH, seed=999)
    while delivery.pass_once():
        pass
    cursor = int(export_service.get(engine, project.id, export.id).cursor_seq)
    started = time.perf_counter()
    store(engine, project.id, count, seed=1)
    print(f"  stored {count:,} events in {time.perf_counter() - started:.1f} s", flush=True)

    # The baseline's records: the same bytes and keys the export will send, encoded now.
    settings = export_service.get(engine, project.id, export.id).settings
    encoder = StreamRecordEncoder(
        settings.record_format,  # type: ignore[arg-type]
        project.name,
        project.app_id,
        Selection.of(settings),
    )
    with engine.connect() as conn:
        rows, _ = sq.rows_after(conn, project.id, cursor, count, None)
    records = [{"Data": encoder.encode(row), "PartitionKey": row.uid} for row in rows]
    del rows
    raw = raw_puts(mp, records)
    del records

    profiler = cProfile.Profile(time.process_time) if profile else None
    split = CpuSplit()
    split.wrap(StreamDelivery, "_send", "PutRecords (SDK)")
    split.wrap(sq, "rows_after", "read rows")
    split.wrap(streamer, "pack", "encode + pack")
    split.wrap(StreamDelivery, "_commit", "cursor commits")
    split.wrap(sq, "lag", "lag query")
    moto0, cpu0, wall0, calls0 = mp.cpu(), time.process_time(), time.perf_counter(), mp.requests()
    machine0 = machine_cpu()
    if profiler:
        profiler.enable()
    sent = 0
    while done := delivery.pass_once():
        sent += done
    if profiler:
        profiler.disable()
    wall, cpu, moto_cpu = time.perf_counter() - wall0, time.process_time() - cpu0, mp.cpu() - moto0
    calls = mp.requests() - calls0
    others = machine_cpu() - machine0 - cpu - moto_cpu
    split.restore()
    if profiler and profile:
        profiler.dump_stats(profile)
    delivery.close()
    engine.dispose()
    if sent != count:
        raise SystemExit(f"delivered {sent:,} records of {count:,}")
    return Drain(sent, wall, cpu, moto_cpu, calls, others, split.cpu), raw


def raw_puts(mp: MotoProcess, records: list[dict[str, Any]]) -> Drain:
    """Bare boto3 put_records of pre-encoded records, 500 a call, resending any refused."""
    name = create_stream(mp.moto)
    client = kinesis(mp.moto, STREAM_CONFIG)
    client.describe_stream_summary(StreamName=name)  # build the client's model, open a socket
    moto0, cpu0, wall0, calls0 = mp.cpu(), time.process_time(), time.perf_counter(), mp.requests()
    machine0 = machine_cpu()
    for start in range(0, len(records), PUT_BATCH):
        pending = records[start : start + PUT_BATCH]
        while pending:
            answer = client.put_records(StreamName=name, Records=pending)
            pending = [
                r for r, e in zip(pending, answer["Records"], strict=True) if "ErrorCode" in e
            ]
    wall, cpu, moto_cpu = time.perf_counter() - wall0, time.process_time() - cpu0, mp.cpu() - moto0
    others = machine_cpu() - machine0 - cpu - moto_cpu
    return Drain(len(records), wall, cpu, moto_cpu, mp.requests() - calls0, others)


# ---------------------------------------------------------------- 2. latency


@dataclass
class Latency:
    linger_ms: int
    offered: int
    achieved_rate: float
    delivered_rate: float  # events in Kinesis per second while the load lasted
    windows: list[float]  # worst latency per tenth of the load, seconds
    calls: int  # PutRecords calls Spillway made
    others_cpu: float  # CPU used meanwhile by the machine's other processes
    accepted_p99_post_s: float
    latencies: list[float]  # sorted, seconds
    missing: int
    duplicates: int
    catch_up_s: float
    server_cpu: float
    moto_cpu: float
    client_cpu: float
    load_wall: float
    busy_wall: float  # from the first POST until the stream had caught up
    clock_offset_s: float


def cli_env(data_dir: Path, linger_ms: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    env.update(
        SPILLWAY_DATA_DIR=str(data_dir),
        SPILLWAY_LOG_LEVEL="WARNING",
        SPILLWAY_STREAM_LINGER_MS=str(linger_ms),
    )
    return env


def cli_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [SPILLWAY, *args, "--json"], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"spillway {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    answer: dict[str, Any] = orjson.loads(result.stdout)
    return answer


def latency(
    workdir: Path, rate: int, seconds: float, batch: int, clients: int, linger_ms: int, seed: int
) -> Latency:
    data_dir = workdir / f"serve-linger-{linger_ms}"
    data_dir.mkdir()
    env = cli_env(data_dir, linger_ms)
    cli_json(env, "admin", "create-project", "bench")
    token = cli_json(env, "admin", "create-key", "bench", "--scope", "write")["token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    total = int(rate * seconds) // batch * batch
    events = list(synthetic_events(total, users=USERS, seed=seed))
    bodies = [orjson.dumps(events[i : i + batch]) for i in range(0, total, batch)]
    batch_uuids = [[e["event_uuid"] for e in events[i : i + batch]] for i in range(0, total, batch)]
    del events

    with moto_server() as moto:
        mp = MotoProcess(moto, moto_pid())
        offset = clock_probe(moto)
        stream = create_stream(moto)
        port = free_port()
        log_path = workdir / f"serve-linger-{linger_ms}.log"
        env["SPILLWAY_ALLOWED_ENDPOINTS"] = allowed_endpoints()  # moto, listed by the operator
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [SPILLWAY, "serve", "--port", str(port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_port(port, timeout=30)
            with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
                while http.get("/healthz").status_code != 200:
                    time.sleep(0.05)
                made = http.post(
                    "/api/v1/destinations",
                    json={
                        "name": "kinesis",
                        "kind": "kinesis",
                        "config": {
                            "stream": stream,
                            "region": REGION,
                            "endpoint_url": moto.endpoint,
                        },
                        "credentials": {
                            "mode": "access_key",
                            "access_key_id": moto.admin_key,
                            "secret_access_key": moto.admin_secret,
                        },
                    },
                )
                assert made.status_code == 201, made.text
                made = http.post(
                    "/api/v1/exports",
                    json={
                        "name": "live",
                        "destination_id": made.json()["id"],
                        "frequency": "stream",
                    },
                )
                assert made.status_code == 201, made.text
                export_id = made.json()["id"]
                time.sleep(1.0)  # let the stream thread build its client on the empty export

                server0, moto0, client0 = proc_cpu(server.pid), mp.cpu(), time.process_time()
                calls0, machine0 = mp.requests(), machine_cpu()
                accepted, post_s, first_due, last_done = offer(
                    base, headers, bodies, rate, batch, clients
                )
                load_wall = last_done - first_due
                client_cpu = time.process_time() - client0
                deadline = time.monotonic() + 120
                while True:
                    shown = http.get(f"/api/v1/exports/{export_id}").json()
                    if shown["lag"]["events"] == 0 and shown["delivery"]["records_sent"] >= total:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the stream did not catch up: {shown}")
                    time.sleep(0.02)
                server_cpu, moto_cpu = proc_cpu(server.pid) - server0, mp.cpu() - moto0
                busy_wall = time.time() - first_due
                calls = mp.requests() - calls0
                others = machine_cpu() - machine0 - server_cpu - moto_cpu
                others -= time.process_time() - client0
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        records = read_stream(moto, stream)

    accepted_at: dict[str, float] = {}
    for uuids, at in zip(batch_uuids, accepted, strict=True):
        for one in uuids:
            accepted_at[one] = at
    arrived: dict[str, float] = {}
    duplicates = 0
    for record in records:
        key = orjson.loads(record["Data"])["event"]["event_uuid"]
        when = record["ApproximateArrivalTimestamp"].timestamp()
        if key in arrived:
            duplicates += 1
            when = min(when, arrived[key])
        arrived[key] = when
    latencies = sorted(arrived[k] - accepted_at[k] for k in accepted_at if k in arrived)
    missing = sum(1 for k in accepted_at if k not in arrived)
    first_done, last_done = min(accepted), max(accepted)
    # The worst latency of the events accepted in each tenth of the load: a backlog that
    # builds up, or a hiccup, shows here.
    windows = [0.0] * WINDOWS
    span = (last_done - first_done) / WINDOWS
    for k, at in accepted_at.items():
        if k in arrived:
            window = min(WINDOWS - 1, int((at - first_done) / span))
            windows[window] = max(windows[window], arrived[k] - at)
    # How fast delivery went while the load lasted (it keeps up when this matches the load).
    kept_up = sum(1 for at in arrived.values() if at <= last_done) / (last_done - first_done)
    post_s.sort()
    return Latency(
        linger_ms,
        total,
        # Between the first and the last acceptance: the load the server actually took.
        (total - batch) / (last_done - first_done),
        kept_up,
        windows,
        calls,
        others,
        percentile(post_s, 0.99),
        latencies,
        missing,
        duplicates,
        max(arrived.values()) - last_done,
        server_cpu,
        moto_cpu,
        client_cpu,
        load_wall,
        busy_wall,
        offset,
    )


def offer(
    base: str, headers: dict[str, str], bodies: list[bytes], rate: int, batch: int, clients: int
) -> tuple[list[float], list[float], float, float]:
    """Post ``bodies`` on a fixed schedule: body k is due at start + k * batch / rate.

    A client that falls behind posts at once (the schedule does not slip, so the achieved
    rate shows any shortfall). Returns each body's acceptance time (epoch s), the POST
    durations, when the first was due and when the last was accepted.
    """
    interval = batch / rate
    accepted = [0.0] * len(bodies)
    durations = [0.0] * len(bodies)
    counter = itertools.count()
    lock = threading.Lock()
    failures: list[str] = []
    start = time.time() + 0.2

    def run() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            while True:
                with lock:
                    k = next(counter)
                if k >= len(bodies) or failures:
                    return
                wait = start + k * interval - time.time()
                if wait > 0:
                    time.sleep(wait)
                sent = time.time()
                answer = http.post("/api/v1/events", content=bodies[k])
                done = time.time()
                if answer.status_code != 200 or answer.json()["accepted"] != batch:
                    failures.append(answer.text)
                    return
                accepted[k], durations[k] = done, done - sent

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"ingest failed: {failures[0]}")
    return accepted, durations, start, max(accepted)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000, help="throughput backlog")
    parser.add_argument("--rate", type=int, default=TARGET_RATE, help="offered events/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to offer it")
    parser.add_argument("--batch", type=int, default=50, help="events per POST")
    parser.add_argument("--clients", type=int, default=2, help="posting threads")
    parser.add_argument(
        "--linger", default="200,0", help="SPILLWAY_STREAM_LINGER_MS values for the latency runs"
    )
    parser.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir)")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the drain into FILE")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    base = args.dir or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    workdir = Path(tempfile.mkdtemp(prefix="spillway-stream-bench-", dir=base))
    lingers = [int(x) for x in args.linger.split(",") if x.strip()]
    began = time.perf_counter()
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"work dir {workdir}; {os.cpu_count()} CPUs, load average {' '.join(load)} before "
        f"starting; moto Kinesis, {SHARDS} shards",
        flush=True,
    )
    verdicts: list[tuple[str, ...]] = [("target", "measured", "met")]
    ceiling = None  # moto's rate for the bare SDK, from part 1
    try:
        if not args.skip_throughput:
            print(f"\n1. Sustained throughput: {args.events:,} stored events drained", flush=True)
            with moto_server() as moto:
                mp = MotoProcess(moto, moto_pid())
                spill, raw = throughput(mp, workdir, args.events, args.profile)
            show_throughput(spill, raw)
            ceiling = raw.rate
            verdicts.append(
                (
                    f"throughput >= {TARGET_PER_CORE:,} events/s per core",
                    f"{spill.per_core:,.0f}",
                    "yes" if spill.per_core >= TARGET_PER_CORE else "NO",
                )
            )
        if not args.skip_latency:
            for number, linger in enumerate(lingers):
                print(
                    f"\n2. Latency, SPILLWAY_STREAM_LINGER_MS={linger}: {args.rate:,} events/s "
                    f"offered for {args.seconds:g} s ({args.batch} per POST, "
                    f"{args.clients} clients)",
                    flush=True,
                )
                result = latency(
                    workdir, args.rate, args.seconds, args.batch, args.clients, linger, 100 + number
                )
                show_latency(result)
                p99 = percentile(result.latencies, 0.99)
                met = p99 < TARGET_P99_S and result.achieved_rate >= 0.95 * args.rate
                met = met and not result.missing
                verdicts.append(
                    (
                        f"p99 < {TARGET_P99_S:g} s at {args.rate:,}/s (linger {linger} ms)",
                        f"p99 {p99 * 1000:.0f} ms at {result.achieved_rate:,.0f}/s",
                        "yes" if met else "NO",
                    )
                )
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nSummary (total {time.perf_counter() - began:.0f} s)")
    print(table(verdicts))
    if ceiling is not None and not args.skip_latency:
        print(
            f"moto's ceiling in this run (bare boto3 put_records, one caller): {ceiling:,.0f} "
            f"events/s; the offered load is {args.rate / ceiling:.0%} of it"
        )


def show_throughput(spill: Drain, raw: Drain) -> None:
    rows = [
        (
            "",
            "wall s",
            "events/s",
            "calls",
            "CPU s",
            "CPU µs/ev",
            "events/s/core",
            "moto CPU s",
            "moto µs/ev",
            "CPU sum/wall",
            "others' CPU",
        )
    ]
    for label, d in (("boto3 put_records (baseline)", raw), ("Spillway StreamDelivery", spill)):
        rows.append(
            (
                label,
                f"{d.wall:.2f}",
                f"{d.rate:,.0f}",
                f"{d.calls:,}",
                f"{d.cpu:.2f}",
                f"{d.cpu / d.events * 1e6:.0f}",
                f"{d.per_core:,.0f}",
                f"{d.moto_cpu:.2f}",
                f"{d.moto_cpu / d.events * 1e6:.0f}",
                f"{(d.cpu + d.moto_cpu) / d.wall:.2f}",
                f"{max(0.0, d.others_cpu) / d.wall:.0%}",
            )
        )
    print(table(rows))
    print(
        f"  Spillway/baseline: wall rate {spill.rate / raw.rate:.2f}x, CPU per event "
        f"{spill.cpu / raw.cpu:.2f}x (+{(spill.cpu - raw.cpu) / spill.events * 1e6:.0f} µs/event "
        "over the bare SDK). One call at a time: the caller and moto take turns, so wall ~ "
        "caller CPU + moto CPU (CPU sum/wall ~ 1)."
    )
    split = dict(spill.split or {})
    split["other"] = spill.cpu - sum(split.values())
    parts = ", ".join(f"{k} {v / spill.events * 1e6:.1f}" for k, v in split.items())
    print(
        f"  Spillway CPU per event, µs: {parts} "
        f"(the bare SDK call: {raw.cpu / raw.events * 1e6:.1f})"
    )


def show_latency(r: Latency) -> None:
    ms = [x * 1000 for x in r.latencies]
    print(
        f"  offered {r.offered:,} events in {r.load_wall:.1f} s: achieved {r.achieved_rate:,.0f} "
        f"events/s; POST p99 {r.accepted_p99_post_s * 1000:.0f} ms; clock probe "
        f"{r.clock_offset_s * 1000:+.1f} ms"
    )
    print(
        table(
            [
                ("latency ms", "min", "p50", "p90", "p99", "max", "mean"),
                (
                    "accepted -> in Kinesis",
                    f"{ms[0]:.0f}",
                    f"{percentile(ms, 0.5):.0f}",
                    f"{percentile(ms, 0.9):.0f}",
                    f"{percentile(ms, 0.99):.0f}",
                    f"{ms[-1]:.0f}",
                    f"{sum(ms) / len(ms):.0f}",
                ),
            ]
        )
    )
    print(
        "  max latency per tenth of the load, ms: " + " ".join(f"{w * 1000:.0f}" for w in r.windows)
    )
    print(
        f"  delivered {len(r.latencies):,}, missing {r.missing}, duplicates {r.duplicates}; "
        f"while the load lasted, delivery took {r.delivered_rate:,.0f} events/s "
        f"({r.delivered_rate / r.achieved_rate:.0%} of the accepted rate); last event in "
        f"Kinesis {r.catch_up_s * 1000:.0f} ms after the last 200; {r.calls:,} PutRecords "
        f"calls, {r.offered / max(r.calls, 1):.0f} records per call on average"
    )
    print(
        f"  CPU from the first POST to caught up ({r.busy_wall:.1f} s): spillway serve "
        f"{r.server_cpu:.1f} s ({r.server_cpu / r.busy_wall:.0%} of a core; "
        f"{r.server_cpu / r.offered * 1e6:.0f} µs/event for ingest + delivery), "
        f"moto {r.moto_cpu:.1f} s ({r.moto_cpu / r.busy_wall:.0%}; "
        f"{r.moto_cpu / r.offered * 1e6:.0f} µs/event); load generator "
        f"{r.client_cpu / r.load_wall:.0%} of a core while posting; other processes of the "
        f"machine {max(0.0, r.others_cpu) / r.busy_wall:.0%} of a core"
    )


if __name__ == "__main__":
    main()
