"""A loopback HTTP server that counts the connections it accepts and answers every request
with one canned response: a stand-in for a service a key holder would like Spillway to reach
(a loopback admin port, a metadata service) or for an endpoint that answers garbage."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Words that must never come back to a caller: they are only in the canned body.
MARKER = "LISTENER-SECRET-7f3a9c"
HTML = f"<html><body><h1>Internal admin</h1><p>{MARKER}</p></body></html>"


@dataclass
class Canned:
    """What the server answers, and what it saw."""

    url: str
    status: int = 200
    body: str = HTML
    content_type: str = "text/html"
    delay: float = 0.0  # seconds before answering
    connections: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """True once ``count`` requests arrived (False after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.requests) >= count


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    canned: Canned

    def get_request(self) -> tuple[socket.socket, Any]:
        accepted = super().get_request()
        self.canned.connections += 1
        return accepted


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        canned = self.server.canned
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        canned.requests.append({"method": self.command, "path": self.path, "body": body})
        if canned.delay:
            time.sleep(canned.delay)
        data = canned.body.encode()
        self.send_response(canned.status)
        self.send_header("Content-Type", canned.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def canned_server(*, port: int = 0, **answer: Any) -> Iterator[Canned]:
    """Start the server on a loopback port (a free one unless given); yield its
    :class:`Canned`; stop it."""
    server = _Server(("127.0.0.1", port), _Handler)
    canned = Canned(f"http://127.0.0.1:{server.server_address[1]}", **answer)
    server.canned = canned
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield canned
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
