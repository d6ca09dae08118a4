"""A loopback HTTP listener that records every connection and request (headers included) and
answers each with one canned response: a stand-in for a service a key holder would like
Spillway to reach, or for a custom endpoint that answers something that is not AWS.

    with recorder(status=200, body=PAGE) as seen:
        ... point endpoint_url at seen.url ...
        assert seen.connections == 0
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Only in the canned body: it must never come back to a caller.
MARKER = "RECORDER-PRIVATE-5c1e0b"
PAGE = f"<html><body><h1>Internal admin</h1><p>{MARKER}</p></html>"
# What an S3-compatible service says to a request it refuses (readable by every AWS protocol).
DENIED = (
    "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    "</ErrorResponse>"
)


@dataclass(frozen=True)
class Request:
    """One request as the listener received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        """Request line, headers and body as one string, to search for a secret."""
        lines = [f"{self.method} {self.path}"] + [f"{k}: {v}" for k, v in self.headers.items()]
        return "\n".join(lines) + "\n\n" + self.body.decode("latin-1")


@dataclass
class Recorder:
    """Where it listens, what it answers, and what it saw."""

    url: str
    status: int = 200
    body: str = PAGE
    content_type: str = "text/html"
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self) -> str:
        """Everything received, as text."""
        with self.lock:
            return "\n----\n".join(request.text() for request in self.requests)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder

    def get_request(self) -> tuple[socket.socket, Any]:
        accepted = super().get_request()
        with self.recorder.lock:
            self.recorder.connections += 1
        return accepted


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        recorder = self.server.recorder
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, dict(self.headers.items()), body)
        with recorder.lock:
            recorder.requests.append(request)
        data = recorder.body.encode()
        self.send_response(recorder.status)
        self.send_header("Content-Type", recorder.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def recorder(**answer: Any) -> Iterator[Recorder]:
    """Listen on a free loopback port (not listed anywhere: call allow_endpoint to list it)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    seen = Recorder(f"http://127.0.0.1:{server.server_address[1]}", **answer)
    server.recorder = seen
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
