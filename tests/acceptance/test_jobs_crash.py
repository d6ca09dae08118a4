"""A real ``spillway worker`` killed with SIGKILL in the middle of an endpoints export job, then
started again: the job completes with every endpoint exactly once, and no piece written before
the kill is rewritten with other bytes.

Everything goes through HTTP, the CLI and the files; the only other touch is the SQLite file, to
let the dead worker's job lease run out now instead of in a minute (``lease_until`` in the past
is what the clock would have made of it).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import (
    SPILLWAY,
    ServerFactory,
    auth,
    cli_env,
    cli_json,
    db_path,
)

ENDPOINTS = 20_000
PER_PIECE = 250  # 80 pieces: the kill lands mid-job
KILL_AFTER = 5  # pieces on disk before the kill
DEADLINE = 60.0


def job_folder(root: Path, job_id: str) -> Path:
    """Where the job's pieces land: the project's subfolder of the local root, the
    destination's folder, the job's id."""
    found = list(root.glob(f"*/bucket/spillway/{job_id}"))
    return found[0] if found else root / "not-yet"


def pieces_on_disk(folder: Path) -> dict[str, str]:
    """sha256 of each finished piece file (the local store renames a piece into place whole)."""
    if not folder.is_dir():
        return {}
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.glob("endpoints-*.jsonl.gz")
    }


def start_worker(data_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [SPILLWAY, "worker"],
            env=cli_env(data_dir, env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def expire_lease(data_dir: Path, job_id: str) -> None:
    with closing(sqlite3.connect(db_path(data_dir))) as conn, conn:
        conn.execute("UPDATE jobs SET lease_until = 0 WHERE id = ?", (job_id,))


def test_a_killed_worker_resumes_the_job_without_doubles_or_rewrites(tmp_path: Path) -> None:
    root = tmp_path / "local-root"
    root.mkdir()
    env = {"SPILLWAY_LOCAL_ROOT": str(root)}
    factory = ServerFactory(tmp_path)
    server = factory(extra_env=env)  # API only: no worker takes the job yet
    try:
        creds = server.credentials()
        write = auth(creds.write_token)
        made = server.client.post(
            "/api/v1/destinations",
            json={
                "name": "files",
                "kind": "local",
                "config": {"path": "bucket", "folder": "spillway"},
                "credentials": {"mode": "none"},
            },
            headers=write,
        )
        assert made.status_code == 201, made.text
        for start in range(0, ENDPOINTS, 100):
            batch = [
                {"endpoint_id": f"ep-{i:06d}", "channel_type": "SMS", "address": f"+{i:011d}"}
                for i in range(start, start + 100)
            ]
            answer = server.client.put(
                "/api/v1/endpoints", json={"endpoints": batch}, headers=write
            )
            assert answer.status_code < 300, answer.text
        created = server.client.post(
            "/api/v1/jobs/export",
            json={"destination_id": made.json()["id"], "max_records_per_piece": PER_PIECE},
            headers=write,
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
    finally:
        factory.stop_all()

    data_dir = server.data_dir
    first = start_worker(data_dir, env, tmp_path / "worker-1.log")
    seen: dict[str, str] = {}
    try:
        deadline = time.monotonic() + DEADLINE
        while len(pieces_on_disk(job_folder(root, job_id))) < KILL_AFTER:
            assert first.poll() is None, (tmp_path / "worker-1.log").read_text()
            assert time.monotonic() < deadline, "the worker wrote no pieces"
            time.sleep(0.002)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        seen = pieces_on_disk(job_folder(root, job_id))
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    folder = job_folder(root, job_id)
    assert not (folder / "manifest.json").exists(), "the job ended before the kill: nothing proven"
    before: dict[str, Any] = cli_json(
        data_dir, "jobs", "show", "-p", creds.project_id, job_id, env=env
    )
    assert before["status"] == "PROCESSING", before
    assert KILL_AFTER <= len(seen) < ENDPOINTS // PER_PIECE
    assert before["completed_pieces"] <= len(seen)  # a piece on disk may not be recorded yet

    expire_lease(data_dir, job_id)
    second = start_worker(data_dir, env, tmp_path / "worker-2.log")
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            job = cli_json(data_dir, "jobs", "show", "-p", creds.project_id, job_id, env=env)
            if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            assert second.poll() is None, (tmp_path / "worker-2.log").read_text()
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
    finally:
        second.terminate()
        second.wait(timeout=30)

    assert job["status"] == "COMPLETED", job
    assert job["total_processed"] == ENDPOINTS
    assert job["total_pieces"] == job["completed_pieces"] == ENDPOINTS // PER_PIECE
    assert job["failed_pieces"] == 0 and job["total_failures"] == 0
    after = pieces_on_disk(folder)
    assert len(after) == ENDPOINTS // PER_PIECE
    for name, digest in seen.items():  # no piece rewritten with other bytes
        assert after[name] == digest, name
    ids: Counter[str] = Counter()
    for path in sorted(folder.glob("endpoints-*.jsonl.gz")):
        ids.update(
            json.loads(line)["Id"] for line in gzip.decompress(path.read_bytes()).splitlines()
        )
    assert set(ids.values()) == {1} and len(ids) == ENDPOINTS  # no endpoint in two pieces
    manifest = json.loads((folder / "manifest.json").read_bytes())
    assert manifest["records"] == ENDPOINTS
    assert {p["key"].rsplit("/", 1)[1]: p["sha256"] for p in manifest["pieces"]} == after
