"""Projects and integration keys: creation, and verification of bearer tokens."""

from __future__ import annotations

import hashlib
import hmac
import re
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
APP_ID = re.compile(r"[0-9a-f]{32}")


class Scope(StrEnum):
    """What a key may do. Each scope grants a fixed set of capabilities (:data:`GRANTS`);
    a route names the one capability it needs, spelled like the scope that defines it.

    - ``ingest``: send events and upsert endpoints, nothing else (what an app embeds);
    - ``read``: read everything in the project, change nothing (not even ingest);
    - ``write``: ``ingest`` and ``read``, plus destinations, credentials, exports, deletes;
    - ``admin``: everything;
    - ``operator``: bound to no project: account-level Pinpoint calls (create, list, delete
      apps) and every app's calls, on the Pinpoint-compatible API only.
    """

    INGEST = "ingest"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    OPERATOR = "operator"

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
    Scope.ADMIN: frozenset({Scope.INGEST, Scope.READ, Scope.WRITE, Scope.ADMIN}),
    Scope.OPERATOR: frozenset(Scope),
}
# The project id of an operator key's principal: no project has it.
NO_PROJECT = 0


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
    """Who is calling: the key and the project it belongs to (``NO_PROJECT`` for an operator
    key)."""

    key_id: str
    project_id: int
    scope: Scope

    @property
    def operator(self) -> bool:
        return self.scope is Scope.OPERATOR


def hash_secret(secret: str) -> str:
    """SHA-256 is enough here: secrets are 240 random bits, not guessable passwords."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_project(
    engine: Engine, name: str, *, app_id: str | None = None, tags: dict[str, str] | None = None
) -> Project:
    """Create a project with a fresh public id (or ``app_id``: 32 lower-case hex, so that an
    app moved from Pinpoint keeps its ApplicationId) and External ID."""
    if app_id is not None and not APP_ID.fullmatch(app_id):
        raise Invalid("app id", "must be 32 lower-case hexadecimal characters, as Pinpoint's are")
    name = name.strip()
    if not name or len(name) > 200:
        raise Malformed("project name must be 1 to 200 characters")
    reason = text.problem(name)
    if reason is not None:
        raise Invalid("project name", reason)
    with write(engine) as conn:
        if projects.project_by_name(conn, name) is not None:
            raise Conflict(f"a project named {name!r} already exists")
        if app_id is not None and projects.project_by_ref(conn, app_id) is not None:
            raise Conflict(f"a project with id {app_id} already exists")
        row = projects.insert_project(
            conn,
            app_id=app_id or secrets.token_hex(16),
            name=name,
            external_id="spw-" + secrets.token_hex(12),
            tags=tags,
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


def create_operator_key(engine: Engine, box: SecretBox, name: str | None = None) -> IssuedKey:
    """Issue an operator key: bound to no project, for the Pinpoint-compatible API's
    account-level calls and every app's. The secret is returned once, here."""
    key_id, secret = _new_key()
    with write(engine) as conn:
        projects.insert_key(
            conn,
            key_id=key_id,
            project_id=None,
            scope=Scope.OPERATOR.value,
            secret_hash=hash_secret(secret),
            secret_sealed=box.seal(secret.encode(), context=key_id.encode()),
            name=name,
        )
        projects.record_audit(
            conn, actor="cli", action="key.create", target=key_id, detail={"scope": "operator"}
        )
    return IssuedKey("", "", key_id, secret, Scope.OPERATOR)


def _new_key() -> tuple[str, str]:
    key_id = "SPW" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(17))
    secret = secrets.token_urlsafe(30)  # 40 characters, no '.' so the token splits cleanly
    return key_id, secret


def secret_of(engine: Engine, box: SecretBox, key_id: str) -> tuple[Principal, str]:
    """A live key's principal and its secret (for SigV4, which signs with the secret itself),
    or :class:`Forbidden` (as Pinpoint answers an unknown access key)."""
    with engine.connect() as conn:
        key = projects.key_by_id(conn, key_id)
        sealed = projects.sealed_secret(conn, key_id) if key is not None else None
    if key is None or sealed is None:
        raise Forbidden(f"The security token included in the request is invalid (key {key_id!r})")
    if key.revoked_at is not None:
        raise Forbidden(f"integration key {key_id} has been revoked")
    secret = box.open(sealed, context=key_id.encode()).decode()
    return Principal(key.key_id, key.project_id or NO_PROJECT, Scope(key.scope)), secret


def create_key(
    engine: Engine, box: SecretBox, project_ref: str, scope: Scope, name: str | None = None
) -> IssuedKey:
    """Issue a key for a project (by name or id). The secret is returned once, here."""
    if scope is Scope.OPERATOR:
        raise Invalid("scope", "an operator key belongs to no project: create-operator-key")
    key_id, secret = _new_key()
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
    return Principal(row.key_id, row.project_id or NO_PROJECT, Scope(row.scope))


def authenticate(engine: Engine, header: str | None) -> Principal:
    """Turn an ``Authorization`` header into a principal, or raise :class:`Unauthorized`."""
    key_id, secret = parse_bearer(header)
    return verify(engine, key_id, secret)


def require(principal: Principal, needed: Scope) -> None:
    """Raise :class:`Forbidden` unless the principal's scope grants ``needed`` (on the native
    API, which acts on the key's own project: an operator key has none)."""
    if principal.operator:
        raise Forbidden(
            f"integration key {principal.key_id} is an operator key: it acts through the "
            "Pinpoint-compatible API (/v1/apps); use a project's key here"
        )
    if not principal.scope.allows(needed):
        enough = ", ".join(f"'{scope}'" for scope in Scope if scope.allows(needed))
        raise Forbidden(
            f"integration key {principal.key_id} has scope '{principal.scope}', "
            f"this call needs '{needed}' (granted to {enough} keys)"
        )


def delete_project(engine: Engine, actor_name: str, project_id: int) -> None:
    """Delete a project with its events, endpoints, destinations, exports, jobs and keys."""
    with write(engine) as conn:
        projects.delete_project(conn, project_id)
        projects.record_audit(
            conn, actor=actor_name, action="project.delete", target=str(project_id)
        )
