"""Pydantic's validation errors in people's words: the field as the user wrote it, and what is
expected there.

Pydantic says "Value should have at least 16 items after validation" or "Extra inputs are not
permitted"; a newcomer needs ``credentials.secret_access_key: must be at least 16 characters`` and
``config.bucket_name: unknown field; did you mean 'bucket'?``. The API (request bodies), the
destination registry (each kind's config and credentials) and the CLI all describe errors here,
so they say the same thing the same way.

A model's own checks raise ``ValueError`` with a message that starts with the field it is about
(``"bucket 'Acme_B' is not a valid S3 bucket name …"``); when that field is one of the model's,
the message is filed under it (``config.bucket: 'Acme_B' is not …``).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, RootModel

# Where FastAPI puts a request's parts in ``loc``; people wrote the fields, not these.
_REQUEST_PARTS = frozenset({"body"})
# Prefixes pydantic puts before a validator's own message.
_PREFIXES = ("Value error, ", "Assertion failed, ")
# How pydantic labels a member of a plain (not tagged) union in a location.
_UNION_LABEL = re.compile(
    r"^(literal|list|dict|set|tuple|function-\w+)\[|^(str|int|float|bool|none)$"
)
# Pydantic's own words for a missing field are already plain.
_REQUIRED = "Field required"
# The JSON words for the types people send.
_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a list",
    "none_required": "must be null",
}


def describe(
    errors: Iterable[Mapping[str, Any]],
    *,
    prefix: str = "",
    model: type[BaseModel] | None = None,
    limit: int = 8,
) -> str:
    """``field: what is expected; …`` for the first ``limit`` errors.

    ``prefix`` names what was validated (``config``, ``credentials``); ``model`` is the model
    that raised them, used to drop the locations people never wrote (a union's tag, a wrapper's
    ``value``), to file a model's own message under its field, and to suggest the field a
    misspelt one meant.
    """
    found = _merge_unions([(*explain(err, model), err) for err in errors])
    # "bucket: required" beside "bucket_name: unknown field; did you mean 'bucket'?" says the
    # same thing twice: keep the one that shows what was written.
    meant = {(loc.rpartition(".")[0], word) for loc, _, word in found if word}
    parts = []
    for loc, message, _ in found:
        parent, _, last = loc.rpartition(".")
        if message == _REQUIRED and (parent, last) in meant:
            continue
        where = ".".join(p for p in (prefix, loc) if p)
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts[:limit])


def _merge_unions(
    found: list[tuple[str, str, str, Mapping[str, Any]]],
) -> list[tuple[str, str, str]]:
    """One message for a value that matched none of a union's members: pydantic reports each
    member under its own label (``events.literal['all']``, ``events.list[str]``)."""
    merged: list[tuple[str, str, str]] = []
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for loc, message, meant, err in found:
        parent, _, last = loc.rpartition(".")
        if not _UNION_LABEL.match(last):
            merged.append((loc, message, meant))
            continue
        if parent not in groups:
            groups[parent] = []
            merged.append((parent, "", ""))  # filled in below, in the order met
        groups[parent].append(err)
    return [
        (loc, message or _one_of(groups[loc]), meant) if loc in groups else (loc, message, meant)
        for loc, message, meant in merged
    ]


def _one_of(errs: Sequence[Mapping[str, Any]]) -> str:
    wanted = []
    for err in errs:
        kind, ctx = str(err.get("type", "")), err.get("ctx") or {}
        if kind == "literal_error":
            wanted.append(str(ctx.get("expected")))
        elif kind in _TYPE_WORDS:
            wanted.append(_TYPE_WORDS[kind].removeprefix("must be "))
        else:
            wanted.append(str(err.get("msg", "")).removeprefix("Value error, "))
    given = errs[0].get("input") if errs else None
    return f"must be {' or '.join(wanted)}, not {_json_type(given)}"


def explain(err: Mapping[str, Any], model: type[BaseModel] | None = None) -> tuple[str, str, str]:
    """One error as (field path, message, the known field a misspelt one was taken for)."""
    path, owner = _path(tuple(err.get("loc", ())), model)
    kind = str(err.get("type", ""))
    message = str(err.get("msg", "invalid"))
    for cut in _PREFIXES:
        message = message.removeprefix(cut)
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    if kind == "extra_forbidden" and path:
        name = path[-1]
        owner = _path(tuple(err.get("loc", ()))[:-1], model)[1]
        fixed: Mapping[str, str] = getattr(owner, "fixed_fields", {})
        if name in fixed:  # known, just not here: say why rather than guess a neighbour
            return ".".join(path), fixed[name], ""
        meant = _closest(name, _fields(owner))
        hint = f"; did you mean {meant!r}?" if meant else _known(_fields(owner))
        return ".".join(path), f"unknown field{hint}", meant or ""
    if kind in ("value_error", "assertion_error") and owner is not None:
        # A model's own check, naming its field first: file it there.
        field, _, rest = message.partition(" ")
        if field.rstrip(":") in _fields(owner) and rest:
            path = (*path, field.rstrip(":"))
            message = rest
    elif path and message.startswith(f"{path[-1]} "):
        message = message[len(path[-1]) + 1 :]  # "path: path must be …" → "path: must be …"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        path = (*path, str(ctx.get("discriminator", "mode")).strip("'"))
    return ".".join(path), _words(kind, message, ctx, err.get("input")), ""


def _words(kind: str, message: str, ctx: Mapping[str, Any], given: Any) -> str:
    needs_ctx = ("literal_error", "union_tag_invalid", "string_pattern_mismatch", "string_too")
    if not ctx and kind.startswith((*needs_ctx, "too_")):
        return message  # pydantic's words: the limits are not at hand
    if kind == "missing":
        return _REQUIRED
    if kind in _TYPE_WORDS:
        return f"{_TYPE_WORDS[kind]}, not {_json_type(given)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, not {_shown(given)}"
    if kind == "union_tag_invalid":
        tags = str(ctx.get("expected_tags", ""))
        meant = _closest(str(ctx.get("tag", "")), [t.strip(" '") for t in tags.split(",")])
        hint = f"; did you mean {meant!r}?" if meant else ""
        return f"{ctx.get('tag')!r} is not one of {tags}{hint}"
    if kind == "union_tag_not_found":
        expected = ctx.get("expected_tags")
        return f"{_REQUIRED}: one of {expected}" if expected else _REQUIRED
    if kind in ("string_too_short", "too_short"):
        return f"must be at least {_count(ctx.get('min_length'), given)}, not {_length(given)}"
    if kind in ("string_too_long", "too_long"):
        return f"must be at most {_count(ctx.get('max_length'), given)}, not {_length(given)}"
    if kind == "string_pattern_mismatch":
        return f"{_shown(given)} is not in the expected form ({ctx.get('pattern')})"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {words} {bound}, not {_shown(given)}"
    return message


def _count(value: Any, given: Any) -> str:
    unit = "item" if isinstance(given, list | dict | tuple | set) else "character"
    return f"{value} {unit}{'' if value == 1 else 's'}"


def _length(given: Any) -> str:
    if hasattr(given, "get_secret_value"):
        given = given.get_secret_value()
    return f"{len(given)}" if isinstance(given, str | list | dict) else _shown(given)


def _shown(given: Any) -> str:
    if hasattr(given, "get_secret_value"):
        return "the value given"  # never a secret in a message
    text = repr(given)
    return text if len(text) <= 60 else text[:59] + "…"


def _json_type(given: Any) -> str:
    if given is None:
        return "null"
    if isinstance(given, bool):
        return "true" if given else "false"
    if isinstance(given, int | float):
        return "a number"
    if isinstance(given, str):
        return "a string"
    if isinstance(given, list):
        return "a list"
    if isinstance(given, dict):
        return "an object"
    return type(given).__name__


def _closest(word: str, known: Sequence[str]) -> str | None:
    """The known name ``word`` most likely meant (a typo, a neighbour's name)."""
    if not word or not known:
        return None
    found = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if found:
        return found[0]
    # "bucket_name" for "bucket" (a known name inside the word), "secret" for
    # "secret_access_key" (the start of one).
    inside = [name for name in known if len(name) >= 3 and name in word]
    if inside:
        return max(inside, key=len)
    starts = [name for name in known if len(word) >= 4 and name.startswith(word)]
    return starts[0] if len(starts) == 1 else None


def _known(fields: Sequence[str]) -> str:
    return f"; known fields: {', '.join(fields)}" if fields else ""


def _fields(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    if issubclass(model, RootModel):  # its members' fields, as the user writes them
        members = _models(model.model_fields["root"].annotation)
        return list(dict.fromkeys(name for member in members for name in _fields(member)))
    return [info.alias or name for name, info in model.model_fields.items()]


def _path(
    loc: tuple[Any, ...], model: type[BaseModel] | None
) -> tuple[tuple[str, ...], type[BaseModel] | None]:
    """The location as the user wrote it, and the model that owns its last step.

    Drops what people never wrote: FastAPI's ``body``, a union's tag (pydantic puts the
    member it tried in the location), and the ``value`` of a model that only wraps another.
    Without a model, only ``body`` goes; list indexes read ``events[3]``.
    """
    parts: list[str] = []
    owner = model
    steps = list(loc)
    if steps and steps[0] in _REQUEST_PARTS:
        steps.pop(0)
    annotation: Any = None
    while steps:
        if owner is not None and issubclass(owner, RootModel):
            # A root model's location starts inside it (at a union's tag, if any).
            members = _models(owner.model_fields["root"].annotation)
            owner = members[0] if len(members) == 1 else None
            if _is_tag(steps[0], members):
                owner = _member(steps.pop(0), members)
            continue
        step = steps.pop(0)
        if owner is not None and list(owner.model_fields) == ["value"] and step == "value":
            annotation = owner.model_fields["value"].annotation
            owner = None
            step_models = _models(annotation)
            if steps and step_models and _is_tag(steps[0], step_models):
                owner = _member(steps.pop(0), step_models)
            elif len(step_models) == 1:
                owner = step_models[0]
            continue
        if isinstance(step, int):
            if parts:
                parts[-1] += f"[{step}]"
            else:
                parts.append(f"[{step}]")
            continue
        parts.append(str(step))
        info = owner.model_fields.get(str(step)) if owner is not None else None
        step_models = _models(info.annotation) if info is not None else []
        owner = step_models[0] if len(step_models) == 1 else None
        if steps and len(step_models) > 1 and _is_tag(steps[0], step_models):
            owner = _member(steps.pop(0), step_models)
    return tuple(parts), owner


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Annotated, unions and lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def _tag(model: type[BaseModel]) -> str:
    field = model.model_fields.get("mode")
    default = field.default if field is not None else None
    return str(default) if isinstance(default, str) else model.__name__


def _is_tag(step: Any, members: Sequence[type[BaseModel]]) -> bool:
    return isinstance(step, str) and any(step == _tag(m) for m in members)


def _member(step: Any, members: Sequence[type[BaseModel]]) -> type[BaseModel] | None:
    return next((m for m in members if _tag(m) == step), None)
