"""Named queries for projects, integration keys and the audit log."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from spillway.model import Key, Project
from spillway.store.db import now_ms
from spillway.store.schema import audit_log, integration_keys, projects


def insert_project(
    conn: Connection,
    *,
    app_id: str,
    name: str,
    external_id: str,
    tags: dict[str, str] | None = None,
) -> Project:
    """Create a project; the caller generates the public ids."""
    created = now_ms()
    result = conn.execute(
        projects.insert().values(
            app_id=app_id, name=name, external_id=external_id, created_at=created, tags=tags
        )
    )
    (project_id,) = result.inserted_primary_key or (None,)
    assert project_id is not None
    return Project(int(project_id), app_id, name, external_id, created, dict(tags or {}))


def _project(row: sa.Row[Any] | None) -> Project | None:
    return None if row is None else Project.from_row(row)


def _columns() -> list[sa.Column[Any]]:
    return [
        projects.c.id,
        projects.c.app_id,
        projects.c.name,
        projects.c.external_id,
        projects.c.created_at,
        projects.c.tags,
    ]


def project_by_name(conn: Connection, name: str) -> Project | None:
    """The project called ``name``."""
    return _project(conn.execute(sa.select(*_columns()).where(projects.c.name == name)).first())


def project_by_ref(conn: Connection, ref: str) -> Project | None:
    """A project by its public id or by its name, whichever matches."""
    query = sa.select(*_columns()).where(sa.or_(projects.c.app_id == ref, projects.c.name == ref))
    return _project(conn.execute(query).first())


def project_by_app_id(conn: Connection, app_id: str) -> Project | None:
    """A project by its public id only (a Pinpoint ApplicationId)."""
    query = sa.select(*_columns()).where(projects.c.app_id == app_id)
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
    project_id: int | None,
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


def sealed_secret(conn: Connection, key_id: str) -> bytes | None:
    """The key's secret, sealed with the service key (SigV4 needs the secret itself)."""
    found = conn.execute(
        sa.select(integration_keys.c.secret_sealed).where(integration_keys.c.key_id == key_id)
    ).scalar_one_or_none()
    return None if found is None else bytes(found)


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


def delete_project(conn: Connection, project_id: int) -> None:
    """Remove a project and everything it holds (its audit trail stays), children first."""
    from spillway.store import schema as t

    export_ids = sa.select(t.exports.c.id).where(t.exports.c.project_id == project_id)
    job_ids = sa.select(t.jobs.c.id).where(t.jobs.c.project_id == project_id)
    for table, condition in (
        (t.job_rows, t.job_rows.c.job_id.in_(job_ids)),
        (t.job_pieces, t.job_pieces.c.job_id.in_(job_ids)),
        (t.jobs, t.jobs.c.project_id == project_id),
        (t.dead_letters, t.dead_letters.c.export_id.in_(export_ids)),
        (t.stream_state, t.stream_state.c.export_id.in_(export_ids)),
        (t.runs, t.runs.c.export_id.in_(export_ids)),
        (t.exports, t.exports.c.project_id == project_id),
        (t.destinations, t.destinations.c.project_id == project_id),
        (t.segments, t.segments.c.project_id == project_id),
        (t.endpoints, t.endpoints.c.project_id == project_id),
        (t.events, t.events.c.project_id == project_id),
        (t.integration_keys, t.integration_keys.c.project_id == project_id),
        (t.projects, t.projects.c.id == project_id),
    ):
        conn.execute(table.delete().where(condition))


def last_actor(conn: Connection, project_id: int, target: str) -> str | None:
    """Who last acted on ``target`` (an id) of the project, by the audit log."""
    row = conn.execute(
        sa.select(audit_log.c.actor)
        .where(audit_log.c.project_id == project_id, audit_log.c.target == target)
        .order_by(audit_log.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return None if row is None else str(row)
