"""Encryption of stored secrets (cloud credentials, integration key secrets).

Each value is sealed with AES-256-GCM under a key derived from the service key. The sealed
form carries the id of the key that sealed it, so a future key rotation can re-seal old rows.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from spillway.errors import TerminalError

_VERSION = b"s1"


class SecretUnreadable(TerminalError):
    """A sealed value this service key cannot open: the key changed, or the value is damaged.

    Terminal for the engine (a person must rotate the credentials); the API answers 409.
    """


class SecretBox:
    """Seals and opens small secrets with the service key."""

    def __init__(self, service_key: bytes) -> None:
        # Derive a dedicated sub-key so the raw service key is never used for two purposes.
        self._key = hmac.new(service_key, b"spillway/secret-box/v1", hashlib.sha256).digest()
        self.key_id = hashlib.sha256(self._key).hexdigest()[:12]
        self._aead = AESGCM(self._key)

    def seal(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        """Encrypt; ``context`` (a row id, say) is authenticated so values can't be swapped."""
        nonce = os.urandom(12)
        header = _VERSION + b":" + self.key_id.encode() + b":"
        return header + nonce + self._aead.encrypt(nonce, plaintext, header + context)

    def open(self, sealed: bytes, *, context: bytes = b"") -> bytes:
        """Decrypt a value sealed by :meth:`seal` with the same service key and context."""
        try:
            version, key_id, rest = bytes(sealed).split(b":", 2)
        except (ValueError, TypeError) as exc:
            raise SecretUnreadable("stored secret is not in a known format") from exc
        if version != _VERSION or key_id != self.key_id.encode():
            raise SecretUnreadable(
                f"stored secret was sealed with key {key_id.decode(errors='replace')!r}, not the "
                "current service key: was SPILLWAY_SECRET_KEY changed?"
            )
        header = version + b":" + key_id + b":"
        try:
            return self._aead.decrypt(rest[:12], rest[12:], header + context)
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable(
                "stored secret does not decrypt with the current service key: it is damaged, "
                "or SPILLWAY_SECRET_KEY was changed"
            ) from exc

    def seal_json(self, value: object, *, context: bytes = b"") -> bytes:
        """Seal a JSON-serialisable value."""
        return self.seal(orjson.dumps(value), context=context)

    def open_json(self, sealed: bytes, *, context: bytes = b"") -> object:
        """Open a value sealed by :meth:`seal_json`."""
        plain = self.open(sealed, context=context)
        try:
            return orjson.loads(plain)
        except orjson.JSONDecodeError as exc:
            raise SecretUnreadable("stored secret is not the JSON it was sealed as") from exc


def mask(value: str, *, keep: int = 4) -> str:
    """Show just enough of a secret to recognise it: ``AKIA…WXYZ``."""
    if len(value) <= keep * 2 + 2:
        return "…" + value[-2:] if len(value) > 4 else "…"
    return f"{value[:keep]}…{value[-keep:]}"
