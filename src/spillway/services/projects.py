"""Projects and integration keys: creation, and verification of bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.engine import Engine

from spillway import text
from spillway.errors import Conflict, Forbidden, Invalid, Malformed, NotFound, Unauthorized
from spillway.model import Project
from spillway.secrets import SecretBox
from spillway.store import projects
from spillway.store.db import write

_KEY_ALPHABET = string.ascii_uppercase + string.digits


class Scope(StrEnum):
    """What a key may do. Each scope grants a fixed set of capabilities (:data:`GRANTS`);
    a route names the one capability it needs, spelled like the scope that defines it.

    - ``ingest``: send events and upsert endpoints, nothing else (what an app embeds);
    - ``read``: read everything in the project, change nothing (not even ingest);
    - ``write``: ``ingest`` and ``read``, plus destinations, credentials, exports, deletes;
    - ``admin``: everything.
    """

    INGEST = "ingest"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def grants(self) -> frozenset[Scope]:
        """The capabilities a key of this scope has."""
        return GRANTS[self]

    def allows(self, needed: Scope) -> bool:
        """True when a key of this scope may perform a call that needs ``needed``."""
        return needed in GRANTS[self]


GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.INGEST: frozenset({Scope.INGEST}),
    Scope.READ: frozenset({Scope.READ}),
    Scope.WRITE: frozenset({Scope.INGEST, Scope.READ, Scope.WRITE}),
    Scope.ADMIN: frozenset(Scope),
}


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly created key; the only object that ever holds the plain secret."""

    project_id: str
    project_name: str
    key_id: str
    secret: str
    scope: Scope

    @property
    def token(self) -> str:
        """The value for ``Authorization: Bearer …``."""
        return f"{self.key_id}.{self.secret}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and the project it belongs to."""

    key_id: str
    project_id: int
    scope: Scope


def hash_secret(secret: str) -> str:
    """SHA-256 is enough here: secrets are 240 random bits, not guessable passwords."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_project(engine: Engine, name: str) -> Project:
    """Create a project with a fresh public id and External ID."""
    name = name.strip()
    if not name or len(name) > 200:
        raise Malformed("project name must be 1 to 200 characters")
    reason = text.problem(name)
    if reason is not None:
        raise Invalid("project name", reason)
    with write(engine) as conn:
        if projects.project_by_name(conn, name) is not None:
            raise Conflict(f"a project named {name!r} already exists")
        row = projects.insert_project(
            conn,
            app_id=secrets.token_hex(16),
            name=name,
            external_id="spw-" + secrets.token_hex(12),
        )
        projects.record_audit(
            conn,
            actor="cli",
            action="project.create",
            project_id=row.id,
            target=row.app_id,
            detail={"name": name},
        )
        return row


def create_key(
    engine: Engine, box: SecretBox, project_ref: str, scope: Scope, name: str | None = None
) -> IssuedKey:
    """Issue a key for a project (by name or id). The secret is returned once, here."""
    key_id = "SPW" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(17))
    secret = secrets.token_urlsafe(30)  # 40 characters, no '.' so the token splits cleanly
    with write(engine) as conn:
        project = projects.project_by_ref(conn, project_ref)
        if project is None:
            raise NotFound(f"no project named or with id {project_ref!r}")
        projects.insert_key(
            conn,
            key_id=key_id,
            project_id=project.id,
            scope=scope.value,
            secret_hash=hash_secret(secret),
            secret_sealed=box.seal(secret.encode(), context=key_id.encode()),
            name=name,
        )
        projects.record_audit(
            conn,
            actor="cli",
            action="key.create",
            project_id=project.id,
            target=key_id,
            detail={"scope": scope.value},
        )
    return IssuedKey(project.app_id, project.name, key_id, secret, scope)


def parse_bearer(header: str | None) -> tuple[str, str]:
    """The key id and secret of an ``Authorization`` header, or :class:`Unauthorized` (no I/O)."""
    if not header:
        raise Unauthorized(
            "missing Authorization header; send 'Authorization: Bearer <key_id>.<secret>'"
        )
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <key_id>.<secret>'")
    key_id, dot, secret = token.strip().partition(".")
    if not dot or not key_id or not secret:
        raise Unauthorized("malformed bearer token; expected '<key_id>.<secret>'")
    return key_id, secret


def verify(engine: Engine, key_id: str, secret: str) -> Principal:
    """Look the key up and check its secret (one indexed query), or :class:`Unauthorized`."""
    with engine.connect() as conn:
        row = projects.key_by_id(conn, key_id)
    if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
        raise Unauthorized("invalid integration key: unknown key id or wrong secret")
    if row.revoked_at is not None:
        raise Unauthorized(f"integration key {key_id} has been revoked")
    return Principal(row.key_id, row.project_id, Scope(row.scope))


def authenticate(engine: Engine, header: str | None) -> Principal:
    """Turn an ``Authorization`` header into a principal, or raise :class:`Unauthorized`."""
    key_id, secret = parse_bearer(header)
    return verify(engine, key_id, secret)


def require(principal: Principal, needed: Scope) -> None:
    """Raise :class:`Forbidden` unless the principal's scope grants ``needed``."""
    if not principal.scope.allows(needed):
        enough = ", ".join(f"'{scope}'" for scope in Scope if scope.allows(needed))
        raise Forbidden(
            f"integration key {principal.key_id} has scope '{principal.scope}', "
            f"this call needs '{needed}' (granted to {enough} keys)"
        )
