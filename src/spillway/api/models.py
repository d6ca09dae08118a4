"""Request models of the HTTP API: what a client may send, validated before a service sees it.

One section per resource, in the order of the routers (destinations, endpoints, …). The
services take what these models hold; the JSON the API answers with is shaped in
``api/views.py``. Text fields are checked for NUL and lone surrogates (``text.checked``), which
PostgreSQL cannot store.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spillway import text
from spillway.engine.pgp import precheck_public_key
from spillway.model import DEFAULT_MAX_FILE_BYTES

# --- Destinations --------------------------------------------------------------------------


class DestinationIn(BaseModel):
    """A destination to validate or create. ``config`` and ``credentials`` depend on ``kind``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    kind: str = Field(description="s3, gcs, azure_blob, local, kinesis or firehose")
    config: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)
    features: dict[str, bool] = Field(
        default_factory=dict, description="read_back and cleanup (both off by default)"
    )
    force: bool = Field(default=False, description="Create without validating first.")

    _text = model_validator(mode="before")(text.checked)


class DestinationPatch(BaseModel):
    """What may change in place: where it writes, its name, its features."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    features: dict[str, bool] = Field(default_factory=dict)
    force: bool = False

    _text = model_validator(mode="before")(text.checked)


# --- Endpoints (SPEC R3) -------------------------------------------------------------------

ChannelType = Literal[
    "EMAIL",
    "SMS",
    "VOICE",
    "PUSH",
    "APNS",
    "APNS_SANDBOX",
    "APNS_VOIP",
    "APNS_VOIP_SANDBOX",
    "GCM",
    "BAIDU",
    "ADM",
    "IN_APP",
    "CUSTOM",
]
MAX_BATCH = 100
MAX_ID = 256
# A metric is a finite number: JSON has no NaN or infinity, and PostgreSQL's json refuses them.
Metric = Annotated[float, Field(allow_inf_nan=False)]


def _string_lists(value: dict[str, Any] | None) -> dict[str, list[str] | None] | None:
    """Attribute values are lists of strings (as in Pinpoint); a lone string is wrapped."""
    if value is None:
        return None
    out: dict[str, list[str] | None] = {}
    for key, item in value.items():
        if item is None:
            out[key] = None
        elif isinstance(item, str):
            out[key] = [item]
        elif isinstance(item, list) and all(isinstance(v, str) for v in item):
            out[key] = item
        else:
            raise ValueError(f"attribute {key!r} must be a string or a list of strings")
    return out


class Demographic(BaseModel):
    """Device and locale facts about an endpoint."""

    model_config = ConfigDict(extra="forbid")
    app_version: str | None = None
    locale: str | None = None
    make: str | None = None
    model: str | None = None
    model_version: str | None = None
    platform: str | None = None
    platform_version: str | None = None
    timezone: str | None = None


class Location(BaseModel):
    """Where an endpoint is."""

    model_config = ConfigDict(extra="forbid")
    city: str | None = None
    country: str | None = Field(default=None, max_length=3)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    postal_code: str | None = None
    region: str | None = None


class EndpointIn(BaseModel):
    """The body of an endpoint upsert. Every field is optional on update."""

    model_config = ConfigDict(extra="forbid")
    endpoint_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    user_id: str | None = Field(default=None, max_length=256)
    channel_type: ChannelType | None = None
    address: str | None = Field(default=None, max_length=512)
    endpoint_status: Literal["ACTIVE", "INACTIVE"] | None = None
    opt_out: Literal["ALL", "NONE"] | None = None
    attributes: dict[str, Any] | None = None
    user_attributes: dict[str, Any] | None = None
    demographic: Demographic | None = None
    location: Location | None = None
    metrics: dict[str, Metric | None] | None = None
    effective_date: str | None = None

    _lists = field_validator("attributes", "user_attributes")(_string_lists)

    # No NUL (PostgreSQL text cannot hold it) and no lone surrogate (no UTF-8 form), in keys
    # too: the field is named so the caller knows what to fix.
    _text = model_validator(mode="before")(text.checked)


class EndpointBatch(BaseModel):
    """``PUT /api/v1/endpoints``: up to 100 endpoints, each with its id."""

    model_config = ConfigDict(extra="forbid")
    endpoints: list[EndpointIn] = Field(min_length=1, max_length=MAX_BATCH)


# --- Exports -------------------------------------------------------------------------------

# Largest file size an export may ask for: S3's (and most stores') object limit, 5 TiB.
MAX_FILE_BYTES = 5 * 1024**4
# Backfill bounds, epoch seconds: 9999-12-31T23:59:59Z is the last second dates can show.
MAX_EPOCH_S = 253_402_300_799


# --- one set of field definitions for creating and changing an export ----------------------
#
# ExportIn (POST) and ExportPatch (PATCH) are built from the same annotated types below, so a
# constraint or a check written once holds for both. A PATCH is applied over the stored
# settings and the result is validated again as a whole (ExportSettingsIn), the way POST is.


def _stored(info: ValidationInfo, field: str, value: Any) -> bool:
    """True when ``value`` is the one already stored (a PATCH re-validating stored settings):
    it was judged when it was set, maybe under other limits, and is not judged again."""
    stored = (info.context or {}).get("stored")
    return isinstance(stored, dict) and field in stored and stored[field] == value


def _event_names(value: Any) -> Any:
    if isinstance(value, list) and not value:
        raise ValueError('list at least one event name, or use "all"')
    return value


def _pgp_precheck(value: str | None, info: ValidationInfo) -> str | None:
    """Only the cheap checks of a PGP key: models are parsed on the event loop. gpg reads the
    key in :func:`check_pgp_key`, which the service calls (off the loop) before storing it."""
    if value and not _stored(info, "pgp_public_key", value):
        precheck_public_key(value)  # raises ValueError with what to fix
    return value or None


def _webhook(value: str | None, info: ValidationInfo) -> str | None:
    if value is None or not value.strip():
        return None
    if _stored(info, "webhook_url", value):
        return value
    from spillway import netpolicy

    # https to public addresses, or an origin the operator lists (a netpolicy.Refused, a
    # ValueError: a 422 naming webhook_url). Only what needs no DNS lookup here: models are
    # parsed on the event loop, where a slow name server would stall every request. The host's
    # addresses are checked by check_webhook_host (off the loop), and again when it is called.
    return netpolicy.current().check_webhook(value.strip(), resolve=False)


EventNames = Annotated[Literal["all"] | list[str], AfterValidator(_event_names)]
UserAttributes = Literal["all", "none"] | list[str]
FileFormat = Literal["jsonl", "csv", "parquet"]
Compression = Literal["gzip", "zstd", "none"]
PgpPublicKey = Annotated[str | None, AfterValidator(_pgp_precheck)]
MaxFileBytes = Annotated[int, Field(ge=1024, le=MAX_FILE_BYTES)]
WebhookUrl = Annotated[str | None, AfterValidator(_webhook)]
# Streams only: the seed-001 record, or the JSON Pinpoint's event stream emitted.
RecordFormat = Literal["spillway", "pinpoint"]
FrequencyName = Literal["every_15_minutes", "hourly", "daily", "weekly", "stream"]
# Where a window's files go under the export's prefix (engine/naming.py).
Layout = Literal["moengage", "hive"]
ExportStatus = Literal["active", "disabled"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # No lone surrogate (no UTF-8 form) and no NUL anywhere, keys included; the field is named.
    _text = model_validator(mode="before")(text.checked)


class ExportSettingsIn(_Body):
    """What goes into the files and how they are encoded (SPEC R13-R15): the ``settings`` an
    export stores, with the defaults of a new export."""

    events: EventNames = "all"
    user_attributes: UserAttributes = "all"
    device_attributes: bool = True
    format: FileFormat = "jsonl"
    compression: Compression = "gzip"
    pgp_public_key: PgpPublicKey = None
    max_file_bytes: MaxFileBytes = DEFAULT_MAX_FILE_BYTES
    webhook_url: WebhookUrl = None
    record_format: RecordFormat = "spillway"
    layout: Layout = Field(
        default="moengage",
        description="moengage: <prefix>/export_day=DD-MM-YYYY/<file> (MoEngage's layout); "
        "hive: <prefix>/dt=YYYY-MM-DD/hour=HH/<file>, which query engines read as typed "
        "partitions (see GET /api/v1/exports/{id}/ddl).",
    )


# Where a new export starts: "now", "retention" or epoch seconds (checked against the clock and
# the retention period by create()).
Start = Literal["now", "retention"] | Annotated[int, Field(strict=True, ge=0, le=MAX_EPOCH_S)]


class ExportIn(ExportSettingsIn):
    """``POST /api/v1/exports``."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    destination_id: str
    frequency: FrequencyName = "every_15_minutes"
    # Creation only (a PATCH cannot move an export's start: its cursor has moved on).
    start: Start = Field(
        default="now",
        description='What the export covers: "now" (events received from its creation on), '
        '"retention" (every event still kept) or epoch seconds (events received from then '
        "on, within the retention period). Its first run delivers that history.",
    )


def _keep_schema(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # an omitted field keeps its value: there is no default


def _keep() -> Any:
    """A PATCH field: omitted keeps the stored value; ``null`` only where the type allows it."""
    return Field(
        default=None,
        description="Omit to keep the current value.",
        json_schema_extra=_keep_schema,
    )


class ExportPatch(_Body):
    """``PATCH /api/v1/exports/{id}``: the fields of :class:`ExportIn` but ``name`` and
    ``destination_id``, each optional, plus ``status``. Takes effect at the next window.

    The types (and so the checks) are ExportIn's own; :func:`update` applies the change over the
    stored settings and validates the result as a whole, so what POST refuses PATCH refuses.
    """

    frequency: FrequencyName = _keep()
    events: EventNames = _keep()
    user_attributes: UserAttributes = _keep()
    device_attributes: bool = _keep()
    format: FileFormat = _keep()
    compression: Compression = _keep()
    pgp_public_key: PgpPublicKey = _keep()
    max_file_bytes: MaxFileBytes = _keep()
    webhook_url: WebhookUrl = _keep()
    record_format: RecordFormat = _keep()
    layout: Layout = _keep()
    status: ExportStatus = _keep()

    # Fields of a new export that a PATCH cannot change, and what to do instead (the error
    # message for each, in place of a guess at a similar name).
    fixed_fields: ClassVar[dict[str, str]] = {
        "start": "set when the export is created and cannot be changed (its cursor has moved "
        "on); to deliver older events, POST /api/v1/exports/{id}/backfill with a time range",
        "name": "set when the export is created and cannot be changed; create a new export "
        "under the new name",
        "destination_id": "set when the export is created and cannot be changed; create a new "
        "export for the other destination",
    }


class BackfillIn(BaseModel):
    """``POST /api/v1/exports/{id}/backfill``: a past range of receive times."""

    model_config = ConfigDict(extra="forbid")
    start: int = Field(ge=0, le=MAX_EPOCH_S, description="Epoch seconds, inclusive.")
    end: int = Field(ge=0, le=MAX_EPOCH_S, description="Epoch seconds, exclusive.")

    @model_validator(mode="after")
    def _order(self) -> BackfillIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self
