"""The optional webhook an export calls once per state change (active ↔ failing).

A webhook URL is the project's to choose, so it never runs in the worker's pass and never goes
anywhere the operator has not allowed:

- :func:`notify` only queues the call. One daemon thread sends them, one at a time, from a
  bounded queue (``SPILLWAY_WEBHOOK_QUEUE_SIZE``; when it is full the oldest call is dropped,
  with a warning in the log). A receiver that is down, slow or hanging costs that thread at
  most ``SPILLWAY_WEBHOOK_TIMEOUT_SECONDS`` per call (connect, send and answer together), and
  no export ever waits for it.
- The URL was checked when it was configured (``netpolicy.check_webhook``: https to public
  addresses, or an origin listed in ``SPILLWAY_ALLOWED_ENDPOINTS``). At send time the
  connection is opened by :meth:`spillway.netpolicy.Policy.connect`, which resolves the host
  once and connects only to an address it allows: the address checked is the address used (no
  DNS-rebinding window), and a URL stored before the policy existed is refused without any
  connection. TLS is verified against the URL's host name. Redirects are not followed, and
  nothing of the answer but its status is kept.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from spillway import netpolicy
from spillway.model import Export

log = logging.getLogger(__name__)
ANSWER_LIMIT = 64 * 1024  # bytes of an answer read (and dropped) before closing
USER_AGENT = "Spillway-Webhook/1"


@dataclass(frozen=True, slots=True)
class Call:
    """One POST waiting to go out."""

    export_id: str
    url: str
    body: bytes


class _Connection(http.client.HTTPConnection):
    """Plain HTTP to a checked address (only ever an origin the operator lists)."""

    def __init__(self, policy: netpolicy.Policy, origin: netpolicy.Origin, timeout: float):
        super().__init__(origin.host, origin.port, timeout=timeout)
        self._policy, self._origin, self._seconds = policy, origin, timeout

    def connect(self) -> None:
        self.sock = self._policy.connect(self._origin, self._seconds)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, the certificate verified against the URL's host name."""

    def __init__(self, policy: netpolicy.Policy, origin: netpolicy.Origin, timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(origin.host, origin.port, timeout=timeout, context=self._tls)
        self._policy, self._origin, self._seconds = policy, origin, timeout

    def connect(self) -> None:
        raw = self._policy.connect(self._origin, self._seconds)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self._tls.wrap_socket(raw, server_hostname=self._origin.host)
        except BaseException:
            raw.close()
            raise


def _shut(connection: http.client.HTTPConnection) -> None:
    """Unblock whatever the sending thread waits for: the call's deadline passed."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def post(policy: netpolicy.Policy, url: str, body: bytes, timeout: float) -> int:
    """POST ``body`` as JSON to ``url`` through ``policy``; the answer's status.

    Raises netpolicy.Refused (nothing was sent), or OSError / http.client.HTTPException.
    ``timeout`` bounds the whole call: a watchdog shuts the socket when it passes.
    """
    origin = netpolicy.origin_of(url, "webhook_url")
    if origin.scheme != "https" and not policy.listed(origin):
        raise netpolicy.Refused(
            f"webhook_url {origin} is plain http and not listed in {netpolicy.SETTING}"
        )
    parts = urlsplit(url.strip())
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _TlsConnection if origin.scheme == "https" else _Connection
    connection = kind(policy, origin, timeout)
    watchdog = threading.Timer(timeout, _shut, args=(connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(
            "POST",
            target,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        response = connection.getresponse()
        response.read(ANSWER_LIMIT)  # never logged, never kept
        return response.status
    finally:
        watchdog.cancel()
        connection.close()


class WebhookSender:
    """A bounded queue of calls and the one daemon thread that sends them."""

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._calls: deque[Call] = deque()
        self._busy = 0  # calls taken off the queue and not finished yet
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def submit(self, call: Call) -> None:
        """Queue a call (never blocks); the oldest waiting one goes when the queue is full."""
        with self._cond:
            if len(self._calls) >= self.size:
                oldest = self._calls.popleft()
                self.dropped += 1
                log.warning(
                    "webhook queue full (%d calls waiting): dropped the oldest, for export %s",
                    self.size,
                    oldest.export_id,
                )
            self._calls.append(call)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="spillway-webhooks", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def pending(self) -> int:
        """Calls queued or being sent."""
        with self._cond:
            return len(self._calls) + self._busy

    def flush(self, timeout: float) -> bool:
        """Wait until every queued call was sent (or given up); False if ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._calls or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._calls:
                    self._cond.wait()
                call = self._calls.popleft()
                self._busy += 1
            try:
                self._send(call)
            except Exception as exc:  # the thread must outlive any single call
                log.warning(
                    "webhook for export %s failed (%s)", call.export_id, exc.__class__.__name__
                )
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _send(self, call: Call) -> None:
        try:
            status = post(netpolicy.current(), call.url, call.body, self.timeout)
        except netpolicy.Refused as exc:
            log.warning("webhook for export %s not sent: %s", call.export_id, exc)
            return
        except (OSError, http.client.HTTPException) as exc:
            log.warning(
                "webhook for export %s failed (%s): the receiver did not answer within %.0fs "
                "or refused the connection",
                call.export_id,
                exc.__class__.__name__,
                self.timeout,
            )
            return
        if not 200 <= status < 300:
            log.warning("webhook for export %s answered HTTP %d", call.export_id, status)


_sender: WebhookSender | None = None
_sender_lock = threading.Lock()


def sender() -> WebhookSender:
    """The process's sender, sized by the settings on first use."""
    global _sender
    with _sender_lock:
        if _sender is None:
            from spillway.settings import Settings

            settings = Settings()
            _sender = WebhookSender(settings.webhook_queue_size, settings.webhook_timeout_seconds)
        return _sender


def notify(export: Export, status: str, reason: str | None) -> None:
    """Queue a POST of the new state to the export's webhook_url, if it has one.

    Returns at once and never raises: the call goes out from the background thread.
    """
    url = export.settings.webhook_url
    if not url:
        return
    body = {
        "export_id": export.id,
        "export_name": export.name,
        "status": status,
        "reason": reason,
    }
    sender().submit(Call(export.id, url, orjson.dumps(body)))


def flush(timeout: float) -> bool:
    """Wait (up to ``timeout`` seconds) for queued calls to go out: before a process that
    queued some exits (``spillway worker --once``), and in tests."""
    with _sender_lock:
        current = _sender
    return True if current is None else current.flush(timeout)
