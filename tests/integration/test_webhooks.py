"""Export webhooks: checked when configured, sent from a bounded background queue through the
outbound policy (the address checked is the address connected to), never inline in a pass."""

from __future__ import annotations

import datetime
import http.server
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from spillway import netpolicy
from spillway.api import models as api_models
from spillway.destinations.base import DestinationError
from spillway.engine import webhooks
from spillway.errors import InputError
from spillway.model import Export
from spillway.services import exports as export_service
from spillway.store import catalog
from spillway.store.db import create_engine, migrate
from tests.integration.destinations.policy import Policy
from tests.integration.exporting import Setup, make_setup
from tests.server_canned import Canned, canned_server
from tests.servers import free_port

# make_setup's local destination needs the operator's SPILLWAY_LOCAL_ROOT.
pytestmark = pytest.mark.usefixtures("local_root")


@pytest.fixture
def sender(monkeypatch: pytest.MonkeyPatch) -> Iterator[webhooks.WebhookSender]:
    """The process's webhook sender, fresh for the test, with a 2 s deadline per call."""
    fresh = webhooks.WebhookSender(size=100, timeout=2.0)
    monkeypatch.setattr(webhooks, "_sender", fresh)
    yield fresh
    fresh.flush(5)


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Setup]:
    """A project with a local destination (on SQLite: webhooks do not depend on the store)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'spillway.db'}")
    migrate(engine)
    yield make_setup(engine, tmp_path)
    engine.dispose()


def fail_every_run(checkpoint: str) -> None:
    """A scheduler hook: the destination refuses every write (terminal: the export fails)."""
    raise DestinationError("the destination refused the write (injected)")


def timed_failing_tick(s: Setup) -> float:
    """Seconds one worker pass takes that turns the export failing (and so calls its webhook)."""
    s.ingest(5)
    s.clock.now += 3600  # a window with events closed: the pass has a run to do
    scheduler = s.scheduler(notify=webhooks.notify, hook=fail_every_run)
    started = time.monotonic()
    done = scheduler.tick()
    took = time.monotonic() - started
    assert done == {"runs": 0, "failed": 1}
    return took


@pytest.mark.parametrize("delay", [1.5, 60.0], ids=["slow", "hanging"])
def test_a_slow_or_hanging_receiver_does_not_delay_the_worker_pass(
    s: Setup,
    sender: webhooks.WebhookSender,
    policy: Policy,
    caplog: pytest.LogCaptureFixture,
    delay: float,
) -> None:
    with canned_server(status=204, body="", delay=delay) as receiver:
        policy.allow(receiver.url)
        export = s.export(webhook_url=f"{receiver.url}/hook?token=abc")
        assert timed_failing_tick(s) < 1.0  # the call was only queued
        assert export_service.get(s.engine, s.project_id, export.id).status == "failing"
        assert sender.flush(10)  # one call: the answer, or the 2 s deadline
        assert receiver.wait_for_requests(1, timeout=1)
        call = receiver.requests[0]
        assert (call["method"], call["path"]) == ("POST", "/hook?token=abc")
        body = orjson.loads(call["body"])
        assert (body["export_id"], body["status"]) == (export.id, "failing")
        assert "injected" in body["reason"]
        if delay > 2.0 + 1:  # hanging: given up at the deadline, said so in the log
            assert "did not answer within 2s" in caplog.text


def test_a_receiver_that_is_down_costs_the_pass_nothing_and_gets_later_calls(
    s: Setup,
    sender: webhooks.WebhookSender,
    policy: Policy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="spillway.engine.webhooks")
    port = free_port()  # listed by the operator, nothing listens there (yet)
    url = f"http://127.0.0.1:{port}/hook"
    policy.allow(url)
    export = s.export(webhook_url=url)
    assert timed_failing_tick(s) < 1.0
    assert sender.flush(5)
    assert export_service.get(s.engine, s.project_id, export.id).status == "failing"
    assert f"webhook for export {export.id} failed (ConnectionRefusedError)" in caplog.text
    # The receiver is back: the next state change reaches it (the sending thread lived on).
    with canned_server(status=204, body="", port=port) as receiver:
        s.clock.now += 301  # past the five minutes a failing export waits to try again
        assert s.scheduler(notify=webhooks.notify).tick() == {"runs": 1, "failed": 0}
        assert sender.flush(5)
        assert receiver.wait_for_requests(1, timeout=1)
        assert len(receiver.requests) == 1  # the call that found it down is not sent again
        body = orjson.loads(receiver.requests[0]["body"])
        assert (body["export_id"], body["status"], body["reason"]) == (export.id, "active", None)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "https://127.0.0.1:{port}/hook",
        "https://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "https://169.254.169.254/latest/meta-data",
        "ftp://127.0.0.1:{port}/",
    ],
)
def test_an_unlisted_loopback_webhook_is_refused_when_configured(
    s: Setup, sender: webhooks.WebhookSender, url: str
) -> None:
    with canned_server() as listener:
        port = listener.url.rsplit(":", 1)[1]
        webhook = url.format(port=port)
        # Refused by the request model (422 over HTTP), or, where it takes a DNS lookup (a host
        # name), by the service off the event loop (also 422): on create and on change alike.
        with pytest.raises((ValidationError, InputError)) as caught:
            s.export(webhook_url=webhook)
        assert "webhook_url" in str(caught.value)
        assert getattr(caught.value, "status_code", 422) == 422
        export = s.export()
        with pytest.raises((ValidationError, InputError)) as patched:
            export_service.update(
                s.engine, s.actor, export.id, api_models.ExportPatch(webhook_url=webhook)
            )
        assert "webhook_url" in str(patched.value)
        assert getattr(patched.value, "status_code", 422) == 422
        assert export_row(s, export).settings.webhook_url is None
        assert sender.flush(5)
        assert listener.connections == 0


def store_webhook(s: Setup, export: Export, url: str) -> None:
    """Write a webhook_url straight into the database, as a server before this check did."""
    settings = {**export_row(s, export).settings.to_json(), "webhook_url": url}
    with s.engine.connect().execution_options(write=True) as conn, conn.begin():
        catalog.update_export(conn, export.id, {"settings": settings})


def export_row(s: Setup, export: Export) -> Export:
    with s.engine.connect() as conn:
        row = catalog.export_by_id(conn, export.id)
    assert row is not None
    return row


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hook", "https://localhost:{port}/hook"])
def test_a_webhook_stored_before_the_upgrade_is_refused_when_sent(
    s: Setup, sender: webhooks.WebhookSender, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    caplog.set_level(logging.WARNING, logger="spillway.engine.webhooks")
    with canned_server() as listener:
        export = s.export()
        store_webhook(s, export, url.format(port=listener.url.rsplit(":", 1)[1]))
        assert timed_failing_tick(s) < 1.0
        assert sender.flush(5)
        assert listener.connections == 0  # refused before connecting: the listener saw nothing
        assert f"webhook for export {export.id} not sent" in caplog.text
        assert "SPILLWAY_ALLOWED_ENDPOINTS" in caplog.text


def test_the_address_checked_is_the_address_connected_to(
    s: Setup,
    sender: webhooks.WebhookSender,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DNS rebinding: a name that resolves to a public address when the webhook is configured
    and to loopback when it is called reaches nothing."""
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])  # the first lookup (the check) sees a public address

    def lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            address = next(answers, "127.0.0.1")  # every later one: loopback
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    with canned_server() as listener:
        port = listener.url.rsplit(":", 1)[1]
        export = s.export(webhook_url=f"https://rebind.example:{port}/hook")
        assert timed_failing_tick(s) < 1.0
        assert sender.flush(5)
        assert listener.connections == 0
        assert "127.0.0.1 is not a public address" in caplog.text
        assert export.id in caplog.text


def test_a_full_queue_drops_the_oldest_call_with_a_warning(
    policy: Policy, caplog: pytest.LogCaptureFixture
) -> None:
    queue = webhooks.WebhookSender(size=2, timeout=5.0)
    with canned_server(status=204, body="", delay=0.5) as receiver:
        policy.allow(receiver.url)
        for number in range(5):
            body = orjson.dumps({"n": number})
            queue.submit(webhooks.Call(f"export-{number}", f"{receiver.url}/h", body))
            time.sleep(0.05 if number == 0 else 0)  # the first one is in flight before the rest
        assert queue.flush(10)
        sent = [orjson.loads(r["body"])["n"] for r in receiver.requests]
    assert sent == [0, 3, 4]  # 1 and 2 were the oldest waiting when 3 and 4 came
    assert queue.dropped == 2
    assert "webhook queue full (2 calls waiting): dropped the oldest, for export export-1" in (
        caplog.text
    )


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture
def tls_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Canned, list[dict[str, Any]]]]:
    """An HTTPS receiver on loopback with a certificate for 'localhost' from a private CA that
    this process trusts (SSL_CERT_FILE), as a receiver with a real certificate would be."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate("Spillway test CA", ca_key, "Spillway test CA", ca_key, True)
    leaf = certificate("localhost", leaf_key, "Spillway test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    calls: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            calls.append({"host": self.headers["Host"], "body": self.rfile.read(length)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Canned(f"https://localhost:{server.server_address[1]}"), calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_https_webhooks_verify_the_receivers_certificate_for_its_host_name(
    tls_receiver: tuple[Canned, list[dict[str, Any]]],
    policy: Policy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver, calls = tls_receiver
    port = receiver.url.rsplit(":", 1)[1]
    by_address = f"https://127.0.0.1:{port}"  # same server, a name its certificate lacks
    policy.allow(receiver.url, by_address)
    queue = webhooks.WebhookSender(size=10, timeout=5.0)
    queue.submit(webhooks.Call("by-name", f"{receiver.url}/hook", b"{}"))
    queue.submit(webhooks.Call("by-address", f"{by_address}/hook", b"{}"))
    assert queue.flush(10)
    assert [call["host"] for call in calls] == [f"localhost:{port}"]
    assert "webhook for export by-address failed (SSLCertVerificationError)" in caplog.text
    assert netpolicy.current().listed(netpolicy.origin_of(receiver.url))
