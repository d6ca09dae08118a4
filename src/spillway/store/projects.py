"""Named queries for projects, integration keys and the audit log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.model import Key, Project
from spillway.store.db import now_ms
from spillway.store.schema import audit_log, integration_keys, projects


def insert_project(conn: Connection, *, app_id: str, name: str, external_id: str) -> Project:
    """Create a project; the caller generates the public ids."""
    created = now_ms()
    result = conn.execute(
        projects.insert().values(
            app_id=app_id, name=name, external_id=external_id, created_at=created
        )
    )
    (project_id,) = result.inserted_primary_key or (None,)
    assert project_id is not None
    return Project(int(project_id), app_id, name, external_id, created)


def _project(row: sa.Row[Any] | None) -> Project | None:
    return None if row is None else Project.from_row(row)


def _columns() -> list[sa.Column[Any]]:
    return [
        projects.c.id,
        projects.c.app_id,
        projects.c.name,
        projects.c.external_id,
        projects.c.created_at,
    ]


def project_by_name(conn: Connection, name: str) -> Project | None:
    """The project called ``name``."""
    return _project(conn.execute(sa.select(*_columns()).where(projects.c.name == name)).first())


def project_by_ref(conn: Connection, ref: str) -> Project | None:
    """A project by its public id or by its name, whichever matches."""
    query = sa.select(*_columns()).where(sa.or_(projects.c.app_id == ref, projects.c.name == ref))
    return _project(conn.execute(query).first())


def project_by_id(conn: Connection, project_id: int) -> Project | None:
    """A project by its internal id."""
    query = sa.select(*_columns()).where(projects.c.id == project_id)
    return _project(conn.execute(query).first())


def list_projects(conn: Connection) -> list[Project]:
    """Every project, oldest first."""
    rows = conn.execute(sa.select(*_columns()).order_by(projects.c.id)).all()
    return [Project.from_row(row) for row in rows]


def insert_key(
    conn: Connection,
    *,
    key_id: str,
    project_id: int,
    scope: str,
    secret_hash: str,
    secret_sealed: bytes,
    name: str | None = None,
) -> None:
    """Store a new integration key (hash and sealed secret only)."""
    conn.execute(
        integration_keys.insert().values(
            key_id=key_id,
            project_id=project_id,
            scope=scope,
            name=name,
            secret_hash=secret_hash,
            secret_sealed=secret_sealed,
            created_at=now_ms(),
        )
    )


def key_by_id(conn: Connection, key_id: str) -> Key | None:
    """The key with this id, revoked or not."""
    row = conn.execute(
        sa.select(
            integration_keys.c.key_id,
            integration_keys.c.project_id,
            integration_keys.c.scope,
            integration_keys.c.secret_hash,
            integration_keys.c.revoked_at,
        ).where(integration_keys.c.key_id == key_id)
    ).first()
    return None if row is None else Key.from_row(row)


def list_keys(conn: Connection, project_id: int) -> list[Key]:
    """A project's keys, oldest first: what identifies them, never the secret or its hash
    (``secret_hash`` is left empty)."""
    rows = conn.execute(
        sa.select(
            integration_keys.c.key_id,
            integration_keys.c.project_id,
            integration_keys.c.scope,
            integration_keys.c.name,
            integration_keys.c.created_at,
            integration_keys.c.revoked_at,
        )
        .where(integration_keys.c.project_id == project_id)
        .order_by(integration_keys.c.created_at, integration_keys.c.key_id)
    )
    return [Key.from_row(row) for row in rows]


def revoke_key(conn: Connection, key_id: str) -> bool:
    """Mark a key revoked; True when it existed and was live."""
    result = conn.execute(
        integration_keys.update()
        .where(integration_keys.c.key_id == key_id, integration_keys.c.revoked_at.is_(None))
        .values(revoked_at=now_ms())
    )
    return result.rowcount > 0


def record_audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    project_id: int | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append to the audit log. Callers must not pass secrets in ``detail``."""
    conn.execute(
        audit_log.insert().values(
            at=now_ms(),
            project_id=project_id,
            actor=actor,
            action=action,
            target=target,
            detail=detail or {},
        )
    )
