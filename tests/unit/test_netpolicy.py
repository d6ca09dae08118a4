"""The outbound policy: which URLs a project may make Spillway connect to."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from spillway import netpolicy
from spillway.netpolicy import AWS_DOMAINS, Origin, Policy, Refused, is_public, origin_of


def test_origin_fills_in_default_ports_and_lowercases() -> None:
    assert origin_of("https://S3.Example.COM/bucket?x=1") == Origin("https", "s3.example.com", 443)
    assert origin_of("http://127.0.0.1:9000") == Origin("http", "127.0.0.1", 9000)
    assert str(origin_of("http://[::1]:8080/")) == "http://[::1]:8080"


@pytest.mark.parametrize(
    "url",
    ["ftp://host", "host:9000", "", "https://", "http://user:pw@host", "http://host:99999"],
)
def test_origin_refuses_what_is_not_an_http_url(url: str) -> None:
    with pytest.raises(Refused):
        origin_of(url)


def test_allowed_list_takes_origins_only() -> None:
    policy = Policy.from_text(" http://127.0.0.1:9000 , https://minio.example.com ")
    assert policy.allowed == {
        Origin("http", "127.0.0.1", 9000),
        Origin("https", "minio.example.com", 443),
    }
    with pytest.raises(Refused, match="origin only"):
        Policy.from_text("http://127.0.0.1:9000/bucket")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::", False),
        ("224.0.0.1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_custom_endpoint_needs_the_provider_domain_or_a_listing() -> None:
    policy = Policy.from_text("http://127.0.0.1:9000")
    assert policy.check_endpoint("http://127.0.0.1:9000", field="endpoint_url")
    assert policy.check_endpoint(
        "https://s3.eu-west-1.amazonaws.com", field="e", provider=AWS_DOMAINS
    )
    for url in (
        "http://127.0.0.1:9001",  # another port of a listed host
        "https://127.0.0.1:9000",  # another scheme
        "http://s3.amazonaws.com",  # the provider's domain, but not https
        "https://amazonaws.com.evil.example",  # looks like it, isn't
        "http://169.254.169.254",
    ):
        with pytest.raises(Refused, match="SPILLWAY_ALLOWED_ENDPOINTS"):
            policy.check_endpoint(url, field="endpoint_url", provider=AWS_DOMAINS)


def test_webhooks_go_to_public_https_unless_listed() -> None:
    policy = Policy.from_text("http://127.0.0.1:8099")
    assert policy.check_webhook("http://127.0.0.1:8099/hook")
    assert policy.check_webhook("https://8.8.8.8/hook")
    for url, words in (
        ("http://8.8.8.8/hook", "https"),
        ("https://127.0.0.1:8100/hook", "non-public"),
        ("https://[::1]/hook", "non-public"),
        ("https://localhost:8100/hook", "non-public"),
        ("https://169.254.169.254/latest", "non-public"),
    ):
        with pytest.raises(Refused, match=words):
            policy.check_webhook(url)


@pytest.fixture
def listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback TCP listener that records the connections it accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()
    for conn in accepted:
        conn.close()


def test_connect_refuses_a_private_address_and_makes_no_connection(
    listener: tuple[int, list[socket.socket]],
) -> None:
    port, accepted = listener
    with pytest.raises(Refused, match="not a public address"):
        Policy().connect(Origin("http", "localhost", port), timeout=2)
    with pytest.raises(Refused):
        Policy().connect(Origin("http", "127.0.0.1", port), timeout=2)
    assert accepted == []


def test_connect_reaches_a_listed_origin(listener: tuple[int, list[socket.socket]]) -> None:
    port, accepted = listener
    policy = Policy.from_text(f"http://127.0.0.1:{port}")
    sock = policy.connect(Origin("http", "127.0.0.1", port), timeout=2)
    sock.close()
    deadline = time.monotonic() + 5
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(accepted) == 1


def test_current_reads_the_setting_once(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = netpolicy.current()
    try:
        monkeypatch.setenv("SPILLWAY_ALLOWED_ENDPOINTS", "http://10.0.0.5:9000")
        netpolicy._current = None
        assert netpolicy.current().allowed == {Origin("http", "10.0.0.5", 9000)}
    finally:
        netpolicy.configure(saved)
