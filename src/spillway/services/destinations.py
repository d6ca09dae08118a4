"""Connecting, validating, changing, rotating and deleting destinations.

Validation talks to the real cloud; it runs before anything is stored, and new credentials
replace old ones only once they pass. Every change lands in the audit log, never a secret.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway import validation
from spillway.destinations.base import Check, Needs, Tenant, all_passed, validating
from spillway.errors import Conflict, InputError, Invalid, Malformed, NotFound, TerminalError
from spillway.secrets import SecretBox, SecretUnreadable
from spillway.store import catalog as q
from spillway.store.db import now_ms
from spillway.store.projects import project_by_id, record_audit

DEFAULT_FEATURES = {"read_back": False, "cleanup": False, "test_record": False}


class ValidationFailed(Invalid):
    """Checks failed; the answer carries them so a person can fix what they say."""

    def __init__(self, message: str, checks: list[Check]) -> None:
        super().__init__(None, message)
        self.checks = checks


class CredentialsUnreadable(InputError, TerminalError):
    """The stored credentials do not open with this server's service key.

    A conflict with the server's key for the API; terminal for the engine. Rotating the
    credentials replaces them.
    """

    def __init__(self, destination_id: str) -> None:
        super().__init__(
            "the stored credentials cannot be decrypted with this server's service key "
            "(SPILLWAY_SECRET_KEY changed?): rotate the credentials with "
            f"PUT /api/v1/destinations/{destination_id}/credentials"
        )


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: a key id (API) or 'cli'/'ui', and their project."""

    name: str
    project_id: int


def needs(features: dict[str, Any]) -> Needs:
    """The operations a destination's features rely on."""
    cleanup = bool(features.get("cleanup"))
    return Needs(
        read=bool(features.get("read_back")),
        list=cleanup,
        delete=cleanup,
        test_record=bool(features.get("test_record")),
    )


def _features(raw: dict[str, Any] | None) -> dict[str, bool]:
    features = dict(DEFAULT_FEATURES)
    for key, value in (raw or {}).items():
        if key not in DEFAULT_FEATURES:
            raise Malformed(f"unknown feature {key!r}; known: {', '.join(DEFAULT_FEATURES)}")
        if not isinstance(value, bool):
            raise Malformed(f"feature {key} must be true or false")
        features[key] = value
    return features


def tenant_of(engine: Engine, project_id: int) -> Tenant:
    """The project as its destinations see it."""
    with engine.connect() as conn:
        project = project_by_id(conn, project_id)
    if project is None:
        raise NotFound("project not found")
    return Tenant(project.app_id, project.name, project.external_id)


def check(
    engine: Engine,
    project_id: int,
    kind: str,
    config: dict[str, Any],
    credentials: dict[str, Any],
    features: dict[str, Any] | None = None,
) -> list[Check]:
    """Validate a destination that is not stored (the form's "Validate" button)."""
    tenant = tenant_of(engine, project_id)
    parsed = registry.parse(kind, config, credentials, tenant)
    return _run(parsed, tenant, _features(features))


def _run(parsed: registry.Parsed, tenant: Tenant, features: dict[str, bool]) -> list[Check]:
    """Validate in the validation pool (per-project limit, hard deadline): a destination
    that never answers holds neither this request nor the threads that serve others."""

    def work() -> list[Check]:
        with validating():
            store = registry.build(parsed, tenant)
            try:
                return store.validate(needs(features))
            finally:
                store.close()

    return validation.run(tenant.app_id, work)


def _summary(checks: list[Check]) -> str:
    failed = [c for c in checks if c.status.value == "failed"]
    if not failed:
        return "all checks passed"
    return "validation failed: " + "; ".join(f"{c.name}: {c.message}" for c in failed)


def _validation_record(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all_passed(checks), "at": now_ms(), "checks": [c.as_dict() for c in checks]}


def create(
    engine: Engine,
    box: SecretBox,
    actor: Actor,
    body: dict[str, Any],
) -> tuple[dict[str, Any], list[Check]]:
    """Validate (unless forced) and store a destination; returns its row and the checks."""
    name = str(body.get("name") or "").strip()
    if not name or len(name) > 200:
        raise Malformed("name must be 1 to 200 characters")
    kind = str(body.get("kind") or "")
    tenant = tenant_of(engine, actor.project_id)
    parsed = registry.parse(kind, body.get("config") or {}, body.get("credentials") or {}, tenant)
    features = _features(body.get("features"))
    with engine.connect() as conn:
        if q.destination_by_name(conn, actor.project_id, name) is not None:
            raise Conflict(f"a destination named {name!r} already exists")
    checks: list[Check] = []
    if not body.get("force"):
        checks = _run(parsed, tenant, features)
        if not all_passed(checks):
            raise ValidationFailed(_summary(checks), checks)
    destination_id = uuid.uuid4().hex
    values = {
        "id": destination_id,
        "project_id": actor.project_id,
        "name": name,
        "kind": kind,
        "config": parsed.config.model_dump(mode="json"),
        "features": features,
        "credentials_sealed": _seal(box, destination_id, parsed),
        "credentials_public": registry.public_credentials(parsed),
        "credentials_version": 1,
        "status": "active",
        "last_validation": _validation_record(checks) if checks else None,
        "validated_at": now_ms() if checks else None,
    }
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        q.insert_destination(conn, values)
        record_audit(
            conn,
            actor=actor.name,
            action="destination.create",
            project_id=actor.project_id,
            target=destination_id,
            detail={"name": name, "kind": kind, "forced": bool(body.get("force"))},
        )
        row = q.destination(conn, actor.project_id, destination_id)
    assert row is not None
    return row, checks


def _seal(box: SecretBox, destination_id: str, parsed: registry.Parsed) -> bytes:
    secret = parsed.credentials.model_dump(mode="python")
    return box.seal_json(_plain(secret), context=destination_id.encode())


def _plain(value: Any) -> Any:
    """Unwrap SecretStr values for sealing (only ever inside the sealed blob)."""
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def get(engine: Engine, project_id: int, destination_id: str) -> dict[str, Any]:
    """A destination row, or 404."""
    with engine.connect() as conn:
        row = q.destination(conn, project_id, destination_id)
    if row is None:
        raise NotFound(f"no destination {destination_id!r} in this project")
    return row


def parsed_of(box: SecretBox, row: dict[str, Any]) -> registry.Parsed:
    """The stored destination's models, credentials unsealed (for building a store)."""
    try:
        credentials = box.open_json(row["credentials_sealed"], context=row["id"].encode())
    except SecretUnreadable as exc:
        raise CredentialsUnreadable(row["id"]) from exc
    if not isinstance(credentials, dict):  # opened, but not what was sealed: damaged
        raise CredentialsUnreadable(row["id"])
    return registry.parse(row["kind"], row["config"], credentials, stored=True)


def open_store(engine: Engine, box: SecretBox, row: dict[str, Any]) -> Any:
    """A live store for a stored destination (the engine calls this at the start of a run)."""
    return registry.build(parsed_of(box, row), tenant_of(engine, row["project_id"]))


def validate_stored(
    engine: Engine, box: SecretBox, actor: Actor, destination_id: str
) -> list[Check]:
    """Re-run the checks of a stored destination and record the outcome and status."""
    row = get(engine, actor.project_id, destination_id)
    checks = _run(parsed_of(box, row), tenant_of(engine, actor.project_id), row["features"])
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        q.update_destination(
            conn,
            destination_id,
            {
                "last_validation": _validation_record(checks),
                "validated_at": now_ms(),
                "status": "active" if all_passed(checks) else "failing",
            },
        )
        if all_passed(checks):
            q.retry_exports_now(conn, destination_id)
    return checks


def update(
    engine: Engine, box: SecretBox, actor: Actor, destination_id: str, body: dict[str, Any]
) -> tuple[dict[str, Any], list[Check]]:
    """Change where a destination writes (and its name or features); re-validates first."""
    row = get(engine, actor.project_id, destination_id)
    allowed = registry.capabilities(row["kind"]).updatable
    changes = body.get("config") or {}
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise Malformed(
            f"cannot change {', '.join(unknown)} of a {row['kind']} destination; changeable: "
            f"{', '.join(allowed)}. To change provider, create a new destination, then delete "
            "this one"
        )
    config = {**row["config"], **changes}
    features = _features({**row["features"], **(body.get("features") or {})})
    current = parsed_of(box, row)
    tenant = tenant_of(engine, actor.project_id)
    parsed = registry.parse(
        row["kind"], config, _plain(current.credentials.model_dump(mode="python")), tenant
    )
    name = str(body.get("name") or row["name"]).strip()
    checks: list[Check] = []
    if not body.get("force"):
        checks = _run(parsed, tenant, features)
        if not all_passed(checks):
            raise ValidationFailed(_summary(checks), checks)
    values: dict[str, Any] = {
        "name": name,
        "config": parsed.config.model_dump(mode="json"),
        "features": features,
    }
    if checks:
        values.update(
            last_validation=_validation_record(checks), validated_at=now_ms(), status="active"
        )
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        q.update_destination(conn, destination_id, values)
        q.retry_exports_now(conn, destination_id)
        record_audit(
            conn,
            actor=actor.name,
            action="destination.update",
            project_id=actor.project_id,
            target=destination_id,
            detail={"config": sorted(changes), "name": name},
        )
        updated = q.destination(conn, actor.project_id, destination_id)
    assert updated is not None
    return updated, checks


def rotate(
    engine: Engine, box: SecretBox, actor: Actor, destination_id: str, credentials: dict[str, Any]
) -> tuple[dict[str, Any], list[Check]]:
    """Validate new credentials and swap them in; the old ones stay if any check fails.

    Runs already in flight built their clients from the old credentials and finish with them.
    """
    row = get(engine, actor.project_id, destination_id)
    tenant = tenant_of(engine, actor.project_id)
    parsed = registry.parse(row["kind"], row["config"], credentials, tenant)
    checks = _run(parsed, tenant, row["features"])
    if not all_passed(checks):
        raise ValidationFailed(
            "the new credentials were not saved; the old ones stay in use. " + _summary(checks),
            checks,
        )
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        q.update_destination(
            conn,
            destination_id,
            {
                "credentials_sealed": _seal(box, destination_id, parsed),
                "credentials_public": registry.public_credentials(parsed),
                "credentials_version": row["credentials_version"] + 1,
                "last_validation": _validation_record(checks),
                "validated_at": now_ms(),
                "status": "active",
            },
        )
        q.retry_exports_now(conn, destination_id)  # failing exports catch up right away
        record_audit(
            conn,
            actor=actor.name,
            action="destination.rotate_credentials",
            project_id=actor.project_id,
            target=destination_id,
            detail={
                "mode": registry.public_credentials(parsed).get("mode"),
                "version": row["credentials_version"] + 1,
            },
        )
        updated = q.destination(conn, actor.project_id, destination_id)
    assert updated is not None
    return updated, checks


def delete(engine: Engine, actor: Actor, destination_id: str) -> list[dict[str, str]]:
    """Delete a destination and disable every export that used it; returns those exports."""
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        row = q.destination(conn, actor.project_id, destination_id)
        if row is None:
            raise NotFound(f"no destination {destination_id!r} in this project")
        using = q.exports_using(conn, destination_id)
        reason = f"destination {row['name']!r} was deleted"
        q.disable_exports(conn, [e["id"] for e in using], reason)
        q.delete_destination(conn, destination_id)
        record_audit(
            conn,
            actor=actor.name,
            action="destination.delete",
            project_id=actor.project_id,
            target=destination_id,
            detail={"name": row["name"], "disabled_exports": [e["id"] for e in using]},
        )
    return [{"id": e["id"], "name": e["name"], "status": "disabled"} for e in using]


def status_reason(row: dict[str, Any]) -> str | None:
    """Why a destination is ``failing``: the failed checks of its last validation, or what an
    export found (credentials refused), recorded the same way. None when it is not failing."""
    if row["status"] != "failing":
        return None
    checks = (row["last_validation"] or {}).get("checks") or []
    failed = [c for c in checks if c.get("status") == "failed"]
    return "; ".join(f"{c['name']}: {c['message']}" for c in failed) or None


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A destination as the API shows it: masked credentials, never a secret."""
    return {
        "id": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "config": row["config"],
        "credentials": row["credentials_public"],
        "features": row["features"],
        "status": row["status"],
        "status_reason": status_reason(row),
        "credentials_version": row["credentials_version"],
        "last_validation": row["last_validation"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
