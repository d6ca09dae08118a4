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
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig
from botocore.credentials import RefreshableCredentials
from botocore.loaders import Loader, create_loader
from botocore.parsers import ResponseParserError, ResponseParserFactory
from botocore.session import Session as BotocoreSession
from botocore.session import get_session

from spillway import netpolicy
from spillway.destinations.aws.config import AccessKey, AssumeRole, ServiceIdentity
from spillway.destinations.aws.service_identity import ENDPOINT_REFUSED
from spillway.destinations.base import (
    VALIDATION_READ_TIMEOUT,
    CredentialsRejected,
    DestinationError,
    is_validating,
)
from spillway.errors import TransientError


class NotAwsResponse(botocore.exceptions.BotoCoreError):
    """An answer that is not the service's protocol (an HTML page, a proxy's error, garbage).

    Raised in place of botocore's ResponseParserError (whose message holds the body) and of
    errors whose "message" would be the body: nothing of it is kept.
    """

    fmt = "the endpoint answered with something that is not an AWS response (HTTP status {status})"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status = int(kwargs.get("status") or 0)


# Any error boto3 raises for a request (the service's answer or the transport's).
Failure = (
    botocore.exceptions.ClientError,
    botocore.exceptions.BotoCoreError,
    ResponseParserError,
)
VALIDATION_CONFIG = BotoConfig(
    retries={"mode": "standard", "max_attempts": 1},
    connect_timeout=5,
    read_timeout=VALIDATION_READ_TIMEOUT,
)


def _for_now(config: BotoConfig) -> BotoConfig:
    """The client config, with short timeouts and one attempt inside a validation."""
    return config.merge(VALIDATION_CONFIG) if is_validating() else config


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
# The credentials themselves were refused (not one action's permission): every call made with
# them fails the same way, so the destination, not only the export that met it, is failing.
REJECTED_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "TokenRefreshRequired",
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
# What an AWS error code looks like (InvalidAccessKeyId, KMS.NotFoundException, 403 …);
# anything else an endpoint puts there is replaced by the HTTP status.
_CODE_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9._:-]{0,99}|\d{3}")
_JSON_PROTOCOLS = frozenset({"json", "rest-json"})
_MESSAGE_LIMIT = 300


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


def answer_part(response: Any, key: str) -> dict[str, Any]:
    """``response[key]`` of a parsed answer, or NotAwsResponse when the endpoint left it out."""
    part = response.get(key) if isinstance(response, dict) else None
    if not isinstance(part, dict):
        metadata = response.get("ResponseMetadata", {}) if isinstance(response, dict) else {}
        raise NotAwsResponse(status=metadata.get("HTTPStatusCode", 0))
    return part


def explain(exc: BaseException, service: str) -> str:
    """A sentence a person can act on, for the errors every AWS service shares.

    Kinds first handle what is theirs (a missing bucket or stream), then fall back to this.
    Never the body of an answer: only the service's error code and, from AWS's own or an
    operator-listed endpoint, its message (see :class:`_GuardedParser`).
    """
    if isinstance(exc, (NotAwsResponse, ResponseParserError)):
        status = exc.status if isinstance(exc, NotAwsResponse) else 0
        return (
            f"the {service} endpoint answered with something that is not an AWS response "
            f"(HTTP status {status or 'unknown'}): check endpoint_url"
        )
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
        return unreachable(exc, service)
    if isinstance(
        exc, (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError)
    ):
        return f"{service} did not answer in time ({exc}); Spillway will retry"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "Spillway's own AWS identity has no credentials (no role, profile or env keys)"
    if code:
        return f"{code}: {error_message(exc)}".rstrip(": ")
    if isinstance(exc, botocore.exceptions.HTTPClientError) and not isinstance(
        exc, botocore.exceptions.ConnectionClosedError
    ):
        # Its text may quote what the other end sent (a status line that is not HTTP).
        return (
            f"the connection to the {service} endpoint failed ({exc.__class__.__name__}): "
            "check endpoint_url and the network"
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return f"{exc.__class__.__name__}: {exc}"
    return f"{exc.__class__.__name__} while calling {service}"


def unreachable(exc: BaseException, service: str) -> str:
    """A connection that never got an answer, said as such: the endpoint, why (refused, no such
    host, timed out), and what to check. Never said as a refusal of the credentials: nothing
    judged them."""
    kwargs = getattr(exc, "kwargs", None) or {}
    endpoint = str(kwargs.get("endpoint_url") or "").rstrip("/")
    where = f"the {service} endpoint {endpoint}" if endpoint else f"the {service} endpoint"
    return f"cannot reach {where} ({_why(exc)}): check endpoint_url, that the service is " + (
        "running there, and that this server's network can reach it"
    )


def _why(exc: BaseException) -> str:
    """Why a connection failed, in a few words."""
    if isinstance(exc, botocore.exceptions.ConnectTimeoutError):
        return "the connection timed out"
    if isinstance(exc, botocore.exceptions.ReadTimeoutError):
        return "no answer in time"
    if isinstance(exc, botocore.exceptions.ConnectionClosedError):
        return "the connection was closed"
    cause = str((getattr(exc, "kwargs", None) or {}).get("error") or exc).lower()
    if "refused" in cause:
        return "connection refused"
    if any(
        words in cause
        for words in ("name or service not known", "name resolution", "nodename", "getaddrinfo")
    ):
        return "no such host: the name does not resolve"
    if "timed out" in cause:
        return "the connection timed out"
    return "no connection"


def is_unreachable(exc: BaseException) -> bool:
    """A connection that failed or timed out (no answer at all)."""
    return isinstance(exc, (botocore.exceptions.ConnectionError, *_TRANSIENT_TYPES))


def explain_own(exc: BaseException) -> str:
    """:func:`explain` for a call of Spillway's own identity to STS: its endpoint is the
    operator's (not the project's to fix, and not to be shown to the project)."""
    if is_unreachable(exc):
        return (
            "Spillway cannot reach STS with its own AWS identity: the operator must check the "
            "server's network (and AWS_ENDPOINT_URL_STS, if set); Spillway will retry"
        )
    return explain(exc, "STS")


def is_transient(exc: BaseException) -> bool:
    """Whether an AWS error may go away on its own (throttling, 5xx, timeouts, connections)."""
    status = exc.status if isinstance(exc, NotAwsResponse) else status_code(exc)
    return (
        error_code(exc) in TRANSIENT_CODES
        or status >= 500
        or status == 429
        or isinstance(exc, _TRANSIENT_TYPES)
    )


def classify(exc: BaseException, message: str) -> Exception:
    """Wrap an AWS error as transient (retry later) or terminal (a person must act); terminal
    errors that refuse the credentials themselves are :class:`CredentialsRejected`."""
    if is_transient(exc):
        return TransientError(message)
    if error_code(exc) in REJECTED_CODES:
        return CredentialsRejected(message)
    return DestinationError(message)


class AwsAuth:
    """How one destination reaches AWS: its credentials, region, endpoint and External ID.

    Two identities, kept apart:

    - the destination's (an access key, or the role assumed in role mode) talks to the
      destination's endpoint: ``endpoint_url`` when set (an origin the operator allows), else
      the one botocore resolves;
    - Spillway's own (the default credential chain: AssumeRole and GetCallerIdentity in role
      mode, everything in service_identity mode) talks only to the endpoints botocore resolves,
      which honour the operator's ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``, never
      to the destination's ``endpoint_url``: that URL is the project's to choose.

    ``refusal`` (from the kind's ``build``: the operator no longer allows this destination)
    makes every client refuse with a DestinationError before any connection is made.
    """

    def __init__(
        self,
        credentials: Any,
        external_id: str,
        *,
        region: str,
        endpoint_url: str | None,
        refusal: str | None = None,
    ) -> None:
        self.credentials = credentials
        self.external_id = external_id
        self.region = region
        self.endpoint_url = endpoint_url or None
        self.refusal = refusal or _endpoint_refusal(credentials, self.endpoint_url)
        # Error messages from the destination's endpoint are shown only when the operator
        # stands behind it (AWS as botocore resolves it, or an origin the operator listed).
        self.trusted = self.refusal is None and _trusted(self.endpoint_url)
        self._session: boto3.Session | None = None

    @property
    def role(self) -> AssumeRole | None:
        """The role to assume, in role mode."""
        return self.credentials if isinstance(self.credentials, AssumeRole) else None

    @property
    def own_identity(self) -> bool:
        """Whether Spillway's own identity proves itself (role and service_identity modes)."""
        return not isinstance(self.credentials, AccessKey)

    def refuse_if_not_allowed(self) -> None:
        """Raise the DestinationError that says why this destination may not be used."""
        if self.refusal is not None:
            raise DestinationError(self.refusal)

    @property
    def session(self) -> boto3.Session:
        """A session whose credentials follow the chosen mode (roles assumed on first use).

        In role mode, a refusal to assume the role raises TransientError or DestinationError.
        """
        self.refuse_if_not_allowed()
        if self._session is None:
            self._session = self._build_session()
        return self._session

    def service_session(self) -> boto3.Session:
        """Spillway's own identity: the default credential chain."""
        self.refuse_if_not_allowed()
        return boto3.Session(
            region_name=self.region, botocore_session=_botocore_session(trusted=True)
        )

    def client(self, service: str, config: BotoConfig) -> Any:
        """A client of ``service`` with the destination's credentials, on its endpoint."""
        config = _for_now(config)
        session = self.session
        if isinstance(self.credentials, ServiceIdentity) and self.endpoint_url:
            raise DestinationError(ENDPOINT_REFUSED)  # never reached: refused when parsed
        make: Any = session.client  # typed per service name; ours is a str
        return make(service, endpoint_url=self.endpoint_url, region_name=self.region, config=config)

    def own_client(self, service: str, config: BotoConfig) -> Any:
        """A client of ``service`` as Spillway's own identity, on the endpoint botocore resolves
        (the operator's AWS_ENDPOINT_URL_* settings apply; the destination's endpoint never)."""
        make: Any = self.service_session().client
        return make(service, region_name=self.region, config=_for_now(config))

    def own_sts(self) -> Any:
        """STS as Spillway's own identity (AssumeRole, GetCallerIdentity)."""
        return self.own_client("sts", STS_CONFIG)

    def identity_sts(self) -> Any:
        """The STS that proves the credentials: Spillway's own in role and service_identity
        modes, else the access key's, on the destination's endpoint (some compatible services
        host STS too)."""
        return self.own_sts() if self.own_identity else self.client("sts", STS_CONFIG)

    def _build_session(self) -> boto3.Session:
        credentials = self.credentials
        if isinstance(credentials, AccessKey):
            token = credentials.session_token
            return boto3.Session(
                botocore_session=_botocore_session(trusted=self.trusted),
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
        sts = self.own_sts()

        def refresh() -> dict[str, str]:
            try:
                response = sts.assume_role(
                    RoleArn=role.role_arn,
                    RoleSessionName=f"spillway-{secrets.token_hex(4)}",
                    ExternalId=self.external_id,
                    DurationSeconds=3600,
                )
                creds = answer_part(response, "Credentials")
                expiry = creds["Expiration"]
                found = {
                    "access_key": str(creds["AccessKeyId"]),
                    "secret_key": str(creds["SecretAccessKey"]),
                    "token": str(creds["SessionToken"]),
                }
            except (*Failure, KeyError) as exc:
                # Said as a role problem, so no later call blames the bucket or stream for it.
                said = "STS left the credentials out" if isinstance(exc, KeyError) else None
                failure = classify(
                    exc,
                    f"could not assume {role.role_arn} with External ID {self.external_id}: "
                    f"{said or explain_own(exc)}. Check that the role's trust policy names "
                    "Spillway's AWS identity and requires this External ID.",
                )
                if isinstance(failure, DestinationError) and error_code(exc):
                    # STS refused: the role is this destination's credentials.
                    failure = CredentialsRejected(str(failure))
                raise failure from exc
            if isinstance(expiry, datetime):
                expiry_text = expiry.astimezone(UTC).isoformat()
            else:
                expiry_text = str(expiry)
            return {**found, "expiry_time": expiry_text}

        refreshable = RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        botocore_session = _botocore_session(trusted=self.trusted)
        # botocore has no public setter for refreshable credentials; this is the known way.
        botocore_session._credentials = refreshable  # type: ignore[attr-defined]
        botocore_session.set_config_variable("region", self.region)
        return boto3.Session(botocore_session=botocore_session)


def _endpoint_refusal(credentials: Any, endpoint_url: str | None) -> str | None:
    """Why the destination's endpoint may not be used now (the operator's policy), or None."""
    if endpoint_url is None:
        return None
    if isinstance(credentials, ServiceIdentity):
        return ENDPOINT_REFUSED
    try:
        netpolicy.current().check_endpoint(
            endpoint_url, field="endpoint_url", provider=netpolicy.AWS_DOMAINS
        )
    except netpolicy.Refused as exc:
        return str(exc)
    return None


def _trusted(endpoint_url: str | None) -> bool:
    """AWS as botocore resolves it (the operator's settings), or an origin the operator lists."""
    if endpoint_url is None:
        return True
    try:
        return netpolicy.current().listed(netpolicy.origin_of(endpoint_url))
    except netpolicy.Refused:
        return False


def is_aws_endpoint(url: str | None) -> bool:
    """Whether a resolved endpoint is AWS's own (https on an AWS domain)."""
    parts = urlsplit(url or "")
    host = (parts.hostname or "").rstrip(".")
    return parts.scheme == "https" and any(
        host == domain or host.endswith("." + domain) for domain in netpolicy.AWS_DOMAINS
    )


class _GuardedParser:
    """botocore's parser for one protocol, minus what an endpoint could smuggle into messages.

    - an answer the protocol's parser cannot read (an HTML page, a proxy's error) becomes
      :class:`NotAwsResponse` with the HTTP status only; botocore would put the body in the
      error's message (JSON protocols) or in ResponseParserError's text;
    - an error code that does not look like one is replaced by the HTTP status;
    - from an endpoint the operator does not stand behind, the error message is dropped (the
      code is what advice is built from); from others it is cut short.
    """

    def __init__(self, inner: Any, protocol: str, trusted: bool) -> None:
        self._inner = inner
        self._json = protocol in _JSON_PROTOCOLS
        self._trusted = trusted

    def parse(self, response: dict[str, Any], shape: Any) -> Any:
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        body = body if isinstance(body, bytes) else b""
        moto_xml = None
        if self._json and body and body[:64].lstrip()[:1] != b"{":
            # moto answers some JSON-protocol errors in XML: keep their code, nothing else.
            moto_xml = _XML_CODE.search(body.decode("utf-8", "replace")) if status >= 300 else None
            if moto_xml is None:
                raise NotAwsResponse(status=status)
        try:
            parsed = self._inner.parse(response, shape)
        except Exception:  # ResponseParserError, or a value of the wrong type deep inside
            raise NotAwsResponse(status=status) from None
        error = parsed.get("Error") if isinstance(parsed, dict) else None
        if isinstance(error, dict) and status >= 300:
            code = str(error.get("Code") or "")
            message = str(error.get("Message") or "")
            if moto_xml is not None:
                code = moto_xml.group(1)
                found = _XML_MESSAGE.search(body.decode("utf-8", "replace"))
                message = found.group(1) if found else ""
            elif body and code.isdigit() and not self._json:
                # botocore could not read the XML body and fell back to the status.
                raise NotAwsResponse(status=status)
            elif self._json and body and message == body.decode("utf-8", "replace"):
                raise NotAwsResponse(status=status)  # not JSON after all: botocore kept it all
            if not _CODE_SHAPE.fullmatch(code):
                code = str(status)
            error["Code"] = code
            error["Message"] = _short(message) if self._trusted else ""
        return parsed


def _short(message: str) -> str:
    text = "".join(char if char.isprintable() else " " for char in message).strip()
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


class _GuardedParsers(ResponseParserFactory):
    def __init__(self, trusted: bool) -> None:
        super().__init__()
        self._trusted = trusted

    def create_parser(self, protocol_name: str) -> Any:
        inner = super().create_parser(protocol_name)
        return _GuardedParser(inner, protocol_name, self._trusted)


_LOADER: Loader | None = None
_PARSERS = {trusted: _GuardedParsers(trusted) for trusted in (True, False)}


def _botocore_session(*, trusted: bool) -> BotocoreSession:
    """A fresh botocore session sharing one model loader with every other.

    Each run and each stream builds its own session (credentials differ, and rotate), and a
    new session would parse the service's model JSON again: a few hundred milliseconds of CPU
    each time. The loader caches the parsed models; sharing it makes a new client cheap.
    ``trusted`` says whether error messages of the endpoints it will talk to may be shown.
    """
    global _LOADER
    if _LOADER is None:
        _LOADER = create_loader()
    session = get_session()
    session.register_component("data_loader", _LOADER)
    session.register_component("response_parser_factory", _PARSERS[trusted])
    return session
