"""Bad input is a 4xx with a reason, never a 500, and never poisons what later reads show.

Against a real ``spillway serve`` (SQLite): deep nesting, lone surrogates, out-of-range
backfills, oversized or bad PGP keys, and stored credentials the service key no longer opens.
Rows that older versions let in are written straight into the database, then read back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
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

MAX_DEPTH = 32  # documented in docs/api.md
LONE = "\\ud800"  # a lone surrogate, as JSON spells it (valid JSON, no valid Unicode)
KEY_A = "a" * 48
KEY_B = "b" * 48


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Credentials]]:
    root = tmp_path_factory.mktemp("bad-input")
    (root / "local").mkdir()
    factory = ServerFactory(root)
    server = factory(extra_env={"SPILLWAY_LOCAL_ROOT": str(root / "local")})
    try:
        yield server, server.credentials()
    finally:
        factory.stop_all()


def send(server: Server, method: str, path: str, token: str, raw: str | bytes) -> httpx.Response:
    """A request with a raw JSON body (so it can hold escapes json.dumps never writes)."""
    body = raw.encode() if isinstance(raw, str) else raw
    headers = {**auth(token), "Content-Type": "application/json"}
    with server.fresh_client() as client:  # a 500 may drop the connection
        return client.request(method, path, content=body, headers=headers)


def no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json")


def destination(server: Server, creds: Credentials, name: str, kind: str = "s3") -> str:
    """A destination stored without validation (nothing here writes to it)."""
    body: dict[str, Any] = {"name": name, "kind": kind, "config": {"path": name}}
    if kind == "s3":
        body.update(
            config={"bucket": f"spw-{name}", "folder": "f"},
            credentials={
                "mode": "access_key",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            },
            force=True,
        )
    created = server.client.post("/api/v1/destinations", json=body, headers=auth(creds.write_token))
    assert created.status_code == 201, created.text
    identifier: str = created.json()["id"]
    return identifier


def export(server: Server, creds: Credentials, destination_id: str, name: str) -> str:
    body = {"name": name, "destination_id": destination_id, "frequency": "daily"}
    created = server.client.post("/api/v1/exports", json=body, headers=auth(creds.write_token))
    assert created.status_code == 201, created.text
    identifier: str = created.json()["id"]
    return identifier


def lists_answer(server: Server, creds: Credentials) -> None:
    """Every list (and every item in it) still answers 200 with JSON."""
    for path in ("/api/v1/endpoints", "/api/v1/destinations", "/api/v1/exports"):
        with server.fresh_client() as client:
            listed = client.get(path, headers=auth(creds.read_token))
        assert listed.status_code == 200, f"{path}: {listed.status_code} {listed.text}"
        for item in next(iter(listed.json().values())):
            one = f"{path}/{item.get('endpoint_id') or item['id']}"
            with server.fresh_client() as client:
                got = client.get(one, headers=auth(creds.read_token))
            assert got.status_code == 200, f"{one}: {got.status_code} {got.text}"


# --- deep nesting -------------------------------------------------------------------------


def test_deeply_nested_events_are_rejected_one_by_one(api: tuple[Server, Credentials]) -> None:
    server, creds = api
    fits = "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2)  # + the event and its map
    events = [
        orjson.dumps(make_event(0)).decode(),
        orjson.dumps(make_event(1, event_attributes={"x": orjson.Fragment(fits)})).decode(),
        orjson.dumps(make_event(2, user_attributes={"x": [orjson.Fragment(fits)]})).decode(),
        # 300 levels once passed the check and failed to encode: a 500 for the whole batch.
        orjson.dumps(
            make_event(3, event_attributes={"x": orjson.Fragment("[" * 300 + "]" * 300)})
        ).decode(),
        orjson.dumps(
            make_event(4, device_attributes={"x": orjson.Fragment("[" * 1000 + "]" * 1000)})
        ).decode(),
    ]
    response = send(server, "POST", "/api/v1/events", creds.write_token, f"[{','.join(events)}]")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [2, 3, 4]
    for rejection in answer["rejected"]:
        assert f"deeper than {MAX_DEPTH} levels" in rejection["reason"]


# --- lone surrogates ----------------------------------------------------------------------

SURROGATE_BODIES = [
    # (method, path, body, the field the answer must name)
    ("PUT", "/api/v1/endpoints/ep-s1", '{"attributes": {"plan": ["%s"]}}', "attributes.plan[0]"),
    ("PUT", "/api/v1/endpoints/ep-s2", '{"attributes": {"p%s": ["x"]}}', "a key of attributes"),
    ("PUT", "/api/v1/endpoints/ep-s3", '{"user_attributes": {"a": "%s"}}', "user_attributes.a"),
    ("PUT", "/api/v1/endpoints/ep-s4", '{"demographic": {"make": "%s"}}', "demographic.make"),
    ("PUT", "/api/v1/endpoints/ep-s5", '{"location": {"city": "%s"}}', "location.city"),
    ("PUT", "/api/v1/endpoints/ep-s6", '{"user_id": "u%s"}', "user_id"),
    ("PUT", "/api/v1/endpoints", '{"endpoints": [{"endpoint_id": "e%s"}]}', "endpoint_id"),
    (
        "POST",
        "/api/v1/destinations",
        '{"name": "d%s", "kind": "local", "config": {"path": "s"}}',
        "name",
    ),
    (
        "POST",
        "/api/v1/destinations",
        '{"name": "s1", "kind": "local", "config": {"path": "s", "folder": "f%s"}}',
        "config.folder",
    ),
    (
        "POST",
        "/api/v1/destinations/validate",
        '{"kind": "s3", "config": {"bucket": "b%s"}}',
        "config.bucket",
    ),
    (
        "POST",
        "/api/v1/destinations",
        '{"name": "s2", "kind": "s3", "config": {"bucket": "bucket"}, "credentials": '
        '{"mode": "access_key", "access_key_id": "AKIAIOSFODNN7EXAMPLE", '
        '"secret_access_key": "s%s0123456789abcdefghij"}}',
        "credentials.secret_access_key",
    ),
    ("PATCH", "/api/v1/destinations/{destination}", '{"name": "n%s"}', "name"),
    ("PATCH", "/api/v1/destinations/{destination}", '{"config": {"folder": "%s"}}', "folder"),
    (
        "PUT",
        "/api/v1/destinations/{destination}/credentials",
        '{"mode": "none%s"}',
        "credentials.mode",
    ),
    (
        "POST",
        "/api/v1/exports",
        '{"name": "e1", "destination_id": "{destination}", "events": ["a%s"]}',
        "events[0]",
    ),
    (
        "POST",
        "/api/v1/exports",
        '{"name": "e2", "destination_id": "{destination}", "user_attributes": ["%s"]}',
        "user_attributes[0]",
    ),
    ("PATCH", "/api/v1/exports/{export}", '{"events": ["ok", "%s"]}', "events[1]"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), SURROGATE_BODIES)
def test_lone_surrogates_are_refused_naming_the_field(
    api: tuple[Server, Credentials],
    targets: dict[str, str],
    method: str,
    path: str,
    body: str,
    field: str,
) -> None:
    server, creds = api
    ids = targets
    path = path.replace("{destination}", ids["destination"]).replace("{export}", ids["export"])
    body = (body % LONE).replace("{destination}", ids["destination"])
    response = send(server, method, path, creds.write_token, body)
    assert response.status_code == 422, f"{response.status_code}: {response.text}"
    message = response.json()["message"]
    assert field in message and "surrogate" in message, message
    lists_answer(server, creds)


@pytest.fixture(scope="module")
def targets(api: tuple[Server, Credentials]) -> dict[str, str]:
    """One destination and export on the module's server, for the calls that take their ids."""
    server, creds = api
    destination_id = destination(server, creds, "surrogates")
    return {"destination": destination_id, "export": export(server, creds, destination_id, "t")}


def test_rows_stored_with_surrogates_are_still_read(api: tuple[Server, Credentials]) -> None:
    """What older versions stored (every read of it answered 500) is shown with U+FFFD."""
    server, creds = api
    destination_id = destination(server, creds, "stored-bad")
    export_id = export(server, creds, destination_id, "stored-bad")
    put = server.client.put(
        "/api/v1/endpoints/stored-bad",
        json={"channel_type": "SMS"},
        headers=auth(creds.write_token),
    )
    assert put.status_code == 200, put.text
    with closing(sqlite3.connect(db_path(server.data_dir), timeout=30)) as conn, conn:
        conn.execute(
            "update endpoints set attributes = ?, demographic = ? where endpoint_id = ?",
            ('{"plan": ["\\ud800"], "k\\udfff": ["v"]}', '{"make": "\\udc00"}', "stored-bad"),
        )
        conn.execute(
            "update destinations set config = ? where id = ?",
            ('{"path": "stored-bad", "folder": "f\\ud800"}', destination_id),
        )
        settings = conn.execute("select settings from exports where id = ?", (export_id,))
        stored = json.loads(settings.fetchone()[0])
        stored["events"] = ["\ud800"]
        # json.dumps escapes the lone surrogate as \ud800, as SQLAlchemy stored such values.
        conn.execute(
            "update exports set settings = ? where id = ?", (json.dumps(stored), export_id)
        )
    lists_answer(server, creds)
    got = server.client.get("/api/v1/endpoints/stored-bad", headers=auth(creds.read_token))
    assert got.json()["attributes"]["plan"] == ["\ufffd"]
    shown = server.client.get(f"/api/v1/exports/{export_id}", headers=auth(creds.read_token))
    assert shown.json()["events"] == ["\ufffd"]


# --- NUL in the URL -----------------------------------------------------------------------

NUL_URLS = [
    ("GET", "/api/v1/destinations/a%00b"),
    ("POST", "/api/v1/destinations/a%00b/validate"),
    ("GET", "/api/v1/exports/a%00b"),
    ("GET", "/api/v1/exports/a%00b/runs/c%00"),
    ("GET", "/api/v1/endpoints?user_id=u%00"),
    ("GET", "/api/v1/endpoints?after=%00"),
    ("GET", "/api/v1/endpoints/e%00"),
]


def check_nul_urls(server: Server, creds: Credentials) -> None:
    for method, url in NUL_URLS:
        with server.fresh_client() as client:
            response = client.request(method, url, headers=auth(creds.write_token))
        assert response.status_code == 400, f"{method} {url}: {response.status_code}"
        assert "NUL" in response.json()["message"]


def test_nul_in_the_url_is_400(api: tuple[Server, Credentials]) -> None:
    check_nul_urls(*api)


@pytest.mark.postgres
def test_nul_in_the_url_is_400_on_postgresql(pg_server: Server, pg_creds: Credentials) -> None:
    # PostgreSQL text cannot hold NUL: every lookup with %00 in an id or a filter answered 500.
    check_nul_urls(pg_server, pg_creds)


# --- backfill -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (10**30, 10**30 + 1),
        (0, 10**30),
        (-1, 100),
        (2**63, 2**63 + 10),
        (1_700_000_100, 1_700_000_000),  # start after end
        (1_700_000_000, 1_700_000_000),
    ],
)
def test_backfill_out_of_range_is_422(
    api: tuple[Server, Credentials], targets: dict[str, str], start: int, end: int
) -> None:
    server, creds = api
    ids = targets
    body = f'{{"start": {start}, "end": {end}}}'
    response = send(
        server, "POST", f"/api/v1/exports/{ids['export']}/backfill", creds.write_token, body
    )
    assert response.status_code == 422, f"{response.status_code}: {response.text}"
    lists_answer(server, creds)


# --- PGP keys -----------------------------------------------------------------------------

ARMOR = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{}\n-----END PGP PUBLIC KEY BLOCK-----\n"


@pytest.mark.parametrize(
    ("key", "words"),
    [
        (ARMOR.format("A" * 200_000), "64 KiB"),  # 1 MiB was allowed, and went to gpg
        (ARMOR.format("A" * 66_000), "64 KiB"),
        (ARMOR.format("bm9uc2Vuc2U="), "not an ASCII-armored OpenPGP public key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake user@host", "not an ASCII-armored"),
    ],
)
def test_bad_pgp_keys_are_422_quickly(
    api: tuple[Server, Credentials], targets: dict[str, str], key: str, words: str
) -> None:
    server, creds = api
    ids = targets
    body = {"name": "pgp", "destination_id": ids["destination"], "pgp_public_key": key}
    started = time.monotonic()
    with server.fresh_client() as client:
        response = client.post("/api/v1/exports", json=body, headers=auth(creds.write_token))
    elapsed = time.monotonic() - started
    assert response.status_code == 422, response.text
    assert words in response.json()["message"]
    assert elapsed < 2.0, f"{elapsed:.2f}s"
    patched = server.client.patch(
        f"/api/v1/exports/{ids['export']}",
        json={"pgp_public_key": key},
        headers=auth(creds.write_token),
    )
    assert patched.status_code == 422, patched.text
    assert words in patched.json()["message"]


def test_pgp_key_check_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While gpg reads one project's key, everyone else's requests are answered."""
    from fastapi.testclient import TestClient

    import spillway.engine.pgp as pgp
    from spillway.api.app import create_app
    from spillway.secrets import SecretBox
    from spillway.services import exports as exports
    from spillway.services.projects import Scope, create_key, create_project
    from spillway.settings import Settings

    real = pgp.inspect_public_key
    entered = threading.Event()

    def slow(text: str, **kwargs: Any) -> dict[str, str]:
        entered.set()
        time.sleep(3)  # a big key, a slow disk, a loaded machine
        return real(text, **kwargs)

    monkeypatch.setattr(pgp, "inspect_public_key", slow)
    monkeypatch.setattr(exports, "inspect_public_key", slow, raising=False)
    settings = Settings(data_dir=tmp_path)
    app = create_app(settings)
    engine = app.state.context.engine
    create_project(engine, "acme")
    token = create_key(engine, SecretBox(settings.service_key()), "acme", Scope.WRITE).token
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        # The key is checked before the destination is looked up: no destination needed.
        body = {"name": "e", "destination_id": "nope", "pgp_public_key": ARMOR.format("x")}
        slow_request = threading.Thread(
            target=lambda: client.post("/api/v1/exports", json=body, headers=headers)
        )
        slow_request.start()
        assert entered.wait(10)
        started = time.monotonic()
        health = client.get("/healthz")
        waited = time.monotonic() - started
        slow_request.join(30)
    assert health.status_code == 200
    assert waited < 1.0, f"/healthz waited {waited:.2f}s behind a PGP key check"


# --- credentials the service key no longer opens ------------------------------------------


def test_unreadable_credentials_are_409_until_rotated(
    start_spillway: ServerFactory, tmp_path: Path
) -> None:
    (tmp_path / "local").mkdir()
    local = {"SPILLWAY_LOCAL_ROOT": str(tmp_path / "local")}
    first = start_spillway(extra_env={**local, "SPILLWAY_SECRET_KEY": KEY_A})
    creds = first.credentials()
    destination_id = destination(first, creds, "keyed", "local")
    export_id = export(first, creds, destination_id, "keyed")
    data_dir = first.data_dir
    first.stop()

    # The operator lost (or changed) SPILLWAY_SECRET_KEY: the sealed credentials do not open.
    env = {**local, "SPILLWAY_SECRET_KEY": KEY_B}
    server = start_spillway(data_dir, extra_env=env, worker=True)
    path = f"/api/v1/destinations/{destination_id}"
    write = auth(creds.write_token)
    for method, url, body in [
        ("POST", f"{path}/validate", None),
        ("PATCH", path, {"config": {"folder": "elsewhere"}}),
        ("PATCH", path, {"name": "renamed", "force": True}),
    ]:
        with server.fresh_client() as client:
            response = client.request(method, url, json=body, headers=write)
        assert response.status_code == 409, (
            f"{method} {url}: {response.status_code} {response.text}"
        )
        message = response.json()["message"]
        assert "cannot be decrypted with this server's service key" in message
        assert "SPILLWAY_SECRET_KEY" in message and f"PUT {path}/credentials" in message
    assert server.client.get(path, headers=auth(creds.read_token)).status_code == 200
    # The worker fails the export's run with the same reason (and keeps serving the others).
    assert server.client.post("/api/v1/events", json=[make_event(0)], headers=write).is_success
    failed = run_to_end(server, creds, export_id)
    assert failed["status"] == "failed", failed
    assert "cannot be decrypted" in failed["error"], failed
    shown = server.client.get(f"/api/v1/exports/{export_id}", headers=auth(creds.read_token))
    assert shown.json()["status"] == "failing", shown.text

    # Rotation replaces what cannot be read, and everything works again.
    rotated = server.client.put(f"{path}/credentials", json={"mode": "none"}, headers=write)
    assert rotated.status_code == 200, rotated.text
    validated = server.client.post(f"{path}/validate", headers=write)
    assert validated.status_code == 200 and validated.json()["ok"] is True, validated.text
    assert run_to_end(server, creds, export_id)["status"] == "succeeded"

    # A damaged sealed blob is the same case.
    with closing(sqlite3.connect(db_path(data_dir), timeout=30)) as conn, conn:
        conn.execute(
            "update destinations set credentials_sealed = ? where id = ?",
            (b"s1:000000000000:" + b"\x00" * 40, destination_id),
        )
    with server.fresh_client() as client:
        damaged = client.post(f"{path}/validate", headers=write)
    assert damaged.status_code == 409, damaged.text


def run_to_end(server: Server, creds: Credentials, export_id: str) -> dict[str, Any]:
    """Run an export now and wait for that run to succeed or fail."""
    started = server.client.post(
        f"/api/v1/exports/{export_id}/run", headers=auth(creds.write_token)
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = server.client.get(
            f"/api/v1/exports/{export_id}/runs/{run_id}", headers=auth(creds.read_token)
        )
        assert got.status_code == 200, got.text
        run = got.json()
        if run["status"] in ("succeeded", "failed"):
            return dict(run)
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end within 60 s: {run}")
