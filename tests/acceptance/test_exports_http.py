"""Every export route over HTTP, against a real ``spillway serve`` with its worker.

PATCH refuses each invalid change with a 422 naming the field (and changes nothing), and its
valid changes show in the next run's files; DELETE, list, run, backfill (202, 409, 422), runs,
one run, and dead letters answer as docs/api.md says. Files are read from the local folder the
server writes, the stream from moto.
"""

from __future__ import annotations

import csv
import gzip
import io
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.acceptance.conftest import (
    Credentials,
    Server,
    ServerFactory,
    auth,
    db_path,
    make_event,
)
from tests.integration.streaming import create_stream, event_uuid, read_stream
from tests.server_moto import REGION, Moto
from tests.servers import allow_endpoint, free_port

ARMOR = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{}\n-----END PGP PUBLIC KEY BLOCK-----\n"
NAMES = ["App Opened", "Viewed Product", "Added To Cart", "Purchase"]  # make_event's, by i % 4


@dataclass
class Api:
    server: Server
    creds: Credentials
    local_root: Path
    moto: Moto
    webhook_origin: str

    @property
    def write(self) -> dict[str, str]:
        return auth(self.creds.write_token)

    @property
    def read(self) -> dict[str, str]:
        return auth(self.creds.read_token)

    def folder(self, path: str) -> Path:
        """A local destination's folder on disk."""
        return self.local_root / self.creds.project_id / path

    def destination(self, name: str) -> str:
        body = {"name": name, "kind": "local", "config": {"path": name}}
        created = self.server.client.post("/api/v1/destinations", json=body, headers=self.write)
        assert created.status_code == 201, created.text
        identifier: str = created.json()["id"]
        return identifier

    def export(self, destination_id: str, name: str, **settings: Any) -> dict[str, Any]:
        body = {"name": name, "destination_id": destination_id, "frequency": "daily", **settings}
        created = self.server.client.post("/api/v1/exports", json=body, headers=self.write)
        assert created.status_code == 201, created.text
        answer: dict[str, Any] = created.json()
        return answer

    def get(self, export_id: str) -> dict[str, Any]:
        got = self.server.client.get(f"/api/v1/exports/{export_id}", headers=self.read)
        assert got.status_code == 200, got.text
        answer: dict[str, Any] = got.json()
        return answer

    def patch(self, export_id: str, body: Any) -> Any:
        with self.server.fresh_client() as client:  # a 500 may drop the connection
            return client.patch(f"/api/v1/exports/{export_id}", json=body, headers=self.write)

    def ingest(self, events: list[dict[str, Any]]) -> list[str]:
        answer = self.server.client.post(
            "/api/v1/events",
            content=orjson.dumps(events),
            headers={**self.write, "Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        return [e["event_uuid"] for e in events]

    def run_now(self, export_id: str) -> str:
        answer = self.server.client.post(f"/api/v1/exports/{export_id}/run", headers=self.write)
        assert answer.status_code == 202, answer.text
        run_id: str = answer.json()["run_id"]
        return run_id

    def wait_run(self, export_id: str, run_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll ``GET runs/{id}`` until the run succeeded (fails the test if it failed)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.server.client.get(
                f"/api/v1/exports/{export_id}/runs/{run_id}", headers=self.read
            )
            assert got.status_code == 200, got.text
            run: dict[str, Any] = got.json()
            if run["status"] == "succeeded":
                return run
            assert run["status"] in ("queued", "running"), (run, self.server.log()[-3000:])
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} still {run['status']}\n{self.server.log()[-3000:]}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, moto: Moto) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("exports-http")
    local_root = root / "local"
    local_root.mkdir()
    # An origin the operator lists, for a plain-http webhook (nothing needs to listen there).
    webhook_origin = f"http://127.0.0.1:{free_port()}"
    allow_endpoint(webhook_origin)
    factory = ServerFactory(root)
    server = factory(
        extra_env={
            "SPILLWAY_LOCAL_ROOT": str(local_root),
            "SPILLWAY_WORKER_INTERVAL_SECONDS": "0.5",
            "SPILLWAY_STREAM_LINGER_MS": "0",
            # Room for an event larger than a Kinesis record may be (1 MiB): a dead letter.
            "SPILLWAY_MAX_EVENT_BYTES": str(2 * 1024 * 1024),
        },
        worker=True,
    )
    try:
        yield Api(server, server.credentials(), local_root, moto, webhook_origin)
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def target(api: Api) -> dict[str, Any]:
    """One export whose PATCH refusals are checked (it never changes)."""
    destination_id = api.destination("refusals")
    return api.export(destination_id, "refusals", events=["Purchase"])


def read_file(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def data_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("event_exports_*")
        if p.is_file() and not p.name.endswith(".manifest.json")
    )


# --- PATCH: every invalid change is a 422 naming the field, and changes nothing -------------

INVALID_PATCHES = [
    ({"events": []}, "events"),
    ({"events": None}, "events"),
    ({"events": "some"}, "events"),
    ({"events": ["ok", 7]}, "events"),
    ({"user_attributes": None}, "user_attributes"),
    ({"user_attributes": "some"}, "user_attributes"),
    ({"device_attributes": None}, "device_attributes"),
    ({"format": None}, "format"),
    ({"format": "xml"}, "format"),
    ({"compression": "brotli"}, "compression"),
    ({"max_file_bytes": None}, "max_file_bytes"),
    ({"max_file_bytes": 10}, "max_file_bytes"),
    ({"max_file_bytes": 10**20}, "max_file_bytes"),
    ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
    ({"webhook_url": "not a url"}, "webhook_url"),
    ({"webhook_url": "http://example.com/hook"}, "webhook_url"),  # plain http, not listed
    ({"webhook_url": "https://127.0.0.1/hook"}, "webhook_url"),  # not a public address
    ({"webhook_url": "https://169.254.169.254/latest"}, "webhook_url"),
    ({"webhook_url": "https://localhost/hook"}, "webhook_url"),  # resolves to loopback
    ({"pgp_public_key": "not a key"}, "pgp_public_key"),
    ({"pgp_public_key": ARMOR.format("bm9uc2Vuc2U=")}, "pgp_public_key"),  # gpg reads no key
    ({"pgp_public_key": ARMOR.format("A" * 70_000)}, "pgp_public_key"),
    ({"record_format": "xml"}, "record_format"),
    ({"frequency": None}, "frequency"),
    ({"frequency": "monthly"}, "frequency"),  # (hourly is a frequency now)
    ({"layout": "flat"}, "layout"),
    ({"layout": None}, "layout"),
    ({"frequency": "stream"}, "frequency"),  # a local folder takes files, not a stream
    ({"status": None}, "status"),
    ({"status": "failing"}, "status"),  # the worker's to set, not the user's
    ({"name": "renamed"}, "name"),
    ({"destination_id": "elsewhere"}, "destination_id"),
    ({"start": "retention"}, "start"),  # chosen at creation only
    ({"bogus": 1}, "bogus"),
    ({"format": "csv", "events": []}, "events"),  # one bad field refuses the whole change
]


@pytest.mark.parametrize(
    ("body", "field"),
    INVALID_PATCHES,
    ids=[f"{field}-{n}" for n, (_, field) in enumerate(INVALID_PATCHES)],
)
def test_patch_refuses_an_invalid_change_naming_the_field(
    api: Api, target: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    before = api.get(target["id"])
    response = api.patch(target["id"], body)
    assert response.status_code == 422, f"{response.status_code}: {response.text}"
    answer = response.json()
    assert answer["error"] == "invalid_request", answer
    assert answer["message"].startswith(field) or f"{field}:" in answer["message"], answer
    assert api.get(target["id"]) == before  # nothing changed


def test_patch_of_a_body_that_is_no_object_is_422(api: Api, target: dict[str, Any]) -> None:
    for body in ([], "events", None, 7):
        response = api.patch(target["id"], body)
        assert response.status_code == 422, f"{body!r}: {response.status_code} {response.text}"


def test_patch_of_stored_settings_that_no_longer_validate_names_them(
    api: Api, tmp_path: Path
) -> None:
    """A PATCH is validated with the stored settings, as a whole: a stored value an older
    version let in (an empty event list) is named, and the same PATCH fixing it goes through."""
    export = api.export(api.destination("legacy"), "legacy")
    with closing(sqlite3.connect(db_path(api.server.data_dir), timeout=30)) as conn, conn:
        stored = orjson.loads(
            conn.execute("select settings from exports where id = ?", (export["id"],)).fetchone()[0]
        )
        stored["events"] = []
        conn.execute(
            "update exports set settings = ? where id = ?",
            (orjson.dumps(stored).decode(), export["id"]),
        )
    refused = api.patch(export["id"], {"format": "csv"})
    assert refused.status_code == 422, refused.text
    assert "events" in refused.json()["message"]
    assert "stored value" in refused.json()["message"]
    fixed = api.patch(export["id"], {"format": "csv", "events": ["Purchase"]})
    assert fixed.status_code == 200, fixed.text
    assert (fixed.json()["format"], fixed.json()["events"]) == ("csv", ["Purchase"])


# --- PATCH: valid changes take effect ---------------------------------------------------------


def test_patched_settings_shape_the_next_run(api: Api) -> None:
    destination_id = api.destination("patched")
    export = api.export(destination_id, "patched")
    assert (export["format"], export["compression"], export["events"]) == ("jsonl", "gzip", "all")
    change = {
        "events": ["Purchase", "Added To Cart"],
        "user_attributes": ["plan"],
        "device_attributes": False,
        "format": "csv",
        "compression": "none",
        "frequency": "weekly",
        "webhook_url": f"{api.webhook_origin}/hook",
    }
    patched = api.patch(export["id"], change)
    assert patched.status_code == 200, patched.text
    shown = api.get(export["id"])
    assert shown == patched.json()
    for key, value in change.items():
        assert shown[key] == value, key
    assert shown["path"].endswith(".csv") and shown["next_file"].endswith(".csv")
    # An omitted field keeps its value; null clears the fields that may be null.
    assert api.patch(export["id"], {}).json() == shown
    cleared = api.patch(export["id"], {"webhook_url": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["webhook_url"] is None
    assert cleared.json()["format"] == "csv"

    events = [make_event(i) for i in range(40)]
    api.ingest(events)
    run = api.wait_run(export["id"], api.run_now(export["id"]))
    wanted = [e for e in events if e["event_name"] in ("Purchase", "Added To Cart")]
    assert run["events"] == len(wanted) == 20
    [path] = data_files(api.folder("patched"))
    assert path.name.endswith(".csv")  # csv, uncompressed
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["event_uuid"] for r in rows] == [e["event_uuid"] for e in wanted]
    assert all(orjson.loads(r["user_attributes"]).keys() == {"plan"} for r in rows)
    assert all(orjson.loads(r["device_attributes"]) == {} for r in rows)


def test_patch_sets_and_clears_a_pgp_key(api: Api, tmp_path: Path) -> None:
    from tests.unit.test_pgp import make_keyring, stop_agent

    ring = make_keyring(tmp_path / "gnupg")
    try:
        export = api.export(api.destination("pgp"), "pgp")
        assert export["pgp"] is False
        patched = api.patch(export["id"], {"pgp_public_key": ring.public_key})
        assert patched.status_code == 200, patched.text
        assert patched.json()["pgp"] is True
        assert "pgp_public_key" not in patched.json()  # never shown back
        assert patched.json()["path"].endswith(".json.gz.gpg")
        # Another change keeps the stored key (it is not sent again, nor judged again).
        other = api.patch(export["id"], {"compression": "zstd"})
        assert other.status_code == 200, other.text
        assert other.json()["pgp"] is True
        cleared = api.patch(export["id"], {"pgp_public_key": None})
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["pgp"] is False
        assert cleared.json()["path"].endswith(".json.zst")
    finally:
        stop_agent(ring.home)


def test_disable_and_enable(api: Api) -> None:
    export = api.export(api.destination("toggled"), "toggled")
    disabled = api.patch(export["id"], {"status": "disabled"})
    assert disabled.status_code == 200, disabled.text
    assert (disabled.json()["status"], disabled.json()["status_reason"]) == (
        "disabled",
        "disabled by user",
    )
    refused = api.server.client.post(f"/api/v1/exports/{export['id']}/run", headers=api.write)
    assert refused.status_code == 409, refused.text
    enabled = api.patch(export["id"], {"status": "active"})
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["status"], enabled.json()["status_reason"]) == ("active", None)
    api.ingest([make_event(1)])
    assert api.wait_run(export["id"], api.run_now(export["id"]))["events"] >= 1


def test_an_export_whose_destination_was_deleted_cannot_be_enabled(api: Api) -> None:
    destination_id = api.destination("gone")
    export = api.export(destination_id, "orphan")
    deleted = api.server.client.delete(f"/api/v1/destinations/{destination_id}", headers=api.write)
    assert deleted.status_code == 200, deleted.text
    assert api.get(export["id"])["status"] == "disabled"
    for body in ({"status": "active"}, {"frequency": "weekly"}):
        refused = api.patch(export["id"], body)
        assert refused.status_code == 409, f"{body}: {refused.status_code} {refused.text}"
        assert "destination" in refused.json()["message"]
    assert api.get(export["id"])["status"] == "disabled"


# --- list, get, delete ------------------------------------------------------------------------


def test_list_get_and_delete(api: Api) -> None:
    destination_id = api.destination("listed")
    one = api.export(destination_id, "one")
    two = api.export(destination_id, "two")
    listed = api.server.client.get("/api/v1/exports", headers=api.read)
    assert listed.status_code == 200, listed.text
    by_id = {e["id"]: e for e in listed.json()["exports"]}
    assert {one["id"], two["id"]} <= set(by_id)
    assert by_id[one["id"]] == api.get(one["id"])

    # Another project sees none of it.
    other = api.server.credentials()
    for method, path in [
        ("GET", f"/api/v1/exports/{one['id']}"),
        ("PATCH", f"/api/v1/exports/{one['id']}"),
        ("DELETE", f"/api/v1/exports/{one['id']}"),
        ("POST", f"/api/v1/exports/{one['id']}/run"),
        ("GET", f"/api/v1/exports/{one['id']}/runs"),
        ("GET", f"/api/v1/exports/{one['id']}/dead-letters"),
    ]:
        body = {} if method == "PATCH" else None
        answer = api.server.client.request(method, path, json=body, headers=auth(other.write_token))
        assert answer.status_code == 404, f"{method} {path}: {answer.status_code}"
    theirs = api.server.client.get("/api/v1/exports", headers=auth(other.read_token))
    assert theirs.json() == {"exports": []}
    # A read key cannot delete.
    forbidden = api.server.client.delete(f"/api/v1/exports/{one['id']}", headers=api.read)
    assert forbidden.status_code == 403, forbidden.text

    deleted = api.server.client.delete(f"/api/v1/exports/{one['id']}", headers=api.write)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted": True, "id": one["id"]}
    gone = api.server.client.get(f"/api/v1/exports/{one['id']}", headers=api.read)
    assert gone.status_code == 404, gone.text
    after = {
        e["id"]
        for e in api.server.client.get("/api/v1/exports", headers=api.read).json()["exports"]
    }
    assert one["id"] not in after and two["id"] in after
    again = api.server.client.delete(f"/api/v1/exports/{one['id']}", headers=api.write)
    assert again.status_code == 404, again.text
    assert api.patch(one["id"], {"format": "csv"}).status_code == 404
    # The name is free again.
    assert api.export(destination_id, "one")["id"] != one["id"]


# --- run, runs, runs/{id} ---------------------------------------------------------------------


def test_run_now_delivers_and_its_run_is_listed(api: Api) -> None:
    export = api.export(api.destination("ran"), "ran")
    sent = api.ingest([make_event(i) for i in range(25)])
    run_id = api.run_now(export["id"])
    run = api.wait_run(export["id"], run_id)
    assert run["id"] == run_id and run["kind"] == "manual"
    assert run["events"] == 25 and run["bytes"] > 0 and run["error"] is None
    assert run["sequence_range"]["through"] > run["sequence_range"]["after"]
    assert run["started_at"] <= run["finished_at"]
    [path] = data_files(api.folder("ran"))
    assert run["files"] == [path.relative_to(api.folder("ran")).as_posix()]
    assert run["bytes"] == path.stat().st_size
    lines = read_file(path).splitlines()
    assert [orjson.loads(line)["event"]["event_uuid"] for line in lines] == sent

    listed = api.server.client.get(f"/api/v1/exports/{export['id']}/runs", headers=api.read)
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["runs"]] == [run_id]
    assert listed.json()["runs"][0] == run
    # A second run now delivers only what came since.
    more = api.ingest([make_event(i) for i in range(5)])
    second = api.wait_run(export["id"], api.run_now(export["id"]))
    assert second["events"] == len(more)
    assert second["sequence_range"]["after"] == run["sequence_range"]["through"]
    newest = api.server.client.get(
        f"/api/v1/exports/{export['id']}/runs?limit=1", headers=api.read
    ).json()["runs"]
    assert [r["id"] for r in newest] == [second["id"]]

    for query in ("limit=0", "limit=1001", "limit=x"):
        bad = api.server.client.get(
            f"/api/v1/exports/{export['id']}/runs?{query}", headers=api.read
        )
        assert bad.status_code == 422, f"{query}: {bad.status_code}"
    unknown = api.server.client.get(f"/api/v1/exports/{export['id']}/runs/nope", headers=api.read)
    assert unknown.status_code == 404, unknown.text
    # A run is found only under its own export.
    elsewhere = api.export(api.destination("ran-other"), "ran-other")
    crossed = api.server.client.get(
        f"/api/v1/exports/{elsewhere['id']}/runs/{run_id}", headers=api.read
    )
    assert crossed.status_code == 404, crossed.text
    missing = api.server.client.post("/api/v1/exports/nope/run", headers=api.write)
    assert missing.status_code == 404, missing.text
    read_only = api.server.client.post(f"/api/v1/exports/{export['id']}/run", headers=api.read)
    assert read_only.status_code == 403, read_only.text


# --- backfill ---------------------------------------------------------------------------------


def test_backfill_delivers_what_came_before_the_export_once(api: Api) -> None:
    before = api.ingest([make_event(i) for i in range(12)])
    time.sleep(0.01)
    export = api.export(api.destination("backfilled"), "backfilled")
    after = api.ingest([make_event(i) for i in range(7)])
    now = int(time.time())
    path = f"/api/v1/exports/{export['id']}/backfill"
    answer = api.server.client.post(
        path, json={"start": now - 3600, "end": now + 3600}, headers=api.write
    )
    assert answer.status_code == 202, answer.text
    backfill = answer.json()
    assert set(backfill) >= {"run_id", "start", "end", "prefix"}
    assert backfill["start"] == now - 3600
    assert backfill["end"] <= export["created_at"] // 1000 + 1  # cut at the export's creation
    assert backfill["prefix"] == f"backfilled_backfill/{backfill['run_id']}"
    run = api.wait_run(export["id"], backfill["run_id"])
    assert run["kind"] == "backfill"
    folder = api.folder("backfilled") / backfill["prefix"]
    delivered = [
        orjson.loads(line)["event"]["event_uuid"]
        for p in data_files(folder)
        for line in read_file(p).splitlines()
    ]
    # Everything of this project received before the export existed is there, nothing after.
    assert set(before) <= set(delivered)
    assert not set(after) & set(delivered)
    assert len(delivered) == len(set(delivered)) == run["events"]

    # The same range again, or one overlapping it: 409, naming the backfill it overlaps.
    for start, end in [(now - 3600, now + 3600), (now - 60, now + 60)]:
        overlap = api.server.client.post(path, json={"start": start, "end": end}, headers=api.write)
        assert overlap.status_code == 409, overlap.text
        assert backfill["run_id"] in overlap.json()["message"]
    # Before the retention period (90 days by default): 422; a range that is no range: 422.
    for body in (
        {"start": now - 91 * 86_400, "end": now - 90 * 86_400 + 3600},
        {"start": now - 3600, "end": now - 3600},
        {"start": now - 3600},
        {"start": now - 7200, "end": now - 3600, "extra": 1},
    ):
        refused = api.server.client.post(path, json=body, headers=api.write)
        assert refused.status_code == 422, f"{body}: {refused.status_code} {refused.text}"
    missing = api.server.client.post(
        "/api/v1/exports/nope/backfill", json={"start": now - 60, "end": now}, headers=api.write
    )
    assert missing.status_code == 404, missing.text


# --- streams: dead letters, and what a stream cannot do ---------------------------------------


def test_dead_letters_of_a_stream_and_its_409s(api: Api) -> None:
    stream = create_stream(api.moto, shards=1)
    created = api.server.client.post(
        "/api/v1/destinations",
        headers=api.write,
        json={
            "name": "kinesis",
            "kind": "kinesis",
            "config": {"stream": stream, "region": REGION, "endpoint_url": api.moto.endpoint},
            "credentials": {
                "mode": "access_key",
                "access_key_id": api.moto.admin_key,
                "secret_access_key": api.moto.admin_secret,
            },
        },
    )
    assert created.status_code == 201, created.text
    export = api.export(created.json()["id"], "live", frequency="stream")
    small = api.ingest([make_event(i) for i in range(3)])
    [huge] = api.ingest([make_event(9, event_attributes={"blob": "x" * 1_100_000})])
    small += api.ingest([make_event(i) for i in range(2)])
    deadline = time.monotonic() + 60
    while api.get(export["id"])["lag"]["events"] and time.monotonic() < deadline:
        time.sleep(0.1)
    shown = api.get(export["id"])
    assert shown["lag"]["events"] == 0, shown
    assert shown["delivery"]["dead_lettered"] == 1
    assert sorted(event_uuid(d) for _, d in read_stream(api.moto, stream)) == sorted(small)

    letters = api.server.client.get(
        f"/api/v1/exports/{export['id']}/dead-letters", headers=api.read
    )
    assert letters.status_code == 200, letters.text
    [letter] = letters.json()["dead_letters"]
    assert letter["event_uuid"] == huge
    assert letter["bytes"] > 1_048_576
    assert "1,048,576 bytes per record" in letter["reason"]
    assert set(letter) == {"seq", "event_uuid", "bytes", "reason", "created_at"}
    for query in ("limit=0", "limit=1001"):
        bad = api.server.client.get(
            f"/api/v1/exports/{export['id']}/dead-letters?{query}", headers=api.read
        )
        assert bad.status_code == 422, f"{query}: {bad.status_code}"

    # A stream has nothing to run now and no files to backfill into.
    run = api.server.client.post(f"/api/v1/exports/{export['id']}/run", headers=api.write)
    assert run.status_code == 409, run.text
    now = int(time.time())
    backfill = api.server.client.post(
        f"/api/v1/exports/{export['id']}/backfill",
        json={"start": now - 3600, "end": now},
        headers=api.write,
    )
    assert backfill.status_code == 409, backfill.text
    # A file export has no dead letters.
    files = api.export(api.destination("no-letters"), "no-letters")
    none = api.server.client.get(f"/api/v1/exports/{files['id']}/dead-letters", headers=api.read)
    assert none.status_code == 200 and none.json() == {"dead_letters": []}


# --- slow checks stay off the event loop --------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_webhook_host_lookup_does_not_stall_other_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """A write key names a webhook host whose name server answers slowly: while that lookup
    runs, everyone else's requests are answered (request bodies are parsed on the event loop;
    the lookup runs in the request's worker thread)."""
    import threading

    from fastapi.testclient import TestClient

    from spillway import netpolicy
    from spillway.api.app import create_app
    from spillway.secrets import SecretBox
    from spillway.services.projects import Scope, create_key, create_project
    from spillway.settings import Settings

    real = netpolicy._resolve
    looking_up = threading.Event()

    def slow(host: str, port: int) -> list[Any]:
        if host == "slow-dns.example.com":
            looking_up.set()
            time.sleep(3)
            return real("93.184.216.34", port)  # a public address
        return real(host, port)

    monkeypatch.setattr(netpolicy, "_resolve", slow)
    (tmp_path / "local").mkdir()
    monkeypatch.setenv("SPILLWAY_LOCAL_ROOT", str(tmp_path / "local"))
    settings = Settings(data_dir=tmp_path)
    app = create_app(settings)
    engine = app.state.context.engine
    create_project(engine, "acme")
    token = create_key(engine, SecretBox(settings.service_key()), "acme", Scope.WRITE).token
    headers = {"Authorization": f"Bearer {token}"}
    hook = "https://slow-dns.example.com/hook"
    answers: list[int] = []
    with TestClient(app) as client:
        body: dict[str, Any] = {"name": "d", "kind": "local", "config": {"path": "d"}}
        destination = client.post("/api/v1/destinations", json=body, headers=headers).json()
        body = {"name": "e", "destination_id": destination["id"]}
        export = client.post("/api/v1/exports", json=body, headers=headers).json()
        if method == "POST":
            path, body = "/api/v1/exports", {**body, "name": "e2", "webhook_url": hook}
        else:
            path, body = f"/api/v1/exports/{export['id']}", {"webhook_url": hook}
        request = threading.Thread(
            target=lambda: answers.append(
                client.request(method, path, json=body, headers=headers).status_code
            )
        )
        request.start()
        assert looking_up.wait(10), "the webhook's host was never looked up"
        started = time.monotonic()
        health = client.get("/healthz")
        waited = time.monotonic() - started
        request.join(30)
    assert health.status_code == 200
    assert waited < 1.0, f"/healthz waited {waited:.2f}s behind a webhook's DNS lookup"
    assert answers == [201 if method == "POST" else 200]
