"""Files only the service can read: the data directory 0700, the database and key files 0600.

Spillway does not touch the process umask (it would change the mode of everything the process
writes, local exports included); it creates its own directory and files with explicit modes,
and tightens ones it finds looser, saying so in the log.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
# Names (prefixes) of what Spillway keeps in its data directory: the generated service key
# (and its temporary file while being written) and the SQLite database with its -wal, -shm and
# -journal files.
DATA_FILES = ("secret.key", ".secret.key.", "spillway.db")
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def private_dir(path: Path, ours: Iterable[str] = ()) -> None:
    """Make sure ``path`` exists and only this user may enter it.

    A missing directory is created 0700. An existing one that others may enter is tightened to
    0700 when it is Spillway's own: owned by this user and holding nothing but Spillway's files
    (names starting with one of :data:`DATA_FILES` or ``ours``), or nothing at all. A directory
    that holds other things (a data dir pointed at a shared place) is left as it is, with a
    warning: the files Spillway keeps in it are 0600 whatever the directory's mode.
    """
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        pass
    else:
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask
        return
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return
    prefixes = (*DATA_FILES, *ours)
    foreign = sorted(p.name for p in path.iterdir() if not p.name.startswith(prefixes))
    if info.st_uid != os.geteuid() or foreign:
        log.warning(
            "the directory %s (mode %04o) lets other users in, and it is not Spillway's alone "
            "(%s), so it is left as it is; Spillway's own files in it are mode 0600. "
            "Run 'chmod 700 %s' if only this service uses it",
            path,
            mode,
            "owned by another user"
            if info.st_uid != os.geteuid()
            else "it also holds " + ", ".join(foreign[:5]),
            path,
        )
        return
    os.chmod(path, DIR_MODE)
    log.warning(
        "tightened the permissions of the data directory %s from %04o to 0700: only this "
        "user may read the events and keys in it",
        path,
        mode,
    )


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing; tighten it to 0600 if others may
    read it (logged)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        tighten_file(path)
    else:
        os.close(fd)


def tighten_file(path: Path) -> None:
    """Set an existing file to 0600 when group or others may read it (logged)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, FILE_MODE)
        log.warning("tightened the permissions of %s from %04o to 0600", path, mode)


def private_sqlite(path: Path) -> None:
    """The SQLite database at ``path``: its directory private, the file created 0600 before
    SQLite opens it (SQLite gives the -wal, -shm and -journal files the database's mode), and
    existing ones tightened."""
    private_dir(path.parent, ours=(path.name,))
    private_file(path)
    for suffix in SQLITE_SUFFIXES[1:]:
        tighten_file(path.with_name(path.name + suffix))
