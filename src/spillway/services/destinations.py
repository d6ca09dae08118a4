"""Connecting, validating, changing, rotating and deleting destinations.

Validation talks to the real cloud; it runs before anything is stored, and new credentials
replace old ones only once they pass. Every change lands in the audit log, never a secret.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway import validation
from spillway.destinations.base import Check, Needs, Tenant, all_passed, validating
from spillway.engine.targets import parsed_of, tenant_of
from spillway.errors import Conflict, Invalid, Malformed, NotFound
from spillway.model import Actor, Destination, Export
from spillway.secrets import SecretBox
from spillway.store import catalog
from spillway.store.db import now_ms
from spillway.store.projects import record_audit

DEFAULT_FEATURES = {"read_back": False, "cleanup": False, "test_record": False}


class ValidationFailed(Invalid):
    """Checks failed; the answer carries them so a person can fix what they say."""

    def __init__(self, message: str, checks: list[Check]) -> None:
        super().__init__(None, message)
        self.checks = checks


def needs(features: Mapping[str, Any]) -> Needs:
    """The operations a destination's features rely on."""
    cleanup = bool(features.get("cleanup"))
    return Needs(
        read=bool(features.get("read_back")),
        list=cleanup,
        delete=cleanup,
        test_record=bool(features.get("test_record")),
    )


def _features(raw: Mapping[str, Any] | None) -> dict[str, bool]:
    features = dict(DEFAULT_FEATURES)
    for key, value in (raw or {}).items():
        if key not in DEFAULT_FEATURES:
            raise Malformed(f"unknown feature {key!r}; known: {', '.join(DEFAULT_FEATURES)}")
        if not isinstance(value, bool):
            raise Malformed(f"feature {key} must be true or false")
        features[key] = value
    return features


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


def _run(parsed: registry.Parsed, tenant: Tenant, features: Mapping[str, Any]) -> list[Check]:
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
) -> tuple[Destination, list[Check]]:
    """Validate (unless forced) and store a destination; returns it and the checks."""
    name = str(body.get("name") or "").strip()
    if not name or len(name) > 200:
        raise Malformed("name must be 1 to 200 characters")
    kind = str(body.get("kind") or "")
    tenant = tenant_of(engine, actor.project_id)
    parsed = registry.parse(kind, body.get("config") or {}, body.get("credentials") or {}, tenant)
    features = _features(body.get("features"))
    with engine.connect() as conn:
        if catalog.destination_by_name(conn, actor.project_id, name) is not None:
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
        catalog.insert_destination(conn, values)
        record_audit(
            conn,
            actor=actor.name,
            action="destination.create",
            project_id=actor.project_id,
            target=destination_id,
            detail={"name": name, "kind": kind, "forced": bool(body.get("force"))},
        )
        created = catalog.destination(conn, actor.project_id, destination_id)
    assert created is not None
    return created, checks


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


def get(engine: Engine, project_id: int, destination_id: str) -> Destination:
    """A live destination of the project, or 404."""
    with engine.connect() as conn:
        row = catalog.destination(conn, project_id, destination_id)
    if row is None:
        raise NotFound(f"no destination {destination_id!r} in this project")
    return row


def validate_stored(
    engine: Engine, box: SecretBox, actor: Actor, destination_id: str
) -> list[Check]:
    """Re-run the checks of a stored destination and record the outcome and status."""
    row = get(engine, actor.project_id, destination_id)
    checks = _run(parsed_of(box, row), tenant_of(engine, actor.project_id), row.features)
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_destination(
            conn,
            destination_id,
            {
                "last_validation": _validation_record(checks),
                "validated_at": now_ms(),
                "status": "active" if all_passed(checks) else "failing",
            },
        )
        if all_passed(checks):
            catalog.retry_exports_now(conn, destination_id)
    return checks


def update(
    engine: Engine, box: SecretBox, actor: Actor, destination_id: str, body: dict[str, Any]
) -> tuple[Destination, list[Check]]:
    """Change where a destination writes (and its name or features); re-validates first."""
    row = get(engine, actor.project_id, destination_id)
    allowed = registry.capabilities(row.kind).updatable
    changes = body.get("config") or {}
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise Malformed(
            f"cannot change {', '.join(unknown)} of a {row.kind} destination; changeable: "
            f"{', '.join(allowed)}. To change provider, create a new destination, then delete "
            "this one"
        )
    config = {**row.config, **changes}
    features = _features({**row.features, **(body.get("features") or {})})
    current = parsed_of(box, row)
    tenant = tenant_of(engine, actor.project_id)
    parsed = registry.parse(
        row.kind, config, _plain(current.credentials.model_dump(mode="python")), tenant
    )
    name = str(body.get("name") or row.name).strip()
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
        catalog.update_destination(conn, destination_id, values)
        catalog.retry_exports_now(conn, destination_id)
        record_audit(
            conn,
            actor=actor.name,
            action="destination.update",
            project_id=actor.project_id,
            target=destination_id,
            detail={"config": sorted(changes), "name": name},
        )
        updated = catalog.destination(conn, actor.project_id, destination_id)
    assert updated is not None
    return updated, checks


def rotate(
    engine: Engine, box: SecretBox, actor: Actor, destination_id: str, credentials: dict[str, Any]
) -> tuple[Destination, list[Check]]:
    """Validate new credentials and swap them in; the old ones stay if any check fails.

    Runs already in flight built their clients from the old credentials and finish with them.
    """
    row = get(engine, actor.project_id, destination_id)
    tenant = tenant_of(engine, actor.project_id)
    parsed = registry.parse(row.kind, dict(row.config), credentials, tenant)
    checks = _run(parsed, tenant, row.features)
    if not all_passed(checks):
        raise ValidationFailed(
            "the new credentials were not saved; the old ones stay in use. " + _summary(checks),
            checks,
        )
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_destination(
            conn,
            destination_id,
            {
                "credentials_sealed": _seal(box, destination_id, parsed),
                "credentials_public": registry.public_credentials(parsed),
                "credentials_version": row.credentials_version + 1,
                "last_validation": _validation_record(checks),
                "validated_at": now_ms(),
                "status": "active",
            },
        )
        catalog.retry_exports_now(conn, destination_id)  # failing exports catch up right away
        record_audit(
            conn,
            actor=actor.name,
            action="destination.rotate_credentials",
            project_id=actor.project_id,
            target=destination_id,
            detail={
                "mode": registry.public_credentials(parsed).get("mode"),
                "version": row.credentials_version + 1,
            },
        )
        updated = catalog.destination(conn, actor.project_id, destination_id)
    assert updated is not None
    return updated, checks


def delete(engine: Engine, actor: Actor, destination_id: str) -> tuple[Destination, list[Export]]:
    """Delete a destination and disable every export that used it; returns the destination
    as deleted and the exports it disabled (as they were before)."""
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        row = catalog.destination(conn, actor.project_id, destination_id)
        if row is None:
            raise NotFound(f"no destination {destination_id!r} in this project")
        using = catalog.exports_using(conn, destination_id)
        reason = f"destination {row.name!r} was deleted"
        catalog.disable_exports(conn, [e.id for e in using], reason)
        catalog.delete_destination(conn, destination_id)
        record_audit(
            conn,
            actor=actor.name,
            action="destination.delete",
            project_id=actor.project_id,
            target=destination_id,
            detail={"name": row.name, "disabled_exports": [e.id for e in using]},
        )
        deleted = catalog.destination_with_history(conn, destination_id)
    assert deleted is not None
    return deleted, using
