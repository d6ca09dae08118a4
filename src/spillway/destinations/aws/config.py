"""The four ways to authenticate to AWS and the settings every stream kind shares.

Only pydantic models here: the API checks input without loading boto3.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spillway import netpolicy
from spillway.destinations.fields import EndpointUrl, check_endpoint, custom_endpoint
from spillway.secrets import mask

REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d+$"
_REGION = re.compile(REGION_PATTERN)
# An S3-compatible service's region: R2 says "auto", Ceph "default", MinIO "us-east-1".
_OTHER_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
# Shorter than any AWS secret (40): kept at 16, what earlier versions accepted.
_SECRET_MIN = 16
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def check_region(region: str, endpoint_url: str | None) -> None:
    """An AWS region code, or with a custom endpoint any name that service uses ("auto")."""
    if endpoint_url is not None:
        if not _OTHER_REGION.fullmatch(region):
            raise ValueError(
                f"region {region!r} is not a region name: letters, digits, '-', '_' and '.' "
                "(the service's docs name it; Cloudflare R2 uses 'auto')"
            )
    elif not _REGION.fullmatch(region):
        raise ValueError(
            f"region {region!r} is not an AWS region code; use one like us-east-1 or "
            "eu-west-1 (the console shows it beside the bucket or stream)"
        )


def check_endpoint_url(url: str | None, info: ValidationInfo | None = None) -> None:
    """Refuse an endpoint the operator has not opened: https on an AWS domain, or an origin
    listed in SPILLWAY_ALLOWED_ENDPOINTS (raises netpolicy.Refused, a ValueError)."""
    if url is not None:
        check_endpoint(url, info, field="endpoint_url", provider=netpolicy.AWS_DOMAINS)


class AccessKey(BaseModel):
    """A long-lived access key of an IAM user (or temporary keys with a session token).

    AWS's formats apply on AWS only: with a custom ``endpoint_url`` (MinIO, Cloudflare R2,
    Wasabi, Ceph) the key is that service's, in its own format (R2: a 32-hex id and a 64-hex
    secret; MinIO: any string), and the destination's checks judge it against the endpoint.
    """

    model_config = ConfigDict(extra="forbid")
    mode: Literal["access_key"] = "access_key"
    access_key_id: str = Field(
        description="On AWS: 16-128 upper-case letters and digits, like AKIAIOSFODNN7EXAMPLE."
    )
    secret_access_key: SecretStr = Field(description="On AWS: 40 characters.")
    session_token: SecretStr | None = None
    # Set when the key came from the console's credentials CSV, for the record.
    source: Literal["typed", "credentials_csv"] = "typed"

    @field_validator("access_key_id")
    @classmethod
    def _key_id(cls, value: str, info: ValidationInfo) -> str:
        if custom_endpoint(info):
            return _present(value, "access key id")
        return check_access_key_id(value)

    @field_validator("secret_access_key")
    @classmethod
    def _secret(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if custom_endpoint(info):
            _present(value.get_secret_value(), "secret access key")
        else:
            check_secret_access_key(value.get_secret_value())
        return value


def _present(value: str, what: str) -> str:
    """A key of an S3-compatible service: any text, but not empty or padded (a bad paste)."""
    if not value.strip():
        raise ValueError("must not be empty")
    if value != value.strip():
        raise ValueError(f"the {what} starts or ends with spaces: paste it again")
    return value


def check_access_key_id(value: str) -> str:
    """An AWS access key id, or a message that says what one looks like (never the value)."""
    if not _KEY_ID.fullmatch(value):
        seen = f"this one has {len(value)} characters"
        if value != value.upper():
            seen += ", some lower-case"
        elif value.strip() != value:
            seen += ", with spaces around"
        raise ValueError(
            "an AWS access key id is 16 to 128 upper-case letters and digits, usually 20, like "
            f"AKIAIOSFODNN7EXAMPLE ({seen}). For an S3-compatible service, set endpoint_url"
        )
    return value


def check_secret_access_key(value: str) -> None:
    """An AWS secret access key that can be one: AWS's are 40 characters."""
    if len(value) < _SECRET_MIN:
        raise ValueError(
            f"an AWS secret access key is 40 characters; this one has {len(value)}: paste it "
            "whole (the console shows it once, when the key is created)"
        )


class AssumeRole(BaseModel):
    """A role in the customer's account, assumed with the project's External ID."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["role"] = "role"
    role_arn: str

    @model_validator(mode="after")
    def _check(self) -> AssumeRole:
        if not _ROLE_ARN.match(self.role_arn):
            raise ValueError(
                "role_arn must look like arn:aws:iam::111122223333:role/SpillwayExport"
            )
        return self


class ServiceIdentity(BaseModel):
    """Spillway's own AWS identity (default credential chain), granted by a resource policy."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["service_identity"] = "service_identity"


# The credentials' modes every AWS kind takes (credentials_csv is read into an access_key).
AUTH_MODES = ("access_key", "credentials_csv", "role", "service_identity")

AwsCredentials = Annotated[AccessKey | AssumeRole | ServiceIdentity, Field(discriminator="mode")]


class CredentialsInput(BaseModel):
    """What the API accepts: one of the modes, or the console's credentials CSV."""

    model_config = ConfigDict(extra="forbid")
    value: AwsCredentials

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" not in data:
            if data.get("mode") == "credentials_csv":
                data = parse_credentials_csv(data.get("csv"))
            return {"value": data}
        return data


def public_credentials(credentials: CredentialsInput) -> dict[str, Any]:
    """The masked view: never the secret, only enough of the key id to recognise it."""
    value = credentials.value
    if isinstance(value, AccessKey):
        return {
            "mode": value.mode,
            "access_key_id": mask(value.access_key_id),
            "source": value.source,
        }
    if isinstance(value, AssumeRole):
        return {"mode": value.mode, "role_arn": value.role_arn}
    return {"mode": value.mode}


# Header rows of the CSV files the AWS console offers for download: the access key page,
# and the "new user" page (which adds user name, password and console link).
_CSV_HEADERS = (
    ["Access key ID", "Secret access key"],
    ["User name", "Password", "Access key ID", "Secret access key", "Console login link"],
)


def parse_credentials_csv(text: Any) -> dict[str, Any]:
    """Read the access key from the AWS console's credentials CSV, or explain what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("credentials_csv needs 'csv': the text of the downloaded .csv file")
    rows = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(row)]
    if not rows:
        raise ValueError("the credentials CSV is empty")
    header = [cell.strip() for cell in rows[0]]
    if header not in _CSV_HEADERS:
        raise ValueError(
            "this is not the AWS console's credentials CSV: its first row must be "
            "'Access key ID,Secret access key' (or the new-user file's 'User name,Password,"
            f"Access key ID,Secret access key,Console login link'), not {','.join(header)!r}"
        )
    if len(rows) != 2 or len(rows[1]) != len(header):
        raise ValueError(
            "the credentials CSV must hold exactly one access key row under its header"
        )
    row = dict(zip(header, (cell.strip() for cell in rows[1]), strict=True))
    key_id, secret = row["Access key ID"], row["Secret access key"]
    try:
        check_access_key_id(key_id)
        check_secret_access_key(secret)
    except ValueError as exc:
        raise ValueError(
            f"the credentials CSV's access key row does not hold a valid key: {exc}"
        ) from None
    return {
        "mode": "access_key",
        "access_key_id": key_id,
        "secret_access_key": secret,
        "source": "credentials_csv",
    }


class StreamConfig(BaseModel):
    """Where records go: a stream given by name or ARN, its region, an optional endpoint.

    Each kind names its stream field (``target_field``) and the ARN shape it accepts; when an
    ARN is given without a region, the region comes from the ARN.
    """

    model_config = ConfigDict(extra="forbid")
    what: ClassVar[str]  # "Kinesis data stream", for messages
    target_field: ClassVar[str]
    arn_service: ClassVar[str]  # the ARN's service part: kinesis, firehose
    arn_resource: ClassVar[str]  # the ARN's resource type: stream, deliverystream
    name_pattern: ClassVar[str]  # a regular expression (unanchored) for a bare name

    region: str = Field(default="us-east-1", description="The AWS region, e.g. eu-west-1.")
    endpoint_url: EndpointUrl = Field(
        default=None,
        description="Leave empty for AWS. Any other endpoint must be https on an AWS domain or "
        "an origin the operator lists in SPILLWAY_ALLOWED_ENDPOINTS.",
    )

    @classmethod
    def _arn(cls, value: Any) -> re.Match[str] | None:
        if not isinstance(value, str):
            return None
        shape = (
            rf"arn:aws[a-z-]*:{cls.arn_service}:(?P<region>[a-z0-9-]+):\d{{12}}:"
            rf"{cls.arn_resource}/(?P<name>{cls.name_pattern})"
        )
        return re.fullmatch(shape, value)

    @property
    def target(self) -> str:
        """The stream as configured: a name or an ARN."""
        return str(getattr(self, self.target_field))

    @property
    def arn(self) -> str | None:
        """The stream's ARN when one was given."""
        return self.target if self.target.startswith("arn:") else None

    @property
    def name(self) -> str:
        """The stream's name (taken from the ARN when one was given)."""
        return self.target.rsplit("/", 1)[-1] if self.arn else self.target

    @property
    def grant_names(self) -> tuple[str, ...]:
        """What the operator may list in SPILLWAY_SERVICE_IDENTITY to grant this stream."""
        return (self.target,)

    @model_validator(mode="before")
    @classmethod
    def _region_from_arn(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("region") is None:
            found = cls._arn(data.get(cls.target_field))
            if found:
                data = {**data, "region": found["region"]}
        return data

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> StreamConfig:
        field, target = self.target_field, self.target
        check_region(self.region, self.endpoint_url)
        if target.startswith("arn:"):
            found = self._arn(target)
            if found is None:
                raise ValueError(
                    f"{field} {target!r} is not a {self.what} ARN; use its name or an ARN like "
                    f"arn:aws:{self.arn_service}:us-east-1:111122223333:{self.arn_resource}/NAME"
                )
            if found["region"] != self.region:
                raise ValueError(
                    f"{field} is in region {found['region']} (from its ARN) but region is "
                    f"{self.region}: set region to {found['region']} or leave it out"
                )
        elif not re.fullmatch(self.name_pattern, target):
            raise ValueError(
                f"{field} {target!r} is not a valid {self.what} name (letters, digits, "
                "'_', '.' and '-'); give the name or the full ARN"
            )
        check_endpoint_url(self.endpoint_url, info)
        return self
