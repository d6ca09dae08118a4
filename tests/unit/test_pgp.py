"""PGP layer and key checks against the real gpg: files must decrypt with the customer's gpg."""

from __future__ import annotations

import gc
import gzip
import hashlib
import itertools
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from spillway.engine.encode import FileSpec, open_encoder
from spillway.engine.pgp import PgpLayer, inspect_public_key
from spillway.engine.records import Selection
from spillway.errors import TerminalError

GPG = shutil.which("gpg") or "/usr/bin/gpg"
DAY = 86_400


@dataclass(frozen=True)
class Keyring:
    """A throwaway GnuPG home holding the test key pairs."""

    home: Path
    public_key: str  # RSA primary + encryption subkey, never expires
    fingerprint: str

    def gpg(self, *args: str, data: bytes = b"") -> bytes:
        done = subprocess.run(
            [GPG, "--batch", "--no-tty", "--quiet", "--homedir", str(self.home), *args],
            input=data,
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    def decrypt(self, data: bytes) -> bytes:
        return self.gpg("--pinentry-mode", "loopback", "--passphrase", "", "--decrypt", data=data)

    def generate(self, user_id: str, algo: str, usage: str, expire: str) -> str:
        """A new key pair; its fingerprint."""
        self.gpg("--passphrase", "", "--quick-gen-key", user_id, algo, usage, expire)
        return self.fingerprint_of(user_id)

    def fingerprint_of(self, user_id: str) -> str:
        listing = self.gpg("--with-colons", "--list-keys", "=" + user_id).decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line[:4] == "fpr:")

    def export(self, fingerprint: str) -> str:
        return self.gpg("--armor", "--export", fingerprint).decode()


def make_keyring(home: Path) -> Keyring:
    """Generate the main test key pair in a fresh home (real gpg, as customers use)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    user_id = "Test <t@example.com>"
    ring = Keyring(home, "", "")
    fingerprint = ring.generate(user_id, "default", "default", "never")
    return Keyring(home, ring.export(fingerprint), fingerprint)


def stop_agent(home: Path) -> None:
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False
    )


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    if not os.path.exists(GPG):
        pytest.fail("gpg is needed for the PGP tests: apt install gnupg (make system-deps)")
    home = Path(tempfile.mkdtemp(prefix="gpgt-"))  # short: the agent's socket lives here
    try:
        yield make_keyring(home)
    finally:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)


class Sink:
    """Collects bytes and remembers which threads wrote; must never be closed or finished."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.threads: set[int] = set()

    def write(self, chunk: bytes) -> None:
        self.threads.add(threading.get_ident())
        self.parts.append(bytes(chunk))

    def close(self) -> None:
        raise AssertionError("a layer closed the final sink")

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temp files of the code under test land here, so leftovers can be seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def random_bytes(size: int) -> bytes:
    # Deterministic and incompressible, like the gzip output the layer normally sees.
    blocks = (hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


# --- PgpLayer -----------------------------------------------------------------------------


def test_five_megabytes_decrypt_to_the_same_bytes(keyring: Keyring, private_tmp: Path) -> None:
    data = random_bytes(5_000_000)
    sink = Sink()
    layer = PgpLayer(keyring.public_key, sink)
    # Odd sizes, empty writes, and one write far larger than the pipe buffers.
    cuts = [0, 1, 1, 17, 65_536, 65_537, 300_001, 3_300_000, len(data)]
    for start, end in itertools.pairwise(cuts):
        layer.write(data[start:end])
    layer.finish()
    assert keyring.decrypt(sink.data) == data
    assert sink.threads == {threading.get_ident()}  # only ever called from the caller's thread
    assert list(private_tmp.iterdir()) == []


def test_ciphertext_reaches_the_sink_while_writing(keyring: Keyring) -> None:
    sink = Sink()
    layer = PgpLayer(keyring.public_key, sink)
    for _ in range(16):
        layer.write(random_bytes(1 << 20))
    assert len(sink.data) > 8 << 20  # streamed, not held until finish
    layer.finish()


def test_empty_stream_is_a_valid_message(keyring: Keyring) -> None:
    sink = Sink()
    layer = PgpLayer(keyring.public_key, sink)
    layer.finish()
    layer.finish()  # a second finish does nothing
    assert sink.data
    assert keyring.decrypt(sink.data) == b""


def test_output_is_binary_openpgp_for_the_key(keyring: Keyring) -> None:
    sink = Sink()
    layer = PgpLayer(keyring.public_key, sink)
    layer.write(b"hello")
    layer.finish()
    assert not sink.data.startswith(b"-----BEGIN")
    packets = keyring.gpg("--list-packets", data=sink.data).decode()
    subkey_id = keyring.gpg("--with-colons", "--list-keys", keyring.fingerprint).decode()
    encryption_key = next(
        line.split(":")[4] for line in subkey_id.splitlines() if line.startswith("sub:")
    )
    assert encryption_key in packets


def test_bad_key_fails_with_gpgs_message(private_tmp: Path) -> None:
    layer = PgpLayer("not a key at all", Sink())
    with pytest.raises(TerminalError, match="no valid OpenPGP data"):
        for _ in range(64):
            layer.write(b"x" * 65_536)
        layer.finish()
    assert list(private_tmp.iterdir()) == []
    with pytest.raises(RuntimeError):
        layer.write(b"more")


def test_bad_key_fails_at_finish_when_nothing_was_written() -> None:
    layer = PgpLayer("not a key at all", Sink())
    with pytest.raises(TerminalError, match="PGP encryption failed"):
        layer.finish()


def test_abandoned_layer_leaves_no_process_or_files(keyring: Keyring, private_tmp: Path) -> None:
    layer = PgpLayer(keyring.public_key, Sink())
    layer.write(random_bytes(100_000))
    process = layer._proc
    del layer
    gc.collect()
    assert process.returncode is not None
    assert list(private_tmp.iterdir()) == []


def test_abort_stops_gpg(keyring: Keyring, private_tmp: Path) -> None:
    layer = PgpLayer(keyring.public_key, Sink())
    layer.write(b"partial")
    layer.abort()
    assert layer._proc.returncode is not None
    assert list(private_tmp.iterdir()) == []


def test_jsonl_gzip_pgp_through_open_encoder(keyring: Keyring) -> None:
    payloads = [
        orjson.dumps(
            {
                "uid": f"user-{i}",
                "event_type": "USER_ACTION_EVENT",
                "event_code": "VIEW_RADAR",
                "event_name": "VIEW_RADAR",
                "user_attributes": {"moengage_user_id": f"userid{i}"},
                "event_source": "MOENGAGE",
                "event_attributes": {"n": i},
                "event_uuid": f"62045d15-8d5e-4cfd-ac49-{i:012d}",
                "event_time": 1_652_820_710 + i,
                "device_attributes": {"moengage_device_id": "device id"},
            }
        )
        for i in range(2_000)
    ]
    spec = FileSpec(format="jsonl", compression="gzip", pgp_public_key=keyring.public_key)
    assert spec.suffix == ".json.gz.gpg"
    sink = Sink()
    encoder = open_encoder(
        spec,
        sink,
        app_name="App Name",
        db_name="MoEngage App Name",
        window_end=1_653_040_800,  # 2022-05-20T10:00:00Z
        selection=Selection(),
    )
    encoder.add(payloads[:1_500])
    encoder.add(payloads[1_500:])
    encoder.finish()
    lines = gzip.decompress(keyring.decrypt(sink.data)).splitlines()
    assert len(lines) == 2_000
    first = orjson.loads(lines[0])
    assert list(first) == ["app_name", "export_hour", "db_name", "event", "export_day"]
    assert first["app_name"] == "App Name"
    assert first["export_hour"] == "10"
    assert first["db_name"] == "MoEngage App Name"
    assert first["export_day"] == "2022-05-20"
    assert first["event"] == orjson.loads(payloads[0])
    assert [orjson.loads(line)["event"]["uid"] for line in lines] == [
        f"user-{i}" for i in range(2_000)
    ]


# --- inspect_public_key -------------------------------------------------------------------


def test_accepts_the_public_key(keyring: Keyring) -> None:
    info = inspect_public_key(keyring.public_key)
    assert info == {
        "fingerprint": keyring.fingerprint,
        "user_id": "Test <t@example.com>",
        "expires": "",
    }


def test_refuses_a_private_key(keyring: Keyring) -> None:
    secret = keyring.gpg(
        "--pinentry-mode", "loopback", "--passphrase", "", "--armor",
        "--export-secret-keys", keyring.fingerprint,
    ).decode()  # fmt: skip
    with pytest.raises(ValueError, match="never send the private key"):
        inspect_public_key(secret)


def test_refuses_a_private_key_behind_a_public_header(keyring: Keyring) -> None:
    secret = keyring.gpg(
        "--pinentry-mode", "loopback", "--passphrase", "", "--armor",
        "--export-secret-keys", keyring.fingerprint,
    ).decode()  # fmt: skip
    relabelled = secret.replace("PRIVATE KEY BLOCK", "PUBLIC KEY BLOCK")
    with pytest.raises(ValueError, match="never send the private key"):
        inspect_public_key(relabelled)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n-----END PGP PUBLIC KEY BLOCK-----\n",
        "-----BEGIN PGP MESSAGE-----\n\nhQEMA\n-----END PGP MESSAGE-----\n",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake user@host",
    ],
)
def test_refuses_what_is_not_a_public_key(text: str) -> None:
    with pytest.raises(ValueError, match="not an ASCII-armored OpenPGP public key"):
        inspect_public_key(text)


def test_refuses_binary_export(keyring: Keyring) -> None:
    binary = keyring.gpg("--export", keyring.fingerprint)
    with pytest.raises(ValueError, match="not an ASCII-armored"):
        inspect_public_key(binary.decode("latin-1"))


def test_refuses_two_keys(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="holds 2 keys"):
        inspect_public_key(keyring.public_key + keyring.public_key)


def test_refuses_a_sign_only_key(keyring: Keyring) -> None:
    fingerprint = keyring.generate("Sign Only <s@example.com>", "ed25519", "sign", "never")
    with pytest.raises(ValueError, match="the key has no subkey that can encrypt") as info:
        inspect_public_key(keyring.export(fingerprint))
    assert f"gpg --quick-add-key {fingerprint} default encr" in str(info.value)


def test_expired_key_says_when_and_how_to_extend(keyring: Keyring) -> None:
    fingerprint = keyring.generate("Short <x@example.com>", "future-default", "default", "1d")
    public = keyring.export(fingerprint)
    info = inspect_public_key(public)  # valid today; expires in a day
    assert info["fingerprint"] == fingerprint
    assert info["user_id"] == "Short <x@example.com>"
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + DAY))
    assert info["expires"][:13] == expires[:13]
    later = time.time() + 2 * DAY
    with pytest.raises(ValueError, match="the key expired on ") as raised:
        inspect_public_key(public, now=later)
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + DAY))
    assert f"expired on {day}" in str(raised.value)
    assert "gpg --quick-set-expire" in str(raised.value)
    assert "export it again" in str(raised.value)


def test_expired_encryption_subkey(keyring: Keyring) -> None:
    fingerprint = keyring.generate("Subkey <k@example.com>", "ed25519", "sign", "never")
    keyring.gpg("--passphrase", "", "--quick-add-key", fingerprint, "cv25519", "encr", "1d")
    public = keyring.export(fingerprint)
    assert inspect_public_key(public)["expires"] != ""
    with pytest.raises(ValueError, match=r"encryption subkey expired on .*--quick-set-expire"):
        inspect_public_key(public, now=time.time() + 2 * DAY)


def test_revoked_key(keyring: Keyring) -> None:
    fingerprint = keyring.generate("Revoked <r@example.com>", "future-default", "default", "never")
    certificate = (keyring.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
    keyring.gpg("--import", data=certificate.replace(":-----BEGIN", "-----BEGIN").encode())
    with pytest.raises(ValueError, match="revoked"):
        inspect_public_key(keyring.export(fingerprint))


def test_user_id_with_a_colon_is_unescaped(keyring: Keyring) -> None:
    fingerprint = keyring.generate(
        "Ops: Data <o@example.com>", "future-default", "default", "never"
    )
    assert inspect_public_key(keyring.export(fingerprint))["user_id"] == (
        "Ops: Data <o@example.com>"
    )
