"""What names an export's files: its key prefix, the settings snapshot a run is queued with,
and the keys of a run's files (SPEC R13).

One module for both sides: the export service shows the path a new export's files get and
queues runs now and backfills; the scheduler queues windows and the runner writes the files.
Neither imports the other; both import this.
"""

from __future__ import annotations

import time
from dataclasses import replace

from spillway.model import RANGE_KEYS, Export, Run, RunSettings

__all__ = [
    "RANGE_KEYS",
    "backfill_settings",
    "day_folder",
    "file_base",
    "prefix",
    "run_base",
    "run_settings",
]


def prefix(folder: str, name: str) -> str:
    """``<folder>_<name>``, or just ``<name>`` without a folder (SPEC R13)."""
    return f"{folder}_{name}" if folder else name


def run_settings(export: Export, folder: str, *, range_keys: bool = False) -> RunSettings:
    """The snapshot a new run takes of ``export``'s settings, with the key prefix its files
    get under its destination's ``folder``. ``range_keys``: a run now (files named by its
    sequence range)."""
    return RunSettings(export.settings, prefix(folder, export.name), range_keys)


def backfill_settings(export: Export, folder: str, run_id: str) -> RunSettings:
    """A backfill's snapshot: its files go under ``<prefix>_backfill/<run id>``, apart from
    the export's regular files."""
    regular = run_settings(export, folder)
    return replace(regular, prefix=f"{regular.prefix}_backfill/{run_id}")


def day_folder(window_end: int) -> str:
    """``export_day=DD-MM-YYYY`` of the window end (UTC)."""
    return "export_day=" + time.strftime("%d-%m-%Y", time.gmtime(window_end))


def file_base(key_prefix: str, window_end: int) -> str:
    """The key of a window's files without part number and suffix."""
    return f"{key_prefix}/{day_folder(window_end)}/event_exports_{window_end}"


def run_base(run: Run, seq_from: int, seq_to: int) -> str:
    """The key of a run's files without part number and suffix.

    A scheduled window's files are named by the window's end, ``event_exports_<end>``. A run
    now is named by its second *and* its sequence range, ``event_exports_<now>_manual_<after>-
    <through>``: sequence ranges of an export's runs never overlap, so its keys can never be
    another run's (a window closing in the same second, another run now in that second), and a
    retry, with the range fixed at the first attempt, rewrites the very same keys. (Runs now
    queued by an older version, without the flag, keep the keys their first attempt used.)
    """
    base = file_base(run.settings.prefix, run.window_end)
    if run.kind == "manual" and run.settings.range_keys:
        base += f"_manual_{seq_from}-{seq_to}"
    return base
