"""The ordered validation of a local folder: directory → write/read/list/delete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from spillway.destinations.base import Check, DestinationError, Needs, Objects, object_checks
from spillway.destinations.local.config import SETTING, LocalConfig


class LocalStore(Objects, Protocol):
    """What the checks read of the store they validate (``store.LocalStore``)."""

    config: LocalConfig
    where: str

    def directories(self) -> tuple[Path, Path]: ...

    def inside(self, path: Path, key: str) -> Path: ...

    def explain(self, exc: BaseException) -> str: ...


def run_checks(store: LocalStore, needs: Needs) -> list[Check]:
    """The directory must exist (or be created) inside the project's folder and be writable;
    then the object steps every store shares."""
    try:
        _, root = store.directories()
    except DestinationError as exc:
        return [Check.failed("directory", str(exc))]
    project, _ = store.directories()
    if not project.parent.is_dir():  # the operator's root, as the store was built with
        return [
            Check.failed(
                "directory",
                f"the server's {SETTING} folder does not exist: the operator must create it",
            )
        ]
    try:
        root.mkdir(parents=True, exist_ok=True)
        store.inside(root.resolve(), store.config.path or ".")
    except DestinationError as exc:
        return [Check.failed("directory", str(exc))]
    except OSError as exc:
        return [
            Check.failed(
                "directory",
                f"cannot create {store.where} ({exc.strerror or exc.__class__.__name__}): "
                "the operator must let the Spillway process write there",
            )
        ]
    if not os.access(root, os.W_OK):
        return [Check.failed("directory", f"{store.where} is not writable by the Spillway process")]
    checks = [Check.passed("directory", f"{store.where} exists and is writable")]
    return checks + object_checks(store, needs, store.explain)
