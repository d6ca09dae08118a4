"""Unit tests of projects and integration keys on a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from spillway.api.errors import answer_for
from spillway.errors import InputError
from spillway.secrets import SecretBox
from spillway.services.projects import (
    Forbidden,
    IssuedKey,
    Principal,
    Scope,
    Unauthorized,
    authenticate,
    create_key,
    create_project,
    hash_secret,
    require,
)
from spillway.store import projects as q
from spillway.store.db import create_engine, migrate
from spillway.store.schema import integration_keys
from tests.store_queries import sealed_secret

BOX = SecretBox(b"unit-test-service-key-of-32-bytes-or-more")


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path}/db")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def issued(sqlite_engine: Engine) -> IssuedKey:
    create_project(sqlite_engine, "demo")
    return create_key(sqlite_engine, BOX, "demo", Scope.WRITE, name="ci")


def revoke(engine: Engine, key_id: str) -> bool:
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        return q.revoke_key(conn, key_id)


# --- Scope --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("have", "needed", "allowed"),
    [
        # ingest: events and endpoints only, never reads.
        (Scope.INGEST, Scope.INGEST, True),
        (Scope.INGEST, Scope.READ, False),
        (Scope.INGEST, Scope.WRITE, False),
        (Scope.INGEST, Scope.ADMIN, False),
        # read: reads everything and changes nothing, not even by ingesting.
        (Scope.READ, Scope.INGEST, False),
        (Scope.READ, Scope.READ, True),
        (Scope.READ, Scope.WRITE, False),
        (Scope.READ, Scope.ADMIN, False),
        (Scope.WRITE, Scope.INGEST, True),
        (Scope.WRITE, Scope.READ, True),
        (Scope.WRITE, Scope.WRITE, True),
        (Scope.WRITE, Scope.ADMIN, False),
        (Scope.ADMIN, Scope.INGEST, True),
        (Scope.ADMIN, Scope.READ, True),
        (Scope.ADMIN, Scope.WRITE, True),
        (Scope.ADMIN, Scope.ADMIN, True),
    ],
)
def test_scope_grants_a_fixed_set_of_capabilities(
    have: Scope, needed: Scope, allowed: bool
) -> None:
    assert have.allows(needed) is allowed
    assert (needed in have.grants) is allowed


def test_an_ingest_key_is_refused_reads_naming_both_scopes() -> None:
    principal = Principal("SPWAPPKEY", 1, Scope.INGEST)
    require(principal, Scope.INGEST)  # no error
    with pytest.raises(Forbidden) as info:
        require(principal, Scope.READ)
    message = str(info.value)
    assert "has scope 'ingest'" in message
    assert "needs 'read'" in message
    assert "'read', 'write', 'admin'" in message  # which keys would do


def test_ingest_keys_are_issued_and_authenticate(sqlite_engine: Engine) -> None:
    create_project(sqlite_engine, "app")
    issued = create_key(sqlite_engine, BOX, "app", Scope("ingest"))
    principal = authenticate(sqlite_engine, f"Bearer {issued.token}")
    assert principal.scope is Scope.INGEST


def test_require_raises_403_naming_the_needed_scope() -> None:
    principal = Principal("SPWREADONLY", 1, Scope.READ)
    require(principal, Scope.READ)  # no error
    with pytest.raises(Forbidden) as info:
        require(principal, Scope.WRITE)
    assert answer_for(info.value).status == 403
    assert "needs 'write'" in str(info.value)
    assert "SPWREADONLY" in str(info.value)
    assert "'read'" in str(info.value)


# --- projects -----------------------------------------------------------------------------


def test_create_project_issues_public_ids(sqlite_engine: Engine) -> None:
    row = create_project(sqlite_engine, "  shop  ")
    assert row.name == "shop"  # surrounding blanks trimmed
    assert len(row.app_id) == 32
    int(row.app_id, 16)  # hex, the shape of a Pinpoint application id
    assert row.external_id.startswith("spw-")
    other = create_project(sqlite_engine, "blog")
    assert other.app_id != row.app_id
    assert other.external_id != row.external_id


def test_duplicate_project_name_is_a_409(sqlite_engine: Engine) -> None:
    create_project(sqlite_engine, "demo")
    with pytest.raises(InputError) as info:
        create_project(sqlite_engine, " demo ")
    assert answer_for(info.value).status == 409
    assert "'demo' already exists" in str(info.value)
    with sqlite_engine.connect() as conn:
        assert [p.name for p in q.list_projects(conn)] == ["demo"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_project_name_must_be_1_to_200_characters(sqlite_engine: Engine, name: str) -> None:
    with pytest.raises(InputError) as info:
        create_project(sqlite_engine, name)
    assert answer_for(info.value).status == 400


# --- keys ---------------------------------------------------------------------------------


def test_good_token_authenticates_with_project_and_scope(
    sqlite_engine: Engine, issued: IssuedKey
) -> None:
    with sqlite_engine.connect() as conn:
        project = q.project_by_name(conn, "demo")
    assert project is not None
    assert issued.project_id == project.app_id
    assert issued.project_name == "demo"

    principal = authenticate(sqlite_engine, f"Bearer {issued.token}")
    assert principal == Principal(issued.key_id, project.id, Scope.WRITE)


def test_keys_of_two_projects_authenticate_to_their_own_project(sqlite_engine: Engine) -> None:
    one = create_project(sqlite_engine, "one")
    two = create_project(sqlite_engine, "two")
    key_one = create_key(sqlite_engine, BOX, one.app_id, Scope.ADMIN)  # by public id
    key_two = create_key(sqlite_engine, BOX, "two", Scope.READ)  # by name
    assert authenticate(sqlite_engine, f"Bearer {key_one.token}").project_id == one.id
    assert authenticate(sqlite_engine, f"Bearer {key_two.token}").project_id == two.id
    assert authenticate(sqlite_engine, f"Bearer {key_two.token}").scope is Scope.READ


def test_bearer_scheme_is_case_insensitive(sqlite_engine: Engine, issued: IssuedKey) -> None:
    assert authenticate(sqlite_engine, f"bearer {issued.token}").key_id == issued.key_id


def test_token_shape(issued: IssuedKey) -> None:
    assert issued.token == f"{issued.key_id}.{issued.secret}"
    assert issued.key_id.startswith("SPW")
    assert len(issued.key_id) == 20
    assert "." not in issued.secret
    assert len(issued.secret) == 40


def test_key_for_unknown_project_is_a_404(sqlite_engine: Engine) -> None:
    with pytest.raises(InputError) as info:
        create_key(sqlite_engine, BOX, "nope", Scope.READ)
    assert answer_for(info.value).status == 404
    assert "'nope'" in str(info.value)


def test_wrong_secret_is_a_401(sqlite_engine: Engine, issued: IssuedKey) -> None:
    wrong = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    with pytest.raises(Unauthorized) as info:
        authenticate(sqlite_engine, f"Bearer {issued.key_id}.{wrong}")
    assert answer_for(info.value).status == 401
    assert "wrong secret" in str(info.value)


def test_unknown_key_id_is_a_401(sqlite_engine: Engine, issued: IssuedKey) -> None:
    with pytest.raises(Unauthorized) as info:
        authenticate(sqlite_engine, f"Bearer SPWNOSUCHKEY00000000.{issued.secret}")
    assert answer_for(info.value).status == 401


@pytest.mark.parametrize(
    ("header", "hint"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <key_id>.<secret>'"),
        ("Bearer", "must be 'Bearer <key_id>.<secret>'"),
        ("Bearer    ", "must be 'Bearer <key_id>.<secret>'"),
        ("Bearer SPWABCDEF", "malformed bearer token"),
        ("Bearer .secret", "malformed bearer token"),
        ("Bearer SPWABCDEF.", "malformed bearer token"),
    ],
)
def test_unusable_authorization_header_is_a_401_with_a_hint(
    sqlite_engine: Engine, header: str | None, hint: str
) -> None:
    with pytest.raises(Unauthorized) as info:
        authenticate(sqlite_engine, header)
    assert answer_for(info.value).status == 401
    assert hint in str(info.value)


def test_revoked_key_is_refused(sqlite_engine: Engine, issued: IssuedKey) -> None:
    assert authenticate(sqlite_engine, f"Bearer {issued.token}").key_id == issued.key_id
    assert revoke(sqlite_engine, issued.key_id) is True
    with pytest.raises(Unauthorized) as info:
        authenticate(sqlite_engine, f"Bearer {issued.token}")
    assert answer_for(info.value).status == 401
    assert "revoked" in str(info.value)
    assert revoke(sqlite_engine, issued.key_id) is False  # already revoked
    with sqlite_engine.connect() as conn:
        assert sealed_secret(conn, issued.key_id) is None


def test_revoking_one_key_leaves_the_others_working(sqlite_engine: Engine) -> None:
    create_project(sqlite_engine, "demo")
    first = create_key(sqlite_engine, BOX, "demo", Scope.WRITE)
    second = create_key(sqlite_engine, BOX, "demo", Scope.WRITE)
    revoke(sqlite_engine, first.key_id)
    assert authenticate(sqlite_engine, f"Bearer {second.token}").key_id == second.key_id


def test_stored_row_holds_only_a_hash_and_a_sealed_secret(
    sqlite_engine: Engine, issued: IssuedKey
) -> None:
    with sqlite_engine.connect() as conn:
        row = conn.execute(
            sa.select(integration_keys).where(integration_keys.c.key_id == issued.key_id)
        ).one()
    assert row.secret_hash == hash_secret(issued.secret)
    assert issued.secret not in {str(value) for value in row}
    assert issued.secret.encode() not in row.secret_sealed
    # The sealed copy opens, with the service key and bound to this key id only.
    assert BOX.open(row.secret_sealed, context=issued.key_id.encode()) == issued.secret.encode()
    assert row.scope == "write"
    assert row.name == "ci"


def test_plain_secret_never_reaches_the_database_file(
    sqlite_engine: Engine, issued: IssuedKey, tmp_path: Path
) -> None:
    authenticate(sqlite_engine, f"Bearer {issued.token}")
    sqlite_engine.dispose()  # close connections so everything is on disk
    files = sorted(tmp_path.glob("db*"))  # the database and its -wal / -shm files
    assert files
    data = b"".join(path.read_bytes() for path in files)
    assert issued.key_id.encode() in data  # we are looking at the right bytes
    assert hash_secret(issued.secret).encode() in data
    assert issued.secret.encode() not in data
    assert issued.token.encode() not in data
