"""Opening a stored destination for delivery: its credentials unsealed, its kind's models
parsed, and a live target (object store or record stream) built for its project.

The engine opens a destination at the start of a run or a stream pass; the destination
services use the same steps to re-validate or change a stored one. Nothing here reaches back
into the services.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway.destinations.base import Tenant
from spillway.errors import InputError, NotFound, TerminalError
from spillway.model import Destination, Project
from spillway.secrets import SecretBox, SecretUnreadable
from spillway.store.projects import project_by_id

log = logging.getLogger(__name__)


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


def tenant_of(engine: Engine, project_id: int) -> Tenant:
    """The project as its destinations see it."""
    with engine.connect() as conn:
        project = project_by_id(conn, project_id)
    if project is None:
        raise NotFound("project not found")
    return tenant_for(project)


def tenant_for(project: Project) -> Tenant:
    """A project already at hand, as its destinations see it."""
    return Tenant(project.app_id, project.name, project.external_id)


def parsed_of(box: SecretBox, destination: Destination) -> registry.Parsed:
    """The stored destination's models, credentials unsealed (for building a target)."""
    try:
        credentials = box.open_json(destination.credentials_sealed, context=destination.id.encode())
    except SecretUnreadable as exc:
        raise CredentialsUnreadable(destination.id) from exc
    if not isinstance(credentials, dict):  # opened, but not what was sealed: damaged
        raise CredentialsUnreadable(destination.id)
    return registry.parse(destination.kind, dict(destination.config), credentials, stored=True)


def open_target(engine: Engine, box: SecretBox, destination: Destination) -> Any:
    """A live target for a stored destination: an object store or a record stream (the
    engine opens one at the start of a run or a stream pass)."""
    return registry.build(parsed_of(box, destination), tenant_of(engine, destination.project_id))


class TargetCache:
    """Live targets kept per destination across runs and stream passes.

    Building one costs far more than a small run (boto3 loads its service model and opens a new
    connection pool; a role is assumed again), so a loop keeps it while the destination stays
    the same. Any change to the stored destination (an update, a credentials rotation: both
    move ``updated_at``, a rotation also ``credentials_version``) or to the project it builds
    for gives a new one; a loop drops one after a failure (:meth:`forget`) so the next attempt
    starts from a fresh client, and closes them all when it stops. Not thread-safe: one per loop.
    """

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box
        self._open: dict[str, tuple[tuple[Any, ...], Any]] = {}

    def get(self, destination: Destination, tenant: Tenant | None = None) -> Any:
        """The destination's live target, built on first use or after it changed (``tenant``:
        its project's, when the caller has just read the project)."""
        if tenant is None:
            tenant = tenant_of(self._engine, destination.project_id)
        version = (destination.updated_at, destination.credentials_version, tenant)
        cached = self._open.get(destination.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        self.forget(destination.id)
        target = registry.build(parsed_of(self._box, destination), tenant)
        self._open[destination.id] = (version, target)
        return target

    def forget(self, destination_id: str) -> None:
        """Close and drop the destination's target (after a failure, or once it is deleted)."""
        cached = self._open.pop(destination_id, None)
        if cached is not None:
            _close(cached[1])

    def keep_only(self, destination_ids: set[str]) -> None:
        """Drop the targets of destinations no live export uses any more."""
        for destination_id in list(self._open):
            if destination_id not in destination_ids:
                self.forget(destination_id)

    def close(self) -> None:
        """Close every target."""
        for destination_id in list(self._open):
            self.forget(destination_id)

    def __len__(self) -> int:
        return len(self._open)


def _close(target: Any) -> None:
    try:
        target.close()
    except Exception:  # a client that fails to close is dropped all the same
        log.warning("closing a destination's client failed", exc_info=True)
