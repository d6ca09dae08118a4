"""Unit tests of SecretBox (sealing of stored secrets) and mask()."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.exceptions import InvalidTag

from spillway.errors import SpillwayError, TerminalError
from spillway.secrets import SecretBox, SecretUnreadable, mask

SERVICE_KEY = b"k" * 48
OTHER_SERVICE_KEY = b"z" * 48
PLAINTEXT = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(SERVICE_KEY)


def test_seal_then_open_returns_the_plaintext(box: SecretBox) -> None:
    sealed = box.seal(PLAINTEXT, context=b"key:SPW123")
    assert box.open(sealed, context=b"key:SPW123") == PLAINTEXT


def test_a_new_box_with_the_same_service_key_opens_old_values(box: SecretBox) -> None:
    """What happens across a restart: the same service key must open stored values."""
    sealed = box.seal(PLAINTEXT)
    assert SecretBox(SERVICE_KEY).open(sealed) == PLAINTEXT


def test_seal_json_roundtrip(box: SecretBox) -> None:
    value = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret": "s3cr3t", "n": [1, 2]}
    assert box.open_json(box.seal_json(value, context=b"dest:7"), context=b"dest:7") == value


def test_sealed_bytes_do_not_contain_the_plaintext(box: SecretBox) -> None:
    sealed = box.seal(PLAINTEXT)
    assert PLAINTEXT not in sealed
    assert PLAINTEXT[:8] not in sealed
    # Fresh nonce each time: the same value never seals to the same bytes.
    assert box.seal(PLAINTEXT) != sealed


def test_opening_with_another_context_fails(box: SecretBox) -> None:
    """A sealed value copied onto another row (another context) must not open."""
    sealed = box.seal(PLAINTEXT, context=b"row:1")
    with pytest.raises((InvalidTag, SpillwayError)):
        box.open(sealed, context=b"row:2")
    with pytest.raises((InvalidTag, SpillwayError)):
        box.open(sealed)


def test_tampered_ciphertext_fails(box: SecretBox) -> None:
    sealed = bytearray(box.seal(PLAINTEXT))
    sealed[-1] ^= 0x01
    with pytest.raises((InvalidTag, SpillwayError)):
        box.open(bytes(sealed))


def test_another_service_key_fails_with_a_message_naming_the_key(box: SecretBox) -> None:
    sealed = box.seal(PLAINTEXT)
    other = SecretBox(OTHER_SERVICE_KEY)
    assert other.key_id != box.key_id
    with pytest.raises(SpillwayError) as info:
        other.open(sealed)
    message = str(info.value)
    assert box.key_id in message  # which key sealed it
    assert "SPILLWAY_SECRET_KEY" in message  # and what probably went wrong


def test_garbage_is_reported_as_an_unknown_format(box: SecretBox) -> None:
    with pytest.raises(SpillwayError, match="not in a known format"):
        box.open(b"no separators here")


def _flipped(sealed: bytes, index: int) -> bytes:
    damaged = bytearray(sealed)
    damaged[index] ^= 0x01
    return bytes(damaged)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda sealed: SecretBox(OTHER_SERVICE_KEY).seal(PLAINTEXT), id="other-key"),
        pytest.param(lambda sealed: _flipped(sealed, -1), id="tag"),
        pytest.param(lambda sealed: _flipped(sealed, 20), id="nonce"),
        pytest.param(lambda sealed: sealed[:-20], id="truncated"),
        pytest.param(lambda sealed: sealed.split(b":", 2)[0] + b":", id="no-body"),
        pytest.param(lambda sealed: b"\xff\xfe:\x00:zz", id="binary-garbage"),
        pytest.param(lambda sealed: b"", id="empty"),
    ],
)
def test_every_unreadable_secret_is_one_terminal_error(damage: Any) -> None:
    """Whatever went wrong, one error type the API maps to 409 and the engine to terminal:
    never cryptography's InvalidTag or a ValueError escaping as a 500."""
    box = SecretBox(SERVICE_KEY)
    sealed = box.seal_json({"secret": "x"}, context=b"d1")
    with pytest.raises(SecretUnreadable) as info:
        box.open_json(damage(sealed), context=b"d1")
    assert isinstance(info.value, TerminalError)


def test_a_sealed_value_that_is_not_json_is_unreadable() -> None:
    box = SecretBox(SERVICE_KEY)
    with pytest.raises(SecretUnreadable, match="not the JSON"):
        box.open_json(box.seal(b"not json", context=b"d1"), context=b"d1")


def test_key_id_is_stable_and_does_not_reveal_the_service_key() -> None:
    assert SecretBox(SERVICE_KEY).key_id == SecretBox(SERVICE_KEY).key_id
    assert SERVICE_KEY.decode()[:12] != SecretBox(SERVICE_KEY).key_id
    assert len(SecretBox(SERVICE_KEY).key_id) == 12


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("AKIAIOSFODNN7EXAMPLE", "AKIA…MPLE"),
        ("abcdefghijk", "abcd…hijk"),  # just long enough to show both ends
        ("abcdefghij", "…ij"),  # too short: only the last two
        ("abcde", "…de"),
        ("abcd", "…"),
        ("", "…"),
    ],
)
def test_mask_keeps_first_and_last_four(value: str, masked: str) -> None:
    assert mask(value) == masked


def test_mask_never_returns_the_whole_secret() -> None:
    for length in range(40):
        value = "".join(chr(ord("a") + i % 26) for i in range(length))
        shown = mask(value).replace("…", "")
        assert len(shown) < max(length, 1)
