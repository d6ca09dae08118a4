"""PGP encryption of export files with the customer's public key, through the real ``gpg``.

Why ``gpg`` and not pysequoia: pysequoia (0.1.x) only encrypts whole ``bytes`` or whole files,
so a file would have to sit in memory or on disk first (DESIGN.md invariant 4 forbids both).
Customers decrypt with ``gpg``, so producing the files with it also settles compatibility
(pysequoia may pick packet versions that older ``gpg`` releases cannot read).

The layer talks to ``gpg`` over non-blocking pipes from the caller's thread: each ``write``
feeds stdin and forwards whatever ``gpg`` has produced meanwhile, so memory stays at the pipe
buffers, neither side can deadlock, and ``out`` is only ever called from the caller's thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NoReturn

from spillway.engine.encode import Sink
from spillway.errors import TerminalError

_READ_SIZE = 1 << 20
_PIPE_SIZE = 1 << 20  # a larger pipe means fewer wake-ups per megabyte (Linux only)
_STALL_SECONDS = 120.0  # gpg neither reading nor writing for this long: give up
# One public key with its encryption subkeys is a few KiB armored (RSA-4096: ~3 KiB); only
# third-party signatures make it grow. The bound keeps key checks cheap (and gpg's input small).
MAX_KEY_TEXT = 64 * 1024
_PUBLIC_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_PRIVATE_BEGIN = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
_NEVER_PRIVATE = (
    "this is a private (secret) key: never send the private key to anyone; "
    "send the public key instead (gpg --armor --export <fingerprint>)"
)
_NOT_A_KEY = (
    "this is not an ASCII-armored OpenPGP public key: export it with "
    "gpg --armor --export <fingerprint> and paste the whole block, from "
    f"{_PUBLIC_BEGIN} to -----END PGP PUBLIC KEY BLOCK-----"
)


def _gpg() -> str:
    found = shutil.which("gpg") or ("/usr/bin/gpg" if os.path.exists("/usr/bin/gpg") else None)
    if found is None:
        raise TerminalError("PGP encryption needs gpg, which is not installed (apt install gnupg)")
    return found


def _private_home() -> Path:
    """A fresh, private GnuPG home: nothing from the host's keyrings or options leaks in."""
    home = Path(tempfile.mkdtemp(prefix="spillway-gpg-"))  # mode 0700
    # gpg >= 2.4 writes "use-keyboxd" into a missing common.conf and then starts a daemon;
    # an empty one keeps every gpg version daemon-free (with --no-autostart).
    (home / "common.conf").touch()
    return home


def _base_args(gpg: str, home: Path) -> list[str]:
    return [
        gpg,
        "--batch",
        "--no-tty",
        "--quiet",
        "--no-greeting",
        "--no-autostart",
        "--no-permission-warning",
        "--homedir",
        str(home),
    ]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"GNUPGHOME", "GPG_AGENT_INFO"}}
    env["LC_ALL"] = "C"  # English messages: they are shown to people and matched by nobody
    env["LANGUAGE"] = ""
    return env


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def _gpg_message(raw: bytes, keyfile: Path) -> str:
    lines = []
    for line in raw.decode("utf-8", "replace").splitlines():
        line = line.strip().removeprefix("gpg: ").replace(str(keyfile), "the public key")
        if line:
            lines.append(line)
    return "; ".join(lines) or "no message"


class PgpLayer:
    """Encrypts everything written to it for one public key; binary OpenPGP into ``out``."""

    def __init__(self, public_key: str, out: Sink) -> None:
        gpg = _gpg()
        self._out = out
        self._home = home = _private_home()
        self._keyfile = home / "recipient.asc"
        args = [
            *_base_args(gpg, home),
            "--trust-model",
            "always",
            "--no-auto-check-trustdb",
            # The payload is gzip/zstd/Parquet already: compressing again only costs time.
            "--compress-algo",
            "none",
            "--recipient-file",
            str(self._keyfile),
            "--output",
            "-",
            "--encrypt",
        ]
        stderr: IO[bytes] | None = None
        try:
            self._keyfile.write_text(public_key, encoding="utf-8")
            stderr = open(home / "stderr", "w+b")  # noqa: SIM115 (closed by _release)
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                bufsize=0,
                env=_env(),
            )
        except OSError as exc:
            if stderr is not None:
                stderr.close()
            shutil.rmtree(home, ignore_errors=True)
            raise TerminalError(f"could not start gpg for PGP encryption: {exc}") from exc
        self._proc, self._stderr = proc, stderr
        self._selector = selectors.DefaultSelector()
        # Frees the process and the temp dir even when the caller abandons the layer.
        self._cleanup = weakref.finalize(self, _release, proc, self._selector, stderr, home)
        assert proc.stdin is not None and proc.stdout is not None
        self._stdin_fd = proc.stdin.fileno()
        self._stdout_fd = proc.stdout.fileno()
        for fd in (self._stdin_fd, self._stdout_fd):
            os.set_blocking(fd, False)
            _grow_pipe(fd)
        self._selector.register(self._stdin_fd, selectors.EVENT_WRITE)
        self._selector.register(self._stdout_fd, selectors.EVENT_READ)
        self._done = False

    def write(self, chunk: bytes) -> None:
        """Feed ``chunk`` to gpg, forwarding ciphertext to ``out`` as it comes."""
        if self._done:
            raise RuntimeError("PgpLayer.write after finish or failure")
        view = memoryview(chunk)
        while view:
            ready = self._selector.select(timeout=_STALL_SECONDS)
            if not ready:
                self._fail("gpg stopped reading its input")
            for key, _ in ready:
                if key.fd == self._stdout_fd:
                    if not self._pump():
                        self._fail("gpg ended before its input did")
                    continue
                try:
                    written = os.write(self._stdin_fd, view)
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    self._fail("gpg ended before its input did")
                view = view[written:]

    def finish(self) -> None:
        """End the message: close gpg's input, forward the rest, check that gpg succeeded."""
        if self._done:
            return
        self._selector.unregister(self._stdin_fd)
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            self._fail("gpg ended before its input did")
        while True:
            if not self._selector.select(timeout=_STALL_SECONDS):
                self._fail("gpg stopped writing its output")
            if not self._pump():
                break
        try:
            code = self._proc.wait(timeout=_STALL_SECONDS)
        except subprocess.TimeoutExpired:
            self._fail("gpg did not exit")
        if code != 0:
            self._fail(f"gpg exited with status {code}")
        self._done = True
        self._cleanup()

    def abort(self) -> None:
        """Stop gpg and drop its temp files (the file is being abandoned)."""
        self._done = True
        self._cleanup()

    def _pump(self) -> bool:
        """Forward one read of ciphertext; False at end of output."""
        try:
            data = os.read(self._stdout_fd, _READ_SIZE)
        except BlockingIOError:
            return True
        if not data:
            return False
        self._out.write(data)
        return True

    def _fail(self, what: str) -> NoReturn:
        self._done = True
        proc = self._proc
        if proc.poll() is None:
            # Give gpg a moment to exit on its own so its message explains the failure.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._stderr.seek(0)
        message = _gpg_message(self._stderr.read(), self._keyfile)
        self._cleanup()
        raise TerminalError(f"PGP encryption failed ({what}): {message}")


def _release(
    proc: subprocess.Popen[bytes],
    selector: selectors.BaseSelector,
    stderr: IO[bytes],
    home: Path,
) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    selector.close()
    stderr.close()
    shutil.rmtree(home, ignore_errors=True)


# --- checking a key before an export uses it ------------------------------------------------


def precheck_public_key(text: str) -> None:
    """The cheap part of :func:`inspect_public_key` (no gpg): size and armor headers.

    Raises ValueError with a message telling the person what to do.
    """
    if _PRIVATE_BEGIN in text:
        raise ValueError(_NEVER_PRIVATE)
    if len(text) > MAX_KEY_TEXT:
        raise ValueError(
            f"the key is {len(text):,} characters long; one public key is at most "
            f"{MAX_KEY_TEXT:,} (64 KiB): export only the key to encrypt to, without "
            "third-party signatures (gpg --armor --export-options export-minimal "
            "--export <fingerprint>)"
        )
    if _PUBLIC_BEGIN not in text:
        raise ValueError(_NOT_A_KEY)


def inspect_public_key(text: str, *, now: float | None = None) -> dict[str, str]:
    """Check that ``text`` is a public key that can encrypt today; its fingerprint, user id, expiry.

    ``expires`` is when encryption to this key stops working (ISO 8601 UTC, "" for never).
    Raises ValueError with a message telling the person what to do.
    """
    precheck_public_key(text)
    records = _show_keys(text)
    if any(r[0] in {"sec", "ssb"} for r in records):
        raise ValueError(_NEVER_PRIVATE)
    primaries = [i for i, r in enumerate(records) if r[0] == "pub"]
    if not primaries:
        raise ValueError(_NOT_A_KEY)
    if len(primaries) > 1:
        raise ValueError(
            f"the text holds {len(primaries)} keys; send only the public key to encrypt to"
        )
    moment = time.time() if now is None else now
    pub = records[primaries[0]]
    fingerprint = next((r[9] for r in records[primaries[0] :] if r[0] == "fpr"), "")
    user_id = next(
        (_unescape(r[9]) for r in records if r[0] == "uid" and _field(r, 1) not in {"r", "i"}), ""
    )
    if _field(pub, 1) == "r":
        raise ValueError("the key has been revoked: create a new key pair and send its public key")
    if _field(pub, 1) == "i":
        raise ValueError("the key is invalid (its self-signatures do not verify)")
    key_expiry = _epoch(_field(pub, 6))
    if _field(pub, 1) == "e" or (key_expiry is not None and key_expiry <= moment):
        raise ValueError(
            f"the key expired on {_day(key_expiry)}: extend it with "
            f"gpg --quick-set-expire {fingerprint} 1y and export it again "
            f"(gpg --armor --export {fingerprint})"
        )
    encrypting = [r for r in records if r[0] in {"pub", "sub"} and "e" in _field(r, 11)]
    if not encrypting:
        raise ValueError(
            "the key has no subkey that can encrypt: add one with "
            f"gpg --quick-add-key {fingerprint} default encr and export it again "
            f"(gpg --armor --export {fingerprint})"
        )
    usable: list[float | None] = []
    latest_expired: float | None = None
    for record in encrypting:
        if _field(record, 1) in {"r", "i"}:
            continue
        expiry = _epoch(_field(record, 6))
        if _field(record, 1) == "e" or (expiry is not None and expiry <= moment):
            if expiry is not None and (latest_expired is None or expiry > latest_expired):
                latest_expired = expiry
            continue
        usable.append(expiry)
    if not usable:
        if latest_expired is not None:
            raise ValueError(
                f"the key's encryption subkey expired on {_day(latest_expired)}: extend it with "
                f"gpg --quick-set-expire {fingerprint} 1y '*' and export it again "
                f"(gpg --armor --export {fingerprint})"
            )
        raise ValueError(
            "the key's encryption subkeys are all revoked: add one with "
            f"gpg --quick-add-key {fingerprint} default encr and export it again"
        )
    # Encryption works until the primary key or the longest-lived encryption subkey expires.
    subkeys_end = None if None in usable else max(e for e in usable if e is not None)
    ends = [e for e in (key_expiry, subkeys_end) if e is not None]
    expires = ""
    if ends:
        expires = datetime.fromtimestamp(min(ends), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"fingerprint": fingerprint, "user_id": user_id, "expires": expires}


def _show_keys(text: str) -> list[list[str]]:
    gpg = _gpg()
    home = _private_home()
    try:
        keyfile = home / "key.asc"
        keyfile.write_text(text, encoding="utf-8")
        args = [
            *_base_args(gpg, home),
            "--with-colons",
            "--fixed-list-mode",
            "--show-keys",
            str(keyfile),
        ]
        try:
            done = subprocess.run(args, capture_output=True, timeout=30, env=_env(), check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TerminalError(f"could not run gpg to read the key: {exc}") from exc
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        raise ValueError(f"{_NOT_A_KEY} (gpg: {_gpg_message(done.stderr, keyfile)})")
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    return [line.split(":") for line in lines if line]


def _field(record: list[str], index: int) -> str:
    return record[index] if index < len(record) else ""


def _epoch(value: str) -> float | None:
    return float(value) if value.isdigit() and int(value) > 0 else None


def _day(epoch: float | None) -> str:
    return "an unknown date" if epoch is None else time.strftime("%Y-%m-%d", time.gmtime(epoch))


def _unescape(value: str) -> str:
    """Undo gpg's ``\\xHH`` escaping of user ids in colon listings."""
    raw = re.sub(
        rb"\\x([0-9a-fA-F]{2})",
        lambda m: bytes([int(m.group(1), 16)]),
        value.encode("utf-8", "surrogateescape"),
    )
    return raw.decode("utf-8", "replace")
