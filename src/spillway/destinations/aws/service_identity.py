"""Who may use Spillway's own AWS identity, and for what: the operator's grants.

``service_identity`` mode writes with the server's own AWS identity (instance role, profile or
``AWS_*`` environment). That identity belongs to the operator, so it is off unless the operator
turns it on with ``SPILLWAY_SERVICE_IDENTITY``, naming for each project the buckets (S3) and
streams (Kinesis, Firehose) it may reach that way::

    SPILLWAY_SERVICE_IDENTITY="acme:acme-exports|acme-events,0123456789abcdef0123456789abcdef:beta-exports"

A project is named by its name or its id; a name is a bucket or stream name (a Kinesis stream
given by ARN must be listed by that ARN). One name listed for two projects is refused when the
server starts: two projects must never write the same object key (or into the same stream)
through the operator's identity.

Enforced twice: when a destination is parsed (create, update, rotate, validate: a 422 that
``force`` cannot skip) and when a store is built (a destination stored before the operator
changed the setting fails with a terminal error instead of writing).

Only pydantic-free standard library here: the settings import it to check the value at start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spillway.destinations.base import Tenant

SETTING = "SPILLWAY_SERVICE_IDENTITY"
ENDPOINT_REFUSED = (
    "service_identity cannot be used with a custom endpoint_url: Spillway's own AWS identity "
    "only talks to AWS's standard endpoints. Leave endpoint_url empty, or use mode access_key "
    "or role"
)
_OTHER_MODES = "or use mode access_key (your own key) or role (a role in your account)"


def _key(name: str) -> str:
    """What two listed names are compared by: an ARN's last part, so an ARN and the bare name
    of the same stream count as one."""
    return re.split(r"[/:]", name)[-1] if name.startswith("arn:") else name


@dataclass(frozen=True, slots=True)
class Grants:
    """The operator's grants: project (name or id) → the names it may reach."""

    by_project: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def on(self) -> bool:
        """Whether the operator turned the mode on at all."""
        return bool(self.by_project)

    def names_for(self, tenant: Tenant) -> frozenset[str]:
        """Every name granted to this project (listed under its name or its id)."""
        return self.by_project.get(tenant.app_id, frozenset()) | self.by_project.get(
            tenant.name, frozenset()
        )

    def refusal(self, tenant: Tenant | None, what: str, targets: Iterable[str]) -> str | None:
        """Why ``tenant`` may not use the service identity on ``targets`` (any one listed is
        enough), or None when it may. ``what`` names the kind of target: "bucket", "stream"."""
        targets = tuple(targets)
        if not self.on:
            return (
                "service_identity is turned off on this server; ask the operator to name this "
                f"project and its {what} in {SETTING}, {_OTHER_MODES}"
            )
        if tenant is None:
            return "service_identity is only granted to a named project"
        granted = self.names_for(tenant)
        if any(target in granted for target in targets):
            return None
        shown = ", ".join(sorted(granted)) or "none"
        return (
            f"service_identity may not reach {what} {targets[0]} for this project: the operator "
            f"lists in {SETTING} which buckets and streams each project may reach with "
            f"Spillway's own identity (listed for this project: {shown}); ask them to add it, "
            f"{_OTHER_MODES}"
        )


def refusal(
    credentials: object,
    endpoint_url: str | None,
    tenant: Tenant | None,
    what: str,
    targets: Iterable[str],
) -> str | None:
    """Why these credentials may not be used for ``targets`` (service_identity mode only)."""
    if getattr(credentials, "mode", None) != "service_identity":
        return None
    grants = current()
    if grants.on and endpoint_url:
        return ENDPOINT_REFUSED
    return grants.refusal(tenant, what, targets)


def parse_grants(text: str) -> Grants:
    """Read ``PROJECT:NAME[|NAME…],PROJECT:…``; ValueError when malformed or when one name is
    listed for two projects."""
    by_project: dict[str, set[str]] = {}
    owner: dict[str, str] = {}  # name (as compared) → project
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        project, colon, rest = entry.partition(":")
        project = project.strip()
        names = [name.strip() for name in rest.split("|") if name.strip()]
        if not colon or not project or not names:
            raise ValueError(
                f"{SETTING} entry {entry!r} must look like PROJECT:NAME or PROJECT:NAME|NAME "
                "(a project name or id, then the buckets or streams it may reach)"
            )
        for name in names:
            if any(char.isspace() for char in name):
                raise ValueError(f"{SETTING} entry {entry!r}: {name!r} contains a space")
            first = owner.setdefault(_key(name), project)
            if first != project:
                raise ValueError(
                    f"{SETTING} names {name!r} for two projects ({first} and {project}): two "
                    "projects must never write into the same bucket or stream through "
                    "Spillway's own identity (they could overwrite each other's objects); give "
                    "each project its own"
                )
        by_project.setdefault(project, set()).update(names)
    return Grants({project: frozenset(names) for project, names in by_project.items()})


_current: Grants | None = None


def configure(grants: Grants | None) -> None:
    """Set the process's grants (None: read the setting again on next use)."""
    global _current
    _current = grants


def current() -> Grants:
    """The process's grants; read from the environment on first use if nobody configured them."""
    global _current
    if _current is None:
        from spillway.settings import Settings

        _current = parse_grants(Settings().service_identity)
    return _current
