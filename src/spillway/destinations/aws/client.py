"""boto3 sessions for each auth mode, and the translation of AWS errors into advice.

Every AWS kind builds its clients through :class:`AwsAuth`, so a role is assumed (and refreshed
before it expires) the same way everywhere, and every kind sorts errors into transient (retry
later) and terminal (a person must act) by the same rules.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig
from botocore.credentials import RefreshableCredentials
from botocore.loaders import Loader, create_loader
from botocore.session import Session as BotocoreSession
from botocore.session import get_session

from spillway.destinations.aws.config import AccessKey, AssumeRole, ServiceIdentity
from spillway.destinations.base import DestinationError
from spillway.errors import TransientError

# Any error boto3 raises for a request (the service's answer or the transport's).
Failure = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
STS_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60
)
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "KMSThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "InternalFailure",
        "InternalFailureException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestLimitExceeded",
        "429",
        "500",
        "503",
    }
)
_TRANSIENT_TYPES = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)
_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, botocore.exceptions.ClientError):
        return dict(exc.response.get("Error") or {})
    return {}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' otherwise).

    Some endpoints (moto among them) answer a JSON-protocol request with an XML error body,
    which botocore files under the HTTP status as the code; the real code is in the message.
    """
    error = _error(exc)
    code = str(error.get("Code", ""))
    if code.isdigit():
        found = _XML_CODE.search(str(error.get("Message", "")))
        if found:
            return found.group(1)
    return code


def error_message(exc: BaseException) -> str:
    """The service's own message of a ClientError ('' otherwise)."""
    message = str(_error(exc).get("Message", ""))
    found = _XML_MESSAGE.search(message)
    return found.group(1) if found else message


def status_code(exc: BaseException) -> int:
    """The HTTP status of a ClientError (0 otherwise)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return 0


def explain(exc: BaseException, service: str) -> str:
    """A sentence a person can act on, for the errors every AWS service shares.

    Kinds first handle what is theirs (a missing bucket or stream), then fall back to this.
    """
    code = error_code(exc)
    if code in ("InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException"):
        also = "" if code == "InvalidAccessKeyId" else f", {code}"
        return (
            f"AWS does not recognise the access key id (InvalidAccessKeyId{also}): check it was "
            "copied whole, that the key is active, and that it belongs to this AWS partition"
        )
    if code in ("SignatureDoesNotMatch", "InvalidSignatureException"):
        return (
            f"the secret access key does not match the access key id ({code}): "
            "paste the secret again or create a new key"
        )
    if code in ("ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired"):
        return "the session token has expired (ExpiredToken): supply fresh temporary credentials"
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return f"cannot reach the {service} endpoint ({exc}): check endpoint_url and the network"
    if isinstance(
        exc, (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError)
    ):
        return f"{service} did not answer in time ({exc}); Spillway will retry"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "Spillway's own AWS identity has no credentials (no role, profile or env keys)"
    if code:
        return f"{code}: {error_message(exc)}".rstrip(": ")
    return f"{exc.__class__.__name__}: {exc}"


def is_transient(exc: BaseException) -> bool:
    """Whether an AWS error may go away on its own (throttling, 5xx, timeouts, connections)."""
    status = status_code(exc)
    return (
        error_code(exc) in TRANSIENT_CODES
        or status >= 500
        or status == 429
        or isinstance(exc, _TRANSIENT_TYPES)
    )


def classify(exc: BaseException, message: str) -> Exception:
    """Wrap an AWS error as transient (retry later) or terminal (a person must act)."""
    return TransientError(message) if is_transient(exc) else DestinationError(message)


class AwsAuth:
    """How one destination reaches AWS: its credentials, region, endpoint and External ID."""

    def __init__(
        self, credentials: Any, external_id: str, *, region: str, endpoint_url: str | None
    ) -> None:
        self.credentials = credentials
        self.external_id = external_id
        self.region = region
        self.endpoint_url = endpoint_url
        self._session: boto3.Session | None = None

    @property
    def role(self) -> AssumeRole | None:
        """The role to assume, in role mode."""
        return self.credentials if isinstance(self.credentials, AssumeRole) else None

    @property
    def session(self) -> boto3.Session:
        """A session whose credentials follow the chosen mode (roles assumed on first use).

        In role mode, a refusal to assume the role raises TransientError or DestinationError.
        """
        if self._session is None:
            self._session = self._build_session()
        return self._session

    def service_session(self) -> boto3.Session:
        """Spillway's own identity: the default credential chain."""
        return boto3.Session(region_name=self.region, botocore_session=_botocore_session())

    def client(self, service: str, config: BotoConfig, session: boto3.Session | None = None) -> Any:
        """A client of ``service`` on the destination's endpoint and region."""
        make: Any = (session or self.session).client  # typed per service name; ours is a str
        return make(service, endpoint_url=self.endpoint_url, region_name=self.region, config=config)

    def sts(self, session: boto3.Session | None = None) -> Any:
        """STS on the same endpoint (moto and some compatible services host both)."""
        return self.client("sts", STS_CONFIG, session)

    def _build_session(self) -> boto3.Session:
        credentials = self.credentials
        if isinstance(credentials, AccessKey):
            token = credentials.session_token
            return boto3.Session(
                botocore_session=_botocore_session(),
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key.get_secret_value(),
                aws_session_token=token.get_secret_value() if token else None,
                region_name=self.region,
            )
        if isinstance(credentials, ServiceIdentity):
            return self.service_session()
        if isinstance(credentials, AssumeRole):
            return self._role_session(credentials)
        raise TypeError(f"unknown AWS credentials {type(credentials).__name__}")

    def _role_session(self, role: AssumeRole) -> boto3.Session:
        sts = self.sts(self.service_session())

        def refresh() -> dict[str, str]:
            try:
                response = sts.assume_role(
                    RoleArn=role.role_arn,
                    RoleSessionName=f"spillway-{secrets.token_hex(4)}",
                    ExternalId=self.external_id,
                    DurationSeconds=3600,
                )
            except Failure as exc:
                # Said as a role problem, so no later call blames the bucket or stream for it.
                raise classify(
                    exc,
                    f"could not assume {role.role_arn} with External ID {self.external_id}: "
                    f"{explain(exc, 'STS')}. Check that the role's trust policy names "
                    "Spillway's AWS identity and requires this External ID.",
                ) from exc
            creds = response["Credentials"]
            expiry = creds["Expiration"]
            if isinstance(expiry, datetime):
                expiry_text = expiry.astimezone(UTC).isoformat()
            else:
                expiry_text = str(expiry)
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": expiry_text,
            }

        refreshable = RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        botocore_session = _botocore_session()
        # botocore has no public setter for refreshable credentials; this is the known way.
        botocore_session._credentials = refreshable  # type: ignore[attr-defined]
        botocore_session.set_config_variable("region", self.region)
        return boto3.Session(botocore_session=botocore_session)


_LOADER: Loader | None = None


def _botocore_session() -> BotocoreSession:
    """A fresh botocore session sharing one model loader with every other.

    Each run and each stream builds its own session (credentials differ, and rotate), and a
    new session would parse the service's model JSON again: a few hundred milliseconds of CPU
    each time. The loader caches the parsed models; sharing it makes a new client cheap.
    """
    global _LOADER
    if _LOADER is None:
        _LOADER = create_loader()
    session = get_session()
    session.register_component("data_loader", _LOADER)
    return session
