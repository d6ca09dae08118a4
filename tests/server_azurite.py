"""Azurite's Blob service, in memory on a free loopback port, with its built-in account."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ServerFailed, allow_endpoint, free_port, wait_for_port

REPO = Path(__file__).resolve().parent.parent
BINARY = REPO / ".tools" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's one account; the key is public (Microsoft documents it for the emulators).
ACCOUNT = "devstoreaccount1"
# A well-formed key of the right length that Azurite does not hold.
WRONG_KEY = "A" * 86 + "=="
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    account_url: str
    account_name: str = ACCOUNT
    account_key: str = KEY

    def connection_string(self) -> str:
        """The connection string the portal would show for this account."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.account_url};"
        )


@contextmanager
def azurite_server(timeout: float = 60.0) -> Iterator[Azurite]:
    """Start ``azurite-blob`` in memory on a free port; yield it; stop it."""
    if not BINARY.exists():
        raise ServerFailed(
            f"Azurite is not installed ({BINARY} is missing): run `make test`, which installs "
            "it with npm into .tools/"
        )
    if shutil.which("node") is None:
        raise ServerFailed("Azurite needs Node.js, and `node` is not on PATH")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="spillway-azurite-"))
    log = workdir / "azurite.log"
    args = [
        str(BINARY),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--inMemoryPersistence",
        "--loose",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_for_port(port, timeout=0.5)
                break
            except ServerFailed:
                if process.poll() is not None or time.monotonic() > deadline:
                    state = (
                        f"exited with {process.returncode}"
                        if process.poll() is not None
                        else f"did not listen on port {port} within {timeout}s"
                    )
                    raise ServerFailed(f"azurite-blob {state}:\n{log.read_text()}") from None
        # The operator lists it: destinations may name it as account_url or BlobEndpoint.
        allow_endpoint(f"http://127.0.0.1:{port}")
        yield Azurite(f"http://127.0.0.1:{port}/{ACCOUNT}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
