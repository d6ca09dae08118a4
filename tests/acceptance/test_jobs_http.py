"""Export jobs over HTTP on a running ``spillway serve`` (with its worker), and through the CLI:
202 and an id, progress to COMPLETED, listing and paging, the refusals, cancel of an ended job,
and ``spillway jobs export --wait --json``."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import (
    Credentials,
    Server,
    ServerFactory,
    auth,
    run_cli,
)

ENDPOINTS = 300
ACCESS_KEY = {
    "mode": "access_key",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@dataclass
class Api:
    server: Server
    creds: Credentials
    root: Path  # the operator's SPILLWAY_LOCAL_ROOT
    destination_id: str

    @property
    def write(self) -> dict[str, str]:
        return auth(self.creds.write_token)

    @property
    def read(self) -> dict[str, str]:
        return auth(self.creds.read_token)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.server.client.post(path, json=body, headers=self.write)

    def get(self, path: str, **params: Any) -> Any:
        return self.server.client.get(path, params=params, headers=self.read)

    def export(self, **body: Any) -> dict[str, Any]:
        answer = self.post("/api/v1/jobs/export", {"destination_id": self.destination_id, **body})
        assert answer.status_code == 202, answer.text
        shown: dict[str, Any] = answer.json()
        return shown

    def wait(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.get(f"/api/v1/jobs/export/{job_id}").json()
            if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.1)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server with its worker and local folders turned on; a project with endpoints and a
    local destination."""
    base = tmp_path_factory.mktemp("jobs-http")
    root = base / "local-root"
    root.mkdir()
    factory = ServerFactory(base)
    try:
        server = factory(extra_env={"SPILLWAY_LOCAL_ROOT": str(root)}, worker=True)
        creds = server.credentials()
        headers = auth(creds.write_token)
        made = server.client.post(
            "/api/v1/destinations",
            json={
                "name": "files",
                "kind": "local",
                "config": {"path": "bucket", "folder": "spillway"},
                "credentials": {"mode": "none"},
            },
            headers=headers,
        )
        assert made.status_code == 201, made.text
        for start in range(0, ENDPOINTS, 100):
            batch = [
                {"endpoint_id": f"ep-{i:04d}", "channel_type": "EMAIL", "user_id": f"u-{i % 50}"}
                for i in range(start, start + 100)
            ]
            stored = server.client.put(
                "/api/v1/endpoints", json={"endpoints": batch}, headers=headers
            )
            assert stored.status_code < 300, stored.text
        yield Api(server, creds, root, made.json()["id"])
    finally:
        factory.stop_all()


def piece_ids(root: Path, key: str) -> list[str]:
    """The endpoint ids in a written piece, read from the file itself."""
    [path] = root.glob(f"*/bucket/{key}")
    return [json.loads(line)["Id"] for line in gzip.decompress(path.read_bytes()).splitlines()]


def test_a_job_is_accepted_then_progresses_to_completed(api: Api) -> None:
    created = api.export(what="endpoints", folder="audience", max_records_per_piece=100)
    assert created["status"] == "CREATED" and created["id"]
    assert created["total_processed"] == 0 and created["keys"] == []
    job = api.wait(created["id"])
    assert job["status"] == "COMPLETED", job
    assert job["total_pieces"] == job["completed_pieces"] == 3
    assert job["total_processed"] == ENDPOINTS and job["failures"] == []
    assert job["completed_at"] >= job["created_at"]
    assert all(k.startswith(f"spillway/audience/{created['id']}/") for k in job["keys"])
    ids = [i for key in job["keys"] for i in piece_ids(api.root, key)]
    assert sorted(ids) == [f"ep-{i:04d}" for i in range(ENDPOINTS)]


def test_jobs_are_listed_newest_first_and_paged_with_after(api: Api) -> None:
    made = [api.export(what="users")["id"] for _ in range(3)]
    for job_id in made:
        api.wait(job_id)
    first = api.get("/api/v1/jobs/export", limit=2).json()
    assert [j["id"] for j in first["jobs"]] == made[::-1][:2]
    assert first["next"] == made[1]
    second = api.get("/api/v1/jobs/export", limit=2, after=first["next"]).json()
    assert second["jobs"][0]["id"] == made[0]
    created = [j["created_at"] for j in first["jobs"] + second["jobs"]]
    assert created == sorted(created, reverse=True)


def test_another_projects_job_is_not_found(api: Api) -> None:
    job = api.export(what="users")
    other = api.server.credentials()
    for answer in (
        api.server.client.get(f"/api/v1/jobs/export/{job['id']}", headers=auth(other.read_token)),
        api.server.client.post(
            f"/api/v1/jobs/export/{job['id']}/cancel", headers=auth(other.write_token)
        ),
    ):
        assert answer.status_code == 404, answer.text
    api.wait(job["id"])


def test_refusals_name_what_to_fix(api: Api) -> None:
    stream = api.post(
        "/api/v1/destinations",
        {
            "name": "a-stream",
            "kind": "kinesis",
            "config": {"stream": "spw-events", "region": "us-east-1"},
            "credentials": ACCESS_KEY,
            "force": True,
        },
    )
    assert stream.status_code == 201, stream.text
    answer = api.post("/api/v1/jobs/export", {"destination_id": stream.json()["id"]})
    assert answer.status_code == 422, answer.text
    assert "destination_id" in answer.text and "stream" in answer.text

    answer = api.post(
        "/api/v1/jobs/export",
        {"destination_id": api.destination_id, "segment_id": "no-such-segment"},
    )
    assert answer.status_code == 404, answer.text
    assert "segment" in answer.text

    answer = api.post(
        "/api/v1/jobs/export",
        {"what": "event_counts", "destination_id": api.destination_id, "start": "last tuesday"},
    )
    assert answer.status_code == 422, answer.text
    assert "start" in answer.text and "ISO 8601" in answer.text
    assert api.get("/api/v1/jobs/export").json()["jobs"][0]["what"] != "event_counts"


def test_cancelling_an_ended_job_is_a_conflict(api: Api) -> None:
    job = api.wait(api.export(what="users")["id"])
    assert job["status"] == "COMPLETED"
    answer = api.post(f"/api/v1/jobs/export/{job['id']}/cancel", {})
    assert answer.status_code == 409, answer.text
    assert api.get(f"/api/v1/jobs/export/{job['id']}").json()["status"] == "COMPLETED"


def test_the_cli_waits_for_a_job_and_prints_json(api: Api) -> None:
    result = run_cli(
        api.server.data_dir,
        "jobs",
        "export",
        "--project",
        api.creds.project_id,
        "--destination",
        api.destination_id,
        "--per-piece",
        "120",
        "--wait",
        "--json",
        env=api.server.extra_env,
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "COMPLETED"
    assert job["total_processed"] == ENDPOINTS and job["total_pieces"] == 3
    ids = [i for key in job["keys"] for i in piece_ids(api.root, key)]
    assert sorted(ids) == [f"ep-{i:04d}" for i in range(ENDPOINTS)]
