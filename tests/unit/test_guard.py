"""The guard's key checks: looked up once per request at most, good keys kept a few seconds,
bad ones never kept, revocation felt within the cache time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from spillway.api import guard
from spillway.api.app import create_app
from spillway.secrets import SecretBox
from spillway.services.projects import Scope, Unauthorized, create_key, create_project
from spillway.settings import Settings
from spillway.store import projects as q
from spillway.store.db import create_engine, migrate

BOX = SecretBox(b"unit-test-service-key-of-32-bytes-or-more")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path}/db")
    migrate(eng)
    create_project(eng, "demo")
    yield eng
    eng.dispose()


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key id looked up in the database."""
    seen: list[str] = []
    original = q.key_by_id

    def counting(conn: Any, key_id: str) -> Any:
        seen.append(key_id)
        return original(conn, key_id)

    monkeypatch.setattr(q, "key_by_id", counting)
    return seen


def test_a_request_looks_its_key_up_once_and_the_next_ones_not_at_all(
    tmp_path: Path, lookups: list[str]
) -> None:
    settings = Settings(data_dir=tmp_path)
    app = create_app(settings)
    engine = app.state.context.engine
    create_project(engine, "demo")
    key = create_key(engine, BOX, "demo", Scope.INGEST)
    headers = {"Authorization": f"Bearer {key.token}", "Content-Type": "application/json"}
    event = {"event_name": "Open", "uid": "u1"}
    with TestClient(app) as client:
        for _ in range(5):
            answer = client.post("/api/v1/events", content=json.dumps([event]), headers=headers)
            assert answer.status_code == 200, answer.text
        refused = client.get("/api/v1/destinations", headers=headers)
        assert refused.status_code == 403
    assert lookups == [key.key_id]  # the guard's one lookup, reused by the route


def test_bad_tokens_are_never_kept(engine: Engine, lookups: list[str]) -> None:
    key = create_key(engine, BOX, "demo", Scope.WRITE)
    auth = guard.Authenticator(engine)

    async def attempts() -> None:
        for number in range(3):
            with pytest.raises(Unauthorized):
                await auth.principal(f"Bearer {key.key_id}.wrong-secret-{number}")

    asyncio.run(attempts())
    assert lookups == [key.key_id] * 3
    assert auth._cache == {}
    auth.close()


def test_the_cache_is_bounded(engine: Engine) -> None:
    keys = [create_key(engine, BOX, "demo", Scope.INGEST) for _ in range(5)]
    auth = guard.Authenticator(engine, cache_entries=2)

    async def use_all() -> None:
        for key in keys:
            assert (await auth.principal(f"Bearer {key.token}")).key_id == key.key_id

    asyncio.run(use_all())
    assert len(auth._cache) == 2
    auth.close()


def test_a_revoked_key_stops_working_once_its_cache_time_passes(engine: Engine) -> None:
    key = create_key(engine, BOX, "demo", Scope.INGEST)
    auth = guard.Authenticator(engine, cache_seconds=0.3)

    async def scenario() -> None:
        assert (await auth.principal(f"Bearer {key.token}")).scope is Scope.INGEST
        with engine.connect().execution_options(write=True) as conn, conn.begin():
            q.revoke_key(conn, key.key_id)
        await asyncio.sleep(0.4)
        with pytest.raises(Unauthorized, match="revoked"):
            await auth.principal(f"Bearer {key.token}")

    asyncio.run(scenario())
    auth.close()


@pytest.mark.parametrize(
    ("method", "path", "setting"),
    [
        ("POST", "/api/v1/events", "SPILLWAY_MAX_REQUEST_BYTES"),
        ("PUT", "/api/v1/endpoints", "SPILLWAY_MAX_REQUEST_BYTES"),
        ("PUT", "/api/v1/endpoints/abc", "SPILLWAY_MAX_ENDPOINT_BYTES"),
        ("PUT", "/api/v1/endpoints/a/b", "SPILLWAY_MAX_ENDPOINT_BYTES"),
        ("GET", "/api/v1/endpoints/abc", "SPILLWAY_MAX_JSON_BYTES"),
        ("POST", "/api/v1/destinations", "SPILLWAY_MAX_JSON_BYTES"),
        ("PUT", "/api/v1/destinations/x/credentials", "SPILLWAY_MAX_JSON_BYTES"),
        ("POST", "/api/v1/exports/x/backfill", "SPILLWAY_MAX_JSON_BYTES"),
    ],
)
def test_each_route_has_its_body_limit(method: str, path: str, setting: str) -> None:
    settings = Settings(max_request_bytes=3 * 1024 * 1024, max_endpoint_bytes=2048)
    limit = guard.body_limit(settings, method, path)
    assert limit.setting == setting
    expected = {
        "SPILLWAY_MAX_REQUEST_BYTES": 3 * 1024 * 1024,
        "SPILLWAY_MAX_ENDPOINT_BYTES": 2048,
        "SPILLWAY_MAX_JSON_BYTES": 1024 * 1024,
    }[setting]
    assert limit.size == expected
