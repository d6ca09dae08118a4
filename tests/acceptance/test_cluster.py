"""The production topology under fire (issue 15): ``scripts/cluster.sh`` brings up PostgreSQL,
two ``spillway serve`` behind HAProxy and two ``spillway worker``; 100,000 events go through the
load balancer while one serve and one worker are killed with SIGKILL, and every acknowledged
event is exported exactly once.

Everything goes through the script, the CLI, HTTP and the files in the local folder, as an
operator would see it. The client does what a real one must: it sends ``event_uuid`` and resends
a failed batch (connection error, 5xx, HAProxy's 502/503) with the same uuids until it gets a
200, so a batch committed by a serve that died before answering is reported as duplicates, not
stored twice.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.acceptance.conftest import SPILLWAY, Credentials, auth, create_credentials, make_event
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster.sh"
EVENTS = 100_000
BATCH = 500
CLIENTS = 4
KILL_SERVE_AT = 1 / 3  # of the batches acknowledged
RESTART_SERVE_AFTER = 3.0  # seconds
KILL_WORKER_AT = 0.45
RUN_NOW_EVERY = 2.0  # seconds, during the load, so runs are under way when the worker dies
# A worker killed mid-run holds its export's lease for up to two minutes (docs/exports.md);
# the last run waits for that.
RUNS_DEADLINE = 200.0
BATCH_DEADLINE = 90.0  # one batch retried for longer than this is a failure


@dataclass
class Cluster:
    """A topology started by scripts/cluster.sh in ``dir``."""

    dir: Path
    port: int
    env: dict[str, str]  # the cluster's env file: SPILLWAY_DATABASE_URL, SPILLWAY_SECRET_KEY
    script_env: dict[str, str]

    @property
    def url(self) -> str:
        """The load balancer."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``scripts/cluster.sh ARGS --dir DIR``; never raises on exit status."""
        return subprocess.run(
            [str(SCRIPT), *args, "--dir", str(self.dir)],
            env=self.script_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pid(self, name: str) -> int:
        """The pid of one of the cluster's processes."""
        return int((self.dir / "pids" / f"{name}.pid").read_text().split()[0])

    def kill(self, name: str) -> None:
        """SIGKILL: no graceful shutdown, nothing flushed."""
        os.kill(self.pid(name), signal.SIGKILL)

    def logs(self) -> str:
        """The tail of every process's log, for a failure message."""
        parts = []
        for path in sorted((self.dir / "logs").glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)


def _ports_free(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return False
    return True


def _lb_port() -> int:
    """A port P with P+1 and P+2 (the serves) free too."""
    for _ in range(50):
        port = free_port()
        if port < 65_000 and _ports_free(port, 3):
            return port
    raise RuntimeError("no three free consecutive ports")


@pytest.fixture
def cluster(tmp_path: Path, local_root: Path) -> Iterator[Cluster]:
    """Two serves, two workers, HAProxy and PostgreSQL; always torn down afterwards."""
    port = _lb_port()
    script_env = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    script_env.update(
        SPILLWAY_BIN=SPILLWAY,
        SPILLWAY_LOCAL_ROOT=str(local_root),  # passed on to every process by the script
        SPILLWAY_WORKER_INTERVAL_SECONDS="1",
        # The killed worker's export is taken over when its lease lapses: keep that short.
        SPILLWAY_EXPORT_LEASE_SECONDS="15",
        SPILLWAY_LOG_LEVEL="INFO",
    )
    made = Cluster(tmp_path / "cluster", port, {}, script_env)
    try:
        up = made.script("up", "--serves", "2", "--workers", "2", "--port", str(port))
        assert up.returncode == 0, f"cluster.sh up failed:\n{up.stdout}\n{up.stderr}"
        for line in (made.dir / "env").read_text().splitlines():
            key, _, value = line.partition("=")
            made.env[key] = value
        assert (made.dir / "env").stat().st_mode & 0o777 == 0o600
        yield made
    finally:
        down = made.script("down")
        # As root, PostgreSQL's files live outside pytest's private tmp dir (DIR/pg links there).
        pg = made.dir / "pg"
        if pg.is_symlink():
            shutil.rmtree(pg.resolve(), ignore_errors=True)
        assert down.returncode == 0, f"cluster.sh down failed:\n{down.stdout}\n{down.stderr}"


@dataclass
class Load:
    """The client side: batches to send, what was sent and what was acknowledged."""

    lb: str
    token: str
    batches: list[list[dict[str, Any]]]
    sent: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    acked_batches: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def client(self, worker: int) -> None:
        """One client thread: every CLIENTS-th batch, each resent until acknowledged."""
        try:
            with httpx.Client(base_url=self.lb, timeout=60.0) as http:
                for batch in self.batches[worker::CLIENTS]:
                    self.send(http, batch)
        except BaseException as exc:  # reported by the test, not lost in the thread
            with self.lock:
                self.errors.append(exc)

    def send(self, http: httpx.Client, batch: list[dict[str, Any]]) -> None:
        """POST one batch until a 200; the same uuids every time."""
        body = b"".join(json.dumps(event).encode() + b"\n" for event in batch)
        uuids = {event["event_uuid"] for event in batch}
        with self.lock:
            self.sent |= uuids
        deadline = time.monotonic() + BATCH_DEADLINE
        while True:
            try:
                answer = http.post(
                    "/api/v1/events",
                    content=body,
                    headers={**auth(self.token), "Content-Type": "application/x-ndjson"},
                )
            except httpx.TransportError as exc:
                reason = type(exc).__name__
            else:
                if answer.status_code == 200:
                    got = answer.json()
                    assert got["rejected"] == [], got["rejected"][:3]
                    assert got["accepted"] + got["duplicate"] == len(batch), got
                    with self.lock:
                        self.acked |= uuids
                        self.acked_batches += 1
                    return
                if answer.status_code < 500:
                    raise AssertionError(f"{answer.status_code}: {answer.text[:500]}")
                reason = str(answer.status_code)
            with self.lock:
                self.retries[reason] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"a batch was not acknowledged in {BATCH_DEADLINE}s")
            time.sleep(0.2)

    def progress(self) -> float:
        """The share of batches acknowledged so far."""
        with self.lock:
            return self.acked_batches / len(self.batches)


def wait_until(condition: Any, timeout: float, step: float = 0.05) -> bool:
    """Poll ``condition()`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def busy_worker(cluster: Cluster) -> str | None:
    """The worker whose database connection is busy right now (a run reads events inside a
    transaction): PGAPPNAME, set by cluster.sh, names each process's connections."""
    engine = sa.create_engine(cluster.env["SPILLWAY_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "select application_name, state from pg_stat_activity "
                    "where application_name like 'spillway-worker-%' and state <> 'idle'"
                )
            ).all()
    finally:
        engine.dispose()
    names = sorted({str(row[0]).removeprefix("spillway-") for row in rows})
    return names[0] if len(names) == 1 else None


def delivered(folder: Path) -> Counter[str]:
    """event_uuid of every record in every delivered file under ``folder`` (with repeats)."""
    found: Counter[str] = Counter()
    for path in folder.rglob("event_exports_*.json.gz"):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            found[json.loads(line)["event"]["event_uuid"]] += 1
    return found


def runs(http: httpx.Client, creds: Credentials, export_id: str) -> list[dict[str, Any]]:
    """The export's run history, newest first."""
    got = http.get(
        f"/api/v1/exports/{export_id}/runs", params={"limit": 1000}, headers=auth(creds.read_token)
    )
    got.raise_for_status()
    found: list[dict[str, Any]] = got.json()["runs"]
    return found


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_every_acknowledged_event_is_exported_once_while_a_serve_and_a_worker_die(
    cluster: Cluster, local_root: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    creds = create_credentials(tmp_path / "cli", "acme", env=cluster.env)
    http = httpx.Client(base_url=cluster.url, timeout=60.0)
    made = http.post(
        "/api/v1/destinations",
        json={
            "name": "lake",
            "kind": "local",
            "config": {"path": "lake"},
            "credentials": {"mode": "none"},
        },
        headers=auth(creds.write_token),
    )
    assert made.status_code == 201, made.text
    created = http.post(
        "/api/v1/exports",
        json={"name": "events", "destination_id": made.json()["id"], "start": "retention"},
        headers=auth(creds.write_token),
    )
    assert created.status_code == 201, created.text
    export_id = created.json()["id"]

    events = [make_event(i) for i in range(EVENTS)]
    load = Load(
        cluster.url, creds.write_token, [events[i : i + BATCH] for i in range(0, EVENTS, BATCH)]
    )
    clients = [threading.Thread(target=load.client, args=(n,)) for n in range(CLIENTS)]
    for thread in clients:
        thread.start()

    # Run now, over and over during the load, so that runs are in progress when a worker dies.
    def run_now_repeatedly() -> None:
        with httpx.Client(base_url=cluster.url, timeout=30.0) as own:
            while not load.done.wait(RUN_NOW_EVERY):
                # A serve killed under it: the next one will do.
                with contextlib.suppress(httpx.TransportError):
                    own.post(f"/api/v1/exports/{export_id}/run", headers=auth(creds.write_token))

    trigger = threading.Thread(target=run_now_repeatedly)
    trigger.start()
    try:
        # A third of the way in: SIGKILL one serve, bring it back a little later.
        assert wait_until(lambda: load.progress() >= KILL_SERVE_AT or load.errors, 120)
        cluster.kill("serve-1")
        serve_killed_at = load.progress()
        # Restarted beside the load (as systemd's Restart= would), which goes on meanwhile.
        restarts: list[subprocess.CompletedProcess[str]] = []
        restarter = threading.Timer(
            RESTART_SERVE_AFTER, lambda: restarts.append(cluster.script("start", "serve-1"))
        )
        restarter.start()

        # Past half way: SIGKILL the worker that is running a run (the busy one, if a run is
        # seen in progress within a few seconds; worker-1 otherwise).
        assert wait_until(lambda: load.progress() >= KILL_WORKER_AT or load.errors, 120)
        victim: list[str] = []

        def caught_mid_run() -> bool:
            if any(r["status"] == "running" for r in runs(http, creds, export_id)[:3]):
                name = busy_worker(cluster)
                if name:
                    victim.append(name)
            return bool(victim)

        wait_until(caught_mid_run, 10, step=0.02)
        worker = victim[0] if victim else "worker-1"
        cluster.kill(worker)
        worker_killed_at = load.progress()

        for thread in clients:
            thread.join(timeout=300)
        restarter.join(timeout=120)
        assert restarts and restarts[0].returncode == 0, (
            f"cluster.sh start serve-1 failed: {restarts}\n{cluster.logs()}"
        )
    finally:
        load.done.set()
        trigger.join(timeout=60)
    assert not load.errors, f"{load.errors[0]!r}\n{cluster.logs()}"
    assert load.acked == load.sent and len(load.acked) == EVENTS
    loaded = time.monotonic() - started

    # One last run now, then wait for every run of the export to have succeeded.
    last = http.post(f"/api/v1/exports/{export_id}/run", headers=auth(creds.write_token))
    assert last.status_code == 202, last.text
    last_id = last.json()["run_id"]

    def all_succeeded() -> bool:
        history = runs(http, creds, export_id)
        return any(r["id"] == last_id for r in history) and all(
            r["status"] == "succeeded" for r in history
        )

    assert wait_until(all_succeeded, RUNS_DEADLINE, step=1.0), (
        f"runs not done: {runs(http, creds, export_id)[:5]}\n{cluster.logs()}"
    )
    history = runs(http, creds, export_id)
    http.close()

    found = delivered(local_root / creds.project_id / "lake")
    twice = [u for u, n in found.items() if n > 1]
    missing = load.acked - found.keys()
    unknown = found.keys() - load.sent
    retried = [r for r in history if r["attempts"] > 1]
    print(
        f"\nsent {len(load.sent):,} acknowledged {len(load.acked):,} delivered "
        f"{sum(found.values()):,} ({len(found):,} distinct) in {len(history)} runs, "
        f"{sum(1 for _ in (local_root / creds.project_id / 'lake').rglob('*.json.gz'))} files; "
        f"client retries {dict(load.retries)}; serve-1 killed at {serve_killed_at:.0%}, "
        f"{worker} killed at {worker_killed_at:.0%} "
        f"({'mid-run' if victim else 'no run seen in progress'}); runs attempted more than "
        f"once: {len(retried)}; load {loaded:.0f}s, total {time.monotonic() - started:.0f}s"
    )
    assert not missing, f"{len(missing)} acknowledged events were never exported"
    assert not twice, f"{len(twice)} events were exported more than once"
    assert not unknown, f"{len(unknown)} exported events were never sent"
    assert sum(r["events"] for r in history) == EVENTS
