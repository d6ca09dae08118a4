"""Opening a stored destination for delivery: its credentials unsealed, its kind's models
parsed, and a live target (object store or record stream) built for its project.

The engine opens a destination at the start of a run or a stream pass; the destination
services use the same steps to re-validate or change a stored one. Nothing here reaches back
into the services.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from spillway import destinations as registry
from spillway.destinations.base import Tenant
from spillway.errors import InputError, NotFound, TerminalError
from spillway.model import Destination
from spillway.secrets import SecretBox, SecretUnreadable
from spillway.store.projects import project_by_id


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
