"""Where a project may make Spillway connect: the operator's outbound policy.

Projects name URLs (custom endpoints, Azure account URLs, webhooks). A key holder must not be
able to point the server at its own network (loopback services, the cloud metadata address,
private hosts) and read answers back. So Spillway connects only to:

- the providers' own public endpoints (``*.amazonaws.com``, ``storage.googleapis.com``,
  ``*.blob.core.windows.net`` …) over https;
- origins the operator lists in ``SPILLWAY_ALLOWED_ENDPOINTS`` (``scheme://host[:port]``);
- for webhooks, any https address that resolves to public IP addresses only.

The URL is checked when it is configured (in the config models, so ``force`` cannot skip it)
and webhooks again at connect time on the address actually used (:func:`connect`), so a DNS
answer that changes between the check and the call cannot reach a private address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SETTING = "SPILLWAY_ALLOWED_ENDPOINTS"

# The providers' own endpoint domains (https only); a host equal to one or below it is theirs.
AWS_DOMAINS = ("amazonaws.com", "amazonaws.com.cn", "api.aws")
GCS_DOMAINS = ("storage.googleapis.com",)
AZURE_BLOB_DOMAINS = (
    "blob.core.windows.net",
    "blob.core.chinacloudapi.cn",
    "blob.core.usgovcloudapi.net",
    "blob.core.cloudapi.de",
)
# Where Google service-account keys get tokens; a key file naming another token_uri is refused.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
GOOGLE_TOKEN_DOMAINS = ("oauth2.googleapis.com", "accounts.google.com", "www.googleapis.com")


# A host name as clients parse it: letters, digits, '-', '_' and dots. Anything else ('\\', '%',
# ';' …) is where URL parsers disagree (urllib3 reads "https://evil\\.storage.googleapis.com" as
# host "evil"), so it is refused rather than guessed at.
_HOST = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$")
# NAT64's well-known prefix: the last 32 bits are an IPv4 address a gateway connects to.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class Refused(ValueError):
    """A URL or address the policy does not allow; the message says what to change."""


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """``scheme://host:port``, the unit the operator allows."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def origin_of(url: str, what: str = "URL") -> Origin:
    """The origin of an http(s) URL, or :class:`Refused` saying why it is not one."""
    if not isinstance(url, str) or not url.strip():
        raise Refused(f"{what} must be an http:// or https:// URL")
    if (
        "\\" in url
        or " " in url.strip()
        or any(ord(char) < 0x20 or ord(char) == 0x7F for char in url)
    ):
        raise Refused(f"{what} must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise Refused(f"{what} is not a valid URL (check the host and port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"{what} must be an http:// or https:// URL with a host name")
    if parts.username is not None or parts.password is not None:
        raise Refused(f"{what} must not carry a user name or password")
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:
        if _literal(host) is None:
            raise Refused(f"{what} has an IPv6 address that is not valid")
    elif len(host) > 253 or not _HOST.match(host):
        raise Refused(
            f"{what} has a host name with characters a host name cannot have (only letters, "
            "digits, '-', '_' and '.')"
        )
    default = 443 if parts.scheme == "https" else 80
    return Origin(parts.scheme, host, port or default)


def parse_allowed(text: str) -> frozenset[Origin]:
    """Read ``SPILLWAY_ALLOWED_ENDPOINTS``; an entry that is not a bare origin is an error."""
    origins = set()
    for raw in (part.strip() for part in (text or "").split(",")):
        if not raw:
            continue
        origin = origin_of(raw, f"{SETTING} entry {raw!r}")
        path = urlsplit(raw).path
        if path not in ("", "/") or "?" in raw or "#" in raw:
            raise Refused(
                f"{SETTING} entry {raw!r} must be an origin only (scheme://host[:port]), "
                "without a path"
            )
        origins.add(origin)
    return frozenset(origins)


def is_public(address: IPAddress) -> bool:
    """True for an address on the public internet (not loopback, private, link-local …)."""
    if isinstance(address, ipaddress.IPv6Address):
        # Forms that carry an IPv4 address a host or gateway may end up connecting to.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and int(address) >> 32 == 0:  # IPv4-compatible (::a.b.c.d)
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _on_domain(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in domains)


@dataclass(frozen=True, slots=True)
class Policy:
    """The operator's outbound policy: the listed origins."""

    allowed: frozenset[Origin] = frozenset()

    @classmethod
    def from_text(cls, text: str) -> Policy:
        """Build from the setting's value."""
        return cls(parse_allowed(text))

    def listed(self, origin: Origin) -> bool:
        """Whether the operator listed this origin."""
        return origin in self.allowed

    def _hint(self) -> str:
        listed = ", ".join(str(o) for o in sorted(self.allowed)) or "none"
        return f"ask the operator to add it to {SETTING} (listed now: {listed})"

    def check_endpoint(self, url: str, *, field: str, provider: tuple[str, ...] = ()) -> str:
        """A custom endpoint: a listed origin, or https on one of ``provider``'s domains."""
        origin = origin_of(url, field)
        if self.listed(origin):
            return url
        if origin.scheme == "https" and _on_domain(origin.host, provider):
            # Some provider names resolve to addresses inside the operator's network (VPC
            # endpoints, internal load balancers, private APIs): those need listing too.
            try:
                addresses = _resolve(origin.host, origin.port)
            except OSError:
                return url  # DNS may be down now; the call would fail the same way
            private = [str(a) for a in addresses if not is_public(a)]
            if private:
                raise Refused(
                    f"{field} host {origin.host} resolves to a non-public address "
                    f"({private[0]}): leave it empty to use the provider's own endpoint, or "
                    f"{self._hint()}"
                )
            return url
        own = f" (by default only https endpoints under {', '.join(provider)})" if provider else ""
        raise Refused(
            f"{field} {origin} is not an allowed endpoint{own}: leave it empty to use the "
            f"provider's own endpoint, or {self._hint()}"
        )

    def check_webhook(self, url: str, *, field: str = "webhook_url", resolve: bool = True) -> str:
        """A webhook: a listed origin, or https to a host with public addresses only.

        ``resolve=False`` skips looking the host name up (what may block for seconds): for
        request models, parsed on the event loop; the full check then runs off the loop.
        """
        origin = origin_of(url, field)
        if self.listed(origin):
            return url
        if origin.scheme != "https":
            raise Refused(
                f"{field} must use https:// (plain http only to an origin the operator lists "
                f"in {SETTING})"
            )
        literal = _literal(origin.host)
        if literal is not None:
            if not is_public(literal):
                raise Refused(
                    f"{field} points at {literal}, a non-public address; webhooks go to public "
                    f"https addresses, or {self._hint()}"
                )
            return url
        if not resolve:
            return url
        try:
            addresses = _resolve(origin.host, origin.port)
        except OSError:
            return url  # DNS may be down now; connect() checks the address when it calls
        private = [str(a) for a in addresses if not is_public(a)]
        if private:
            raise Refused(
                f"{field} host {origin.host} resolves to a non-public address ({private[0]}); "
                f"webhooks go to public https addresses, or {self._hint()}"
            )
        return url

    def connect(self, origin: Origin, timeout: float) -> socket.socket:
        """Open a TCP connection to ``origin``, on a public address unless it is listed.

        The address checked is the address connected to: no second DNS lookup in between.
        """
        addresses = _resolve(origin.host, origin.port)
        if not self.listed(origin):
            refused = [a for a in addresses if not is_public(a)]
            addresses = [a for a in addresses if is_public(a)]
            if not addresses:
                shown = refused[0] if refused else origin.host
                raise Refused(
                    f"refused to connect to {origin} ({shown} is not a public address); "
                    f"{self._hint()}"
                )
        last: OSError | None = None
        for address in addresses:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect((str(address), origin.port))
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return sock
        raise last or OSError(f"could not connect to {origin}")


def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


_current: Policy | None = None


def configure(policy: Policy) -> None:
    """Set the process's policy (at start-up, from the settings)."""
    global _current
    _current = policy


def current() -> Policy:
    """The process's policy; read from the environment on first use if nobody configured it."""
    global _current
    if _current is None:
        from spillway.settings import Settings

        _current = Policy.from_text(Settings().allowed_endpoints)
    return _current
