"""Outbound policy: URLs that URL parsers read differently, and IPv6 forms of IPv4 addresses."""

from __future__ import annotations

import ipaddress

import pytest

from spillway.netpolicy import GCS_DOMAINS, Origin, Policy, Refused, is_public, origin_of


@pytest.mark.parametrize(
    "url",
    [
        # urllib3 (requests) reads the host as "evil.example": the backslash ends it.
        "https://evil.example\\.storage.googleapis.com/b",
        "https://evil.example%2f.storage.googleapis.com",
        "https://evil.example;.storage.googleapis.com",
        "https://storage.googleapis.com /x",
        "https://stor\tage.googleapis.com",  # urlsplit drops the tab, others may not
        "https://storage.googleapis.com\n",
    ],
)
def test_hosts_parsers_disagree_on_are_refused(url: str) -> None:
    with pytest.raises(Refused):
        Policy().check_endpoint(url, field="endpoint_url", provider=GCS_DOMAINS)


def test_ordinary_host_names_still_pass() -> None:
    assert origin_of("http://minio_1.internal:9000") == Origin("http", "minio_1.internal", 9000)
    assert origin_of("https://xn--bcher-kva.example") == Origin(
        "https", "xn--bcher-kva.example", 443
    )
    assert origin_of("http://[fd00::1]:80") == Origin("http", "fd00::1", 80)
    assert Policy().check_endpoint(
        "https://acme.storage.googleapis.com", field="e", provider=GCS_DOMAINS
    )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:808:808::", True),  # 6to4 of 8.8.8.8
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::ffff:8.8.8.8", True),
    ],
)
def test_ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address(
    address: str, public: bool
) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_a_webhook_to_nat64_loopback_is_refused() -> None:
    with pytest.raises(Refused, match="non-public"):
        Policy().check_webhook("https://[64:ff9b::7f00:1]/hook")
