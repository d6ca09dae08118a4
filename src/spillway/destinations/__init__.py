"""Destinations: one package per kind, found through :data:`KINDS`.

Each kind's package exposes ``Config`` and ``Credentials`` pydantic models, ``capabilities``
(what the kind is and allows: see :class:`~spillway.destinations.base.Capabilities`),
``build(config, credentials, tenant)`` returning its store, and ``public_credentials(credentials)``
returning what the API may show (masked). A kind may also expose ``admit(config, credentials,
tenant)``, raising ValueError for what the operator does not allow that project. Vendor SDKs
load only when a kind is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, cast

from pydantic import BaseModel, ValidationError

from spillway import fielderrors, text
from spillway.destinations import fields
from spillway.destinations.base import Capabilities, Destination, Tenant
from spillway.errors import Invalid, Malformed

# kind → module path; adding a destination touches its folder and this line.
KINDS: dict[str, str] = {
    "local": "spillway.destinations.local.kind",
    "s3": "spillway.destinations.s3.kind",
    "gcs": "spillway.destinations.gcs.kind",
    "azure_blob": "spillway.destinations.azure_blob.kind",
    "kinesis": "spillway.destinations.kinesis.kind",
    "firehose": "spillway.destinations.firehose.kind",
}


class KindModule(Protocol):
    """What each kind's ``kind`` module provides."""

    Config: type[BaseModel]
    Credentials: type[BaseModel]
    capabilities: Capabilities

    def build(self, config: Any, credentials: Any, tenant: Tenant) -> Destination: ...

    def public_credentials(self, credentials: Any) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Parsed:
    """A destination's validated config and credentials."""

    kind: str
    config: BaseModel
    credentials: BaseModel


def kind_module(kind: str) -> KindModule:
    """The module of a kind, or a 400 naming the known kinds."""
    path = KINDS.get(kind)
    if path is None:
        raise Malformed(f"unknown destination kind {kind!r}; use one of: {', '.join(KINDS)}")
    module: ModuleType = importlib.import_module(path)
    return cast(KindModule, module)


def register(kind: str, path: str) -> None:
    """Add a kind found at module ``path`` (tests register their own; see :func:`unregister`)."""
    if kind in KINDS:
        raise ValueError(f"destination kind {kind!r} is already registered")
    KINDS[kind] = path


def unregister(kind: str) -> None:
    """Remove a kind added by :func:`register`."""
    KINDS.pop(kind, None)


def capabilities(kind: str) -> Capabilities:
    """What ``kind`` is and allows, or a 400 naming the known kinds."""
    return kind_module(kind).capabilities


def stream_kinds() -> list[str]:
    """The kinds that take stream exports (record streams), in registry order."""
    return [kind for kind in KINDS if capabilities(kind).stream]


def _describe(exc: ValidationError, what: str, model: type[BaseModel]) -> str:
    """``config.bucket: …; …``: each field as the user wrote it, and what it expects."""
    return fielderrors.describe(exc.errors(), prefix=what, model=model)


def parse(
    kind: str,
    config: dict[str, Any],
    credentials: dict[str, Any],
    tenant: Tenant | None = None,
    *,
    stored: bool = False,
) -> Parsed:
    """Validate raw JSON into a kind's models, or raise a 400 saying which field is wrong.

    What the operator allows ``tenant`` (custom endpoints, service identity) is checked here
    too, so create, update, rotate and ``force`` all meet it: a 422. ``stored``: a destination
    read back from the database, whose store checks that when it is built instead (the operator
    may have changed the settings since; its runs then fail with a terminal error).
    """
    module = kind_module(kind)
    context = {fields.STORED: stored}
    try:
        text.check(config, "config")  # what the API's models checked, for every other caller
        text.check(credentials, "credentials")
    except ValueError as exc:
        raise Invalid(None, str(exc)) from None
    try:
        parsed_config = module.Config.model_validate(config, context=context)
    except ValidationError as exc:
        raise Invalid(None, _describe(exc, "config", module.Config)) from None
    # With a custom endpoint (an S3-compatible service), the credentials are that service's,
    # in its own format; its checks then judge them against the endpoint.
    context[fields.CUSTOM_ENDPOINT] = bool(getattr(parsed_config, "endpoint_url", None))
    try:
        parsed_credentials = module.Credentials.model_validate(credentials, context=context)
    except ValidationError as exc:
        raise Invalid(None, _describe(exc, "credentials", module.Credentials)) from None
    except ValueError as exc:  # e.g. a credentials CSV that isn't the console's format
        raise Invalid(None, str(exc)) from None
    admit = getattr(module, "admit", None)  # the kind's checks that need the project
    if admit is not None and not stored:
        try:
            admit(parsed_config, parsed_credentials, tenant)
        except ValueError as exc:
            raise Invalid("credentials", str(exc)) from None
    return Parsed(kind, parsed_config, parsed_credentials)


def build(parsed: Parsed, tenant: Tenant) -> Destination:
    """A live store for a parsed destination of ``tenant``."""
    return kind_module(parsed.kind).build(parsed.config, parsed.credentials, tenant)


def public_credentials(parsed: Parsed) -> dict[str, Any]:
    """The masked view of the credentials."""
    return kind_module(parsed.kind).public_credentials(parsed.credentials)
