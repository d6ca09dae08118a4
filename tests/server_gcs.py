"""gcp-storage-emulator as a real server on loopback, and a stand-in for Google's token endpoint.

The emulator accepts any request, signed or not, so it cannot test authentication; the token
endpoint below lets the service-account path (sign a JWT, trade it for a token) run for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from tests.servers import ServerFailed, allow_endpoint, free_port, wait_for_port


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """Start gcp-storage-emulator (in memory) on a free port; yield its URL; stop it."""
    binary = Path(sys.executable).with_name("gcp-storage-emulator")
    if not binary.exists():
        raise ServerFailed(
            f"{binary} is missing: install the dev extras (pip install -e '.[dev]'), which "
            "include gcp-storage-emulator"
        )
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="gcs-emulator-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
            stdout=out,
            stderr=out,
        )
    try:
        try:
            wait_for_port(port, timeout=60)
        except ServerFailed as exc:
            code = process.poll()
            state = f"it exited with status {code}" if code is not None else "it still runs"
            raise ServerFailed(
                f"gcp-storage-emulator did not start ({exc}; {state}):\n{log.read_text()}"
            ) from None
        url = f"http://127.0.0.1:{port}"
        # The operator lists it: destinations may name it as endpoint_url (anonymous access).
        allow_endpoint(url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


class _TokenHandler(BaseHTTPRequestHandler):
    """POST /token issues a token for any signed JWT; POST /revoked answers like a deleted key."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            self._answer(400, {"error": "unsupported_grant_type"})
        elif self.path == "/token":
            self._answer(
                200, {"access_token": "test-token", "expires_in": 3600, "token_type": "Bearer"}
            )
        else:
            self._answer(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def token_endpoint() -> Iterator[str]:
    """A local OAuth token endpoint; yields its URL (``/token`` issues, ``/revoked`` refuses)."""
    server = HTTPServer(("127.0.0.1", 0), _TokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        # The operator lists it, so a key whose token_uri names it is accepted (Google's own
        # token endpoint is the only one allowed by default).
        allow_endpoint(url)
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
