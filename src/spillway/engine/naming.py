"""What names an export's files: its key prefix, the settings snapshot a run is queued with,
and the keys of a run's files (SPEC R13).

One module for both sides: the export service shows the path a new export's files get and
queues runs now and backfills; the scheduler queues windows and the runner writes the files.
Neither imports the other; both import this.

Two layouts of the folders under the prefix (an export's ``layout`` setting, snapshot with each
run like every other setting, so a change applies from the next run on):

- ``moengage`` (the default, seed 001): ``<prefix>/export_day=DD-MM-YYYY/event_exports_<end>…``,
  manifests beside the files;
- ``hive``: ``<prefix>/dt=YYYY-MM-DD/hour=HH/event_exports_<end>…``, partitions query engines
  read as typed columns. Manifests get a leading underscore there
  (``_event_exports_<end>.manifest.json``), the mark of a hidden file that Athena, Glue, Spark
  and Hive skip, so a table over the prefix reads data files only. Backfills stay in the same
  tree (``event_exports_<end>_backfill_<run id>…``), so one table reads every event.

Every key depends only on the run's settings snapshot, its window end, its id and its sequence
range: a retried run rewrites the very same keys in either layout.
"""

from __future__ import annotations

import time
from dataclasses import replace

from spillway.model import RANGE_KEYS, Export, Run, RunSettings

__all__ = [
    "HIVE",
    "LAYOUTS",
    "MOENGAGE",
    "RANGE_KEYS",
    "backfill_settings",
    "day_folder",
    "file_base",
    "manifest_key",
    "partition_folder",
    "path_pattern",
    "prefix",
    "run_base",
    "run_settings",
]

MOENGAGE = "moengage"
HIVE = "hive"
LAYOUTS = (MOENGAGE, HIVE)


def prefix(folder: str, name: str) -> str:
    """``<folder>_<name>``, or just ``<name>`` without a folder (SPEC R13)."""
    return f"{folder}_{name}" if folder else name


def run_settings(export: Export, folder: str, *, range_keys: bool = False) -> RunSettings:
    """The snapshot a new run takes of ``export``'s settings, with the key prefix its files
    get under its destination's ``folder``. ``range_keys``: a run now (files named by its
    sequence range)."""
    return RunSettings(export.settings, prefix(folder, export.name), range_keys)


def backfill_settings(export: Export, folder: str, run_id: str) -> RunSettings:
    """A backfill's snapshot. In the moengage layout its files go under ``<prefix>_backfill/
    <run id>``, apart from the export's regular files; in the hive layout they stay in the
    export's tree (named by the run id, :func:`run_base`), where a table over it reads them."""
    regular = run_settings(export, folder)
    if export.settings.layout == HIVE:
        return regular
    return replace(regular, prefix=f"{regular.prefix}_backfill/{run_id}")


def day_folder(window_end: int) -> str:
    """``export_day=DD-MM-YYYY`` of the window end (UTC)."""
    return "export_day=" + time.strftime("%d-%m-%Y", time.gmtime(window_end))


def partition_folder(window_end: int, layout: str = MOENGAGE) -> str:
    """The folder (below the prefix) of a window's files: ``export_day=DD-MM-YYYY``, or in the
    hive layout ``dt=YYYY-MM-DD/hour=HH`` (zero-padded, so keys sort by time). Both are of the
    window's end, as the records' own ``export_day`` and ``export_hour`` are."""
    if layout == HIVE:
        return time.strftime("dt=%Y-%m-%d/hour=%H", time.gmtime(window_end))
    return day_folder(window_end)


def file_base(key_prefix: str, window_end: int, layout: str = MOENGAGE) -> str:
    """The key of a window's files without part number and suffix."""
    return f"{key_prefix}/{partition_folder(window_end, layout)}/event_exports_{window_end}"


def path_pattern(key_prefix: str, layout: str, suffix: str) -> str:
    """The keys of an export's files as a pattern people read (the API's ``path``)."""
    folder = "dt=<YYYY-MM-DD>/hour=<HH>" if layout == HIVE else "export_day=<DD-MM-YYYY>"
    return f"{key_prefix}/{folder}/event_exports_<epoch>{suffix}"


def manifest_key(run: Run, base: str) -> str:
    """Where a run's manifest goes: ``<base>.manifest.json`` beside its files; in the hive
    layout with a leading underscore, hidden from the engines reading the tree as a table."""
    if run.settings.export.layout == HIVE:
        folder, _, name = base.rpartition("/")
        return f"{folder}/_{name}.manifest.json"
    return f"{base}.manifest.json"


def run_base(run: Run, seq_from: int, seq_to: int) -> str:
    """The key of a run's files without part number and suffix.

    A scheduled window's files are named by the window's end, ``event_exports_<end>``. A run
    now is named by its second *and* its sequence range, ``event_exports_<now>_manual_<after>-
    <through>``: sequence ranges of an export's runs never overlap, so its keys can never be
    another run's (a window closing in the same second, another run now in that second), and a
    retry, with the range fixed at the first attempt, rewrites the very same keys. (Runs now
    queued by an older version, without the flag, keep the keys their first attempt used.)
    """
    layout = run.settings.export.layout
    base = file_base(run.settings.prefix, run.window_end, layout)
    if run.kind == "manual" and run.settings.range_keys:
        base += f"_manual_{seq_from}-{seq_to}"
    elif run.kind == "backfill" and layout == HIVE:
        # In the export's own tree: the run id keeps it apart from every other run's keys.
        base += f"_backfill_{run.id}"
    return base
