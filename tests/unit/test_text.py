"""Text that can be stored and shown: the boundary check and the encodable copy for answers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from spillway import text
from spillway.api.responses import JSON

LONE = "\ud800"


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"attributes": {"plan": [f"a{LONE}"]}}, "attributes.plan[0]"),
        ({"attributes": {f"k{LONE}": ["x"]}}, "a key of attributes"),
        ({f"k{LONE}": 1}, "a key"),
        ({"config": {"folder": "\udfff"}}, "config.folder"),
        ({"events": ["ok", LONE]}, "events[1]"),
        ({"name": "a\x00b"}, "name"),
    ],
)
def test_check_names_the_field(value: Any, where: str) -> None:
    with pytest.raises(ValueError) as caught:
        text.check(value)
    message = str(caught.value)
    assert message.startswith(f"{where}: text must not hold")
    orjson.dumps(message)  # the message itself is encodable: it can be answered


def test_check_accepts_valid_text_including_astral_characters() -> None:
    # A surrogate *pair* in JSON ("\ud83d\ude00") decodes to one valid character.
    text.check({"emoji": "😀", "accents": "Zoë", "cjk": "日本", "nested": [{"k": "v"}], "n": 1})


def test_printable_makes_any_stored_value_encodable() -> None:
    deep: Any = "leaf"
    for _ in range(400):
        deep = [deep]
    stored = {f"k{LONE}": [f"v{LONE}", "ok"], "big": 10**30, "deep": deep, "fine": "😀"}
    with pytest.raises(TypeError):
        orjson.dumps(stored)
    shown = orjson.loads(orjson.dumps(text.printable(stored)))
    assert shown["k\ufffd"] == ["v\ufffd", "ok"]
    assert shown["big"] == str(10**30)
    assert shown["fine"] == "😀"


def test_json_response_renders_stored_surrogates_instead_of_failing() -> None:
    body = JSON({"endpoints": [{"attributes": {"plan": [LONE]}}]}).body
    assert orjson.loads(body) == {"endpoints": [{"attributes": {"plan": ["\ufffd"]}}]}
