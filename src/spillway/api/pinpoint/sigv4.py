"""SigV4 on the Pinpoint-compatible routes, verified with botocore's own signer.

The access key id is an integration key's ``key_id`` and the secret its secret. The request is
rebuilt exactly as the client signed it — the raw (still percent-encoded) path, the decoded
query pairs, only the headers named in ``SignedHeaders``, the client's ``X-Amz-Date`` — and
botocore computes the signature we compare with ``hmac.compare_digest``. The algorithm is never
written here: a client and this check cannot disagree on a detail of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from spillway.errors import Forbidden

# How far a request's X-Amz-Date may be from our clock, either way (AWS allows 15 minutes).
SKEW = dt.timedelta(minutes=15)
SERVICE = "mobiletargeting"
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


@dataclass(frozen=True, slots=True)
class Signed:
    """What the ``Authorization`` header claims: who signed, for which day, region, service."""

    key_id: str
    date: str  # yyyymmdd
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str | None) -> Signed:
    """The claims of a SigV4 ``Authorization`` header, or Forbidden saying what is wrong."""
    if not header:
        raise Forbidden(
            "Missing Authentication Token: sign the request with SigV4 (an integration key's "
            "key id as the access key id, its secret as the secret access key)"
        )
    found = _AUTH.match(header.strip())
    if found is None:
        raise Forbidden("the Authorization header is not an AWS4-HMAC-SHA256 signature")
    parts = found["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise Forbidden(
            "the signature's Credential is not <key id>/<date>/<region>/<service>/aws4_request"
        )
    key_id, date, region, service, _ = parts
    signed = tuple(found["signed"].split(";"))
    return Signed(key_id, date, region, service, signed, found["signature"])


def verify(
    *,
    method: str,
    host: str,
    raw_path: bytes,
    query_string: bytes,
    headers: Mapping[str, Sequence[str]],
    body: bytes,
    signed: Signed,
    secret: str,
    now: dt.datetime | None = None,
) -> None:
    """Check a request's signature (Forbidden when it does not hold). ``headers`` maps each
    lower-case name to its values as received (repeated headers are joined with ``,``)."""
    stamp = _first(headers, "x-amz-date")
    if stamp is None:
        raise Forbidden("the request has no X-Amz-Date header; sign it with SigV4")
    try:
        moment = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise Forbidden(f"X-Amz-Date {stamp!r} is not yyyymmddThhmmssZ") from None
    if stamp[:8] != signed.date:
        raise Forbidden("the signature's date does not match X-Amz-Date")
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - moment) > SKEW:
        raise Forbidden(
            f"Signature expired: {stamp} is more than 15 minutes from the server's time "
            f"{now.strftime('%Y%m%dT%H%M%SZ')} (check the client's clock)"
        )
    if "host" not in signed.signed_headers:
        raise Forbidden("the signature must cover the Host header")
    declared = _first(headers, "x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        # botocore would trust the declared hash (UNSIGNED-PAYLOAD included): check it here.
        raise Forbidden("x-amz-content-sha256 does not match the body")
    request = AWSRequest(
        method=method,
        url="http://" + host + raw_path.decode("latin-1"),
        data=body,
        # Pairs, not a mapping: a repeated key signs as the client sent it (botocore takes
        # either; its type hints say only the mapping).
        params=_query_pairs(query_string),  # type: ignore[arg-type]
    )
    for name in signed.signed_headers:
        values = headers.get(name)
        if values is None:
            raise Forbidden(f"the signed header {name!r} is not in the request")
        request.headers[name] = ",".join(values)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(signed.key_id, secret), signed.service, signed.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signed.signature):
        raise Forbidden(
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method (the secret, the endpoint URL, a proxy that "
            "changes the Host, the path or the body)"
        )


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = headers.get(name)
    return ",".join(values) if values else None


def _query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    """The query as decoded pairs, in order (``unquote``, not ``parse_qsl``: a ``+`` stays)."""
    pairs = []
    for item in query_string.decode("latin-1").split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs
