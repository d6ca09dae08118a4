"""Reading an import object: gzipped members are inflated within a bound."""

from __future__ import annotations

import gzip

import pytest

from spillway.engine.jobs import pieces
from spillway.errors import TerminalError


def test_a_gzip_bomb_is_refused_before_it_is_inflated_whole() -> None:
    bomb = gzip.compress(b"{}\n" * 2_000_000)  # 6 MB of lines in a few KB
    assert len(bomb) < 100_000
    with pytest.raises(TerminalError, match="larger than 1 MiB"):
        list(pieces.read_definitions(bomb, "json", limit=1024 * 1024))


def test_gzip_members_within_the_bound_are_all_read() -> None:
    two = gzip.compress(b'{"Id": "a"}\n') + gzip.compress(b'{"Id": "b"}\n')
    assert [line.item for line in pieces.read_definitions(two, "json")] == [
        {"Id": "a"},
        {"Id": "b"},
    ]


def test_an_unreadable_gzip_file_is_said_so() -> None:
    with pytest.raises(TerminalError, match="not a readable gzip file"):
        list(pieces.read_definitions(b"\x1f\x8b not really", "json"))
