"""A worker killed with SIGKILL in the middle of a multi-file, multipart run to S3 (moto).

The worker is a real process running the scheduler on the same SQLite file. It is stopped for
good (``kill -9``) while the run's second file is half uploaded: its first file is committed,
the second is an unfinished multipart upload. Another worker then finishes the run once the dead
one's lease has expired. The result must be indistinguishable from an undisturbed run of an
identical export: the same keys, the same bytes (the same plaintext with PGP), nothing else.

Run as ``python -m tests.acceptance.test_worker_crash '<json>'`` it is that worker process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from sqlalchemy.engine import Engine

from spillway.store import runs as q
from spillway.store.db import create_engine, migrate
from tests.integration.destinations.case_s3 import S3World
from tests.integration.exporting import T0, Clock, Setup
from tests.integration.test_export_failures import bucket_keys, open_uploads, s3_setup
from tests.servers import allowed_endpoints
from tests.unit.test_pgp import GPG, Keyring, stop_agent

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 45_000
MAX_FILE_BYTES = 12 * 1024 * 1024  # three files; the first two bigger than one 8 MiB part
WINDOW_END = T0 + 900
LEASE_TTL_MS = 2_000  # so the second worker may take over soon after the first one dies
DEADLINE = 50.0


# --- the worker process ----------------------------------------------------------------------


def worker_main(spec: dict[str, Any]) -> None:  # pragma: no cover - runs in a subprocess
    """Serve one export at the window's close; with ``ready``, stop mid-run and wait."""
    from spillway.engine.scheduler import Scheduler
    from spillway.secrets import SecretBox

    engine = create_engine(spec["db"])
    hook = _Stall(spec) if spec.get("ready") else (lambda _: None)
    scheduler = Scheduler(
        engine,
        SecretBox(b"k" * 48),
        clock=Clock(spec["at"]),
        hook=hook,
        lease_ttl_ms=LEASE_TTL_MS,
    )
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        scheduler.serve_export(spec["export_id"])
        with engine.connect() as conn:
            runs = q.list_runs(conn, spec["export_id"])
        if runs and all(r.status == "succeeded" for r in runs):
            return
        time.sleep(0.2)  # the dead worker's lease has not expired yet
    raise SystemExit("the run did not finish in time")


class _Stall:
    """Blocks the run once its n-th file has an unfinished multipart upload in the bucket."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.stall_in = int(spec["stall_in_file"])
        self.files = 0
        self.s3 = boto3.client(
            "s3",
            endpoint_url=spec["moto"]["endpoint"],
            region_name="us-east-1",
            aws_access_key_id=spec["moto"]["key"],
            aws_secret_access_key=spec["moto"]["secret"],
        )

    def __call__(self, checkpoint: str) -> None:
        if checkpoint == "before_upload":
            self.files += 1
        if checkpoint != "between_parts" or self.files < self.stall_in:
            return
        if not self.s3.list_multipart_uploads(Bucket=self.spec["bucket"]).get("Uploads"):
            return
        Path(self.spec["ready"]).write_text(str(os.getpid()))
        while True:  # wait here for SIGKILL
            time.sleep(1)


def start_worker(spec: dict[str, Any], tmp: Path) -> subprocess.Popen[bytes]:
    """Start a worker process (its temp files, e.g. gpg's, go to ``tmp``)."""
    tmp.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "PYTHONUNBUFFERED": "1",
        "SPILLWAY_ALLOWED_ENDPOINTS": allowed_endpoints(),  # moto, as an operator lists it
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.acceptance.test_worker_crash", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


# --- the test --------------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite file that the worker processes open too."""
    engine = create_engine(f"sqlite:///{tmp_path / 'spillway.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def keyring() -> Iterator[Keyring]:
    """A throwaway GnuPG home with one key pair (made by the real gpg)."""
    if not os.path.exists(GPG):
        pytest.fail("gpg is needed for the PGP tests: apt install gnupg (make system-deps)")
    home = Path(tempfile.mkdtemp(prefix="gpgc-"))  # short: the agent's socket lives here
    home.chmod(0o700)
    try:
        ring = Keyring(home, "", "")
        fingerprint = ring.generate("Crash <c@example.com>", "future-default", "default", "never")
        yield Keyring(home, ring.export(fingerprint), fingerprint)
    finally:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def crash_and_finish(
    world: S3World, tmp_path: Path, export_id: str, db_url: str, stall_in_file: int = 2
) -> None:
    """Run the export in a worker, SIGKILL it mid multipart upload, finish in a new worker."""
    spec = {
        "stall_in_file": stall_in_file,
        "db": db_url,
        "export_id": export_id,
        "at": WINDOW_END + 1,
        "bucket": world.bucket,
        "moto": {
            "endpoint": world.moto.endpoint,
            "key": world.moto.admin_key,
            "secret": world.moto.admin_secret,
        },
        "ready": str(tmp_path / "ready"),
    }
    first = start_worker(spec, tmp_path / "tmp1")
    deadline = time.monotonic() + DEADLINE
    while not Path(spec["ready"]).exists():
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            output = first.communicate()[0].decode(errors="replace")
            pytest.fail(f"the first worker never reached the middle of the run:\n{output}")
        time.sleep(0.05)
    # Mid-run, as intended: earlier files committed, this one an unfinished multipart upload.
    assert len(open_uploads(world)) == 1
    assert len(bucket_keys(world, "exports_crashed/")) == stall_in_file - 1
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    first.communicate()

    spec.pop("ready")
    second = start_worker(spec, tmp_path / "tmp2")
    output = second.communicate(timeout=DEADLINE + 10)[0].decode(errors="replace")
    assert second.returncode == 0, output


def objects(world: S3World, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` by its key below the prefix (read as the admin)."""
    s3: Any = world.moto.client("s3")
    return {
        key.removeprefix(prefix): s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
        for key in bucket_keys(world, prefix)
    }


def check_same_result(
    crashed: dict[str, bytes], reference: dict[str, bytes], suffix: str
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Same keys (three parts and a manifest, nothing else); returns the data files of each."""
    day = "export_day=23-11-2026/"
    names = [f"{day}event_exports_{WINDOW_END}_{n}{suffix}" for n in (1, 2, 3)]
    assert (
        sorted(crashed)
        == sorted(reference)
        == sorted([*names, f"{day}event_exports_{WINDOW_END}.manifest.json"])
    )
    manifests = [
        orjson.loads(files[names[0].replace(f"_1{suffix}", ".manifest.json")])
        for files in (crashed, reference)
    ]
    for manifest, files in zip(manifests, (crashed, reference), strict=True):
        assert manifest["records"] == EVENTS
        listed = {f["key"].split("/", 1)[1]: f["sha256"] for f in manifest["files"]}
        assert listed == {n: hashlib.sha256(files[n]).hexdigest() for n in names}
    if not suffix.endswith(".gpg"):  # the same manifest, but for the export's id and name
        same = orjson.dumps(manifests[1]).replace(b"reference", b"crashed")
        same = same.replace(manifests[1]["export_id"].encode(), manifests[0]["export_id"].encode())
        assert orjson.loads(same) == manifests[0]
    return {n: crashed[n] for n in names}, {n: reference[n] for n in names}


def prepare(
    engine: Engine, tmp_path: Path, world: S3World, **settings: Any
) -> tuple[Setup, dict[str, Any], dict[str, Any]]:
    """Two identical exports (one to crash, one for reference) over the same events."""
    s = s3_setup(engine, tmp_path, world, world.full_user())
    options = {"compression": "none", "max_file_bytes": MAX_FILE_BYTES, **settings}
    crashed = s.export("crashed", **options)
    reference = s.export("reference", **options)
    for start in range(0, EVENTS, 15_000):
        s.ingest(min(15_000, EVENTS - start), at=T0 + 100)
    return s, crashed, reference


def deliver_reference(s: Setup, export_id: str) -> None:
    """The undisturbed run, in this process."""
    s.clock.now = WINDOW_END + 1
    assert s.scheduler().serve_export(export_id) == {"runs": 1, "failed": 0}


def history(engine: Engine, export_id: str) -> list[tuple[int, str, int, int]]:
    """(window end, status, attempts, events) of each of the export's runs."""
    with engine.connect() as conn:
        runs = q.list_runs(conn, export_id)
    return [(r.window_end, r.status, r.attempts, r.events) for r in runs]


@pytest.mark.slow
def test_sigkill_mid_multipart_run_gives_the_same_keys_and_bytes(
    sqlite_engine: Engine, tmp_path: Path, s3_world: S3World
) -> None:
    s, crashed, reference = prepare(sqlite_engine, tmp_path, s3_world)
    crash_and_finish(s3_world, tmp_path, crashed.id, str(sqlite_engine.url))
    deliver_reference(s, reference.id)
    # One run, its second attempt finished what the killed first one began.
    assert history(sqlite_engine, crashed.id) == [(WINDOW_END, "succeeded", 2, EVENTS)]

    got = objects(s3_world, "exports_crashed/")
    want = objects(s3_world, "exports_reference/")
    got_files, want_files = check_same_result(got, want, ".json")
    assert got_files == want_files  # byte for byte
    assert len(got_files[next(iter(got_files))]) > 8 * 1024 * 1024  # really multipart
    assert open_uploads(s3_world) == []  # the rerun aborted the dead upload


@pytest.mark.slow
def test_sigkill_mid_multipart_run_with_pgp_gives_the_same_plaintext(
    sqlite_engine: Engine, tmp_path: Path, s3_world: S3World, keyring: Keyring
) -> None:
    s, crashed, reference = prepare(
        sqlite_engine, tmp_path, s3_world, pgp_public_key=keyring.public_key
    )
    crash_and_finish(s3_world, tmp_path, crashed.id, str(sqlite_engine.url))
    deliver_reference(s, reference.id)
    # One run, its second attempt finished what the killed first one began.
    assert history(sqlite_engine, crashed.id) == [(WINDOW_END, "succeeded", 2, EVENTS)]

    got = objects(s3_world, "exports_crashed/")
    want = objects(s3_world, "exports_reference/")
    got_files, want_files = check_same_result(got, want, ".json.gpg")
    for name in got_files:
        assert got_files[name] != want_files[name]  # a fresh session key each time…
        assert keyring.decrypt(got_files[name]) == keyring.decrypt(want_files[name])  # …same text
    assert open_uploads(s3_world) == []  # the rerun aborted the dead upload
    # The worker that finished left no gpg temp files behind.
    assert not list((tmp_path / "tmp2").glob("spillway-gpg-*"))


@pytest.mark.slow
def test_the_rerun_aborts_the_dead_workers_upload(
    sqlite_engine: Engine, tmp_path: Path, s3_world: S3World
) -> None:
    s = s3_setup(sqlite_engine, tmp_path, s3_world, s3_world.full_user())
    export = s.export("crashed", compression="none")
    s.ingest(16_000, at=T0 + 100)  # one file of more than one 8 MiB part
    crash_and_finish(s3_world, tmp_path, export.id, str(sqlite_engine.url), stall_in_file=1)
    assert len(bucket_keys(s3_world, "exports_crashed/")) == 2  # the file and its manifest
    assert open_uploads(s3_world) == []


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))
