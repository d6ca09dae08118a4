"""Typed settings, read from the environment with the ``SPILLWAY_`` prefix."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


class Settings(BaseSettings):
    """Every knob Spillway reads. Each field is documented in docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="SPILLWAY_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path(".spillway"), description="Where SQLite and keys live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite file in the data dir."
    )
    db_pool_size: int = Field(
        default=5,
        ge=1,
        le=100,
        description="PostgreSQL connections one process keeps open, and as many again opened "
        "under load (max_overflow). Several serve and worker processes share the server's "
        "max_connections: keep processes x 2 x this below it. Ignored on SQLite.",
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Service key for encrypting stored secrets; generated if unset."
    )
    retention_days: int = Field(default=90, ge=1, description="Days events are kept.")
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest request body (after gunzip)."
    )
    max_events_per_request: int = Field(default=10_000, ge=1)
    max_event_bytes: int = Field(default=256 * 1024, ge=256, description="Largest single event.")
    worker_interval_seconds: float = Field(default=5.0, gt=0)
    export_lease_seconds: float = Field(
        default=120.0,
        ge=5,
        le=3600,
        description="How long a worker's hold on an export lasts unless renewed (renewed while "
        "a run writes): the longest another worker waits to take over from one that died.",
    )
    stream_linger_ms: int = Field(
        default=200, ge=0, le=60_000, description="How long a stream batch waits to fill."
    )
    stream_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often a worker without the API in its process looks for new events.",
    )
    retention_batch_size: int = Field(default=5_000, ge=1)
    log_level: str = Field(
        default="INFO", description="Spillway's own log level (its loggers and uvicorn's)."
    )
    log_level_third_party: str | None = Field(
        default=None,
        description="Level of every other library's loggers (botocore, azure, google, urllib3 "
        "…); unset means WARNING. UNSAFE below WARNING: SDKs log credentials at DEBUG.",
    )

    # --- Trust boundaries: what the operator opens to projects (docs/security.md) ---
    allowed_endpoints: str = Field(
        default="",
        description=(
            "Comma-separated origins (scheme://host[:port]) that custom endpoints, account URLs "
            "and webhooks may use; by default none: only providers' own public endpoints and "
            "webhooks to public https addresses."
        ),
    )
    local_root: Path | None = Field(
        default=None,
        description="Folder under which 'local' destinations may write (one subfolder per "
        "project); unset, the local kind is off.",
    )
    service_identity: str = Field(
        default="",
        description=(
            "Which projects may use Spillway's own AWS identity, and for which buckets or "
            "streams: 'PROJECT:NAME[|NAME…],PROJECT:…' (PROJECT is a name or id, NAME a bucket "
            "or stream); empty means the mode is off."
        ),
    )
    max_json_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest body of a management (non-ingest) call."
    )
    max_endpoint_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest single endpoint document."
    )
    validation_concurrency: int = Field(
        default=4, ge=1, le=64, description="Destination validations run at once, in all."
    )
    validation_per_project: int = Field(
        default=2, ge=1, le=64, description="Destination validations one project may run at once."
    )
    validation_deadline_seconds: float = Field(
        default=15.0, gt=0, le=300, description="Hard limit on one destination validation."
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Connect and read timeout of one webhook call."
    )
    webhook_queue_size: int = Field(
        default=1000, ge=1, description="Webhook calls waiting to be sent; beyond, the oldest go."
    )

    @field_validator("service_identity")
    @classmethod
    def _check_service_identity(cls, value: str) -> str:
        # A bad value (or one bucket granted to two projects) stops the server at start.
        from spillway.destinations.aws.service_identity import parse_grants

        parse_grants(value)
        return value

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or a SQLite file inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'spillway.db').resolve()}"

    def service_key(self) -> bytes:
        """The key that encrypts stored secrets: from the setting, else from the data dir."""
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value().encode()
            if len(value) < 32:
                raise ValueError("SPILLWAY_SECRET_KEY must be at least 32 characters long")
            return value
        return _load_or_create_key_file(self.data_dir / SECRET_KEY_FILE)


def _load_or_create_key_file(path: Path) -> bytes:
    """Read the generated key, creating it with mode 0600 on first use (the data dir 0700)."""
    from spillway.filemodes import private_dir, tighten_file

    private_dir(path.parent)
    tighten_file(path)
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48).encode()
    # Write a private temp file, then hard-link it into place: link() fails if another process
    # won the race, and no reader ever sees a half-written key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_bytes().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return Settings()
