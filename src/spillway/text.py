"""Text that can be stored and shown: no lone surrogates, no NUL, bounded nesting.

JSON may spell a lone UTF-16 surrogate (``"\\ud800"``) and Python's own decoder accepts it, but
such a string has no UTF-8 form: the database, orjson and every client choke on it later. So
request bodies are checked at the boundary (:func:`check`), and answers built from rows stored
before that check existed are made encodable (:func:`printable`) instead of failing.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL = "text must not hold the NUL character (\\u0000)"
_LONE_SURROGATE = (
    "text must not hold a lone UTF-16 surrogate such as \\ud800 (it is not valid Unicode); "
    "send valid UTF-8 text"
)
# Deeper than this, an answer shows a subtree as a placeholder (orjson stops at 254 levels).
_MAX_SHOWN_DEPTH = 200


def problem(text: str) -> str | None:
    """What is wrong with one string, or None when it can be stored as it is."""
    if text.isascii():
        return _NUL if "\x00" in text else None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE
    return _NUL if "\x00" in text else None


def find(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first bad string in a JSON-like value (keys included): its path and the problem.

    Iterative, so a body nested as deep as the JSON parser allows cannot exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            reason = problem(node)
            if reason is not None:
                return (where or "value", reason)
        elif isinstance(node, dict):
            children = []
            for key, item in node.items():
                if isinstance(key, str):
                    reason = problem(key)
                    if reason is not None:
                        return (f"a key of {where}" if where else "a key", reason)
                children.append((item, f"{where}.{key}" if where else str(key)))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            stack.extend((node[i], f"{where}[{i}]") for i in range(len(node) - 1, -1, -1))
    return None


def _surely_clean(value: Any) -> bool:
    r"""True when ``value`` holds no bad text, decided in C: orjson refuses lone surrogates
    and writes NUL as ``\u0000``, and it encodes every container :func:`find` walks. Anything
    it refuses, or a ``\u0000`` in its output (also a literal backslash-u0000), is left to the
    walk, which finds the field and the problem (a body is clean far more often than not)."""
    try:
        return b"\\u0000" not in orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return False


def check(value: Any, path: str = "") -> None:
    """Raise ValueError naming the field when ``value`` holds text that cannot be stored."""
    if _surely_clean(value):
        return
    found = find(value, path)
    if found is not None:
        where, reason = found
        raise ValueError(f"{printable(where)}: {reason}")


def checked(value: Any) -> Any:
    """:func:`check`, returning the value: a ``model_validator(mode="before")`` of a body."""
    check(value)
    return value


def printable(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON-like value that every encoder takes: lone surrogates replaced by U+FFFD,
    subtrees nested deeper than an encoder allows replaced by a placeholder."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _SURROGATE.sub(REPLACEMENT, value)
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)  # beyond what JSON encoders (and most readers) take as a number
    if _depth >= _MAX_SHOWN_DEPTH and isinstance(value, dict | list | tuple):
        return "(nested too deep to show)"
    if isinstance(value, dict):
        return {printable(k, _depth): printable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item, _depth + 1) for item in value]
    return value
