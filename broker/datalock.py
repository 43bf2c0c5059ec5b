"""One broker per data folder: the process that runs jobs (serve with its embedded worker, worker, demo,
a harvest from the command line) holds an exclusive lock on ``<data dir>/panbroker.lock`` for its
lifetime; a second one is refused at start, before it changes anything, with a message naming the
holder. The kernel releases the lock when the holder dies, however it dies.
"""
from __future__ import annotations

import fcntl
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from panmodel.errors import ConfigurationError

LOCK_NAME = "panbroker.lock"
_held: dict[Path, int] = {}
_guard = threading.Lock()


class DataDirBusy(ConfigurationError):
    """Another panbroker process holds the data folder."""


def holder(data_dir: Path) -> str | None:
    """Who holds ``data_dir`` ("serve, pid 1234, since ..."), or None when nobody does."""
    path = Path(data_dir).resolve() / LOCK_NAME
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.read(fd, 300).decode(errors="replace").strip() or "another process"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def hold(data_dir: Path, role: str) -> None:
    """Take the data folder for this process (a no-op if it holds it already); ``DataDirBusy`` if another
    process does. The folder is made private (0700) on the way."""
    folder = Path(data_dir).resolve()
    with _guard:
        if folder in _held:
            return
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.read(fd, 300).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataDirBusy(f"{folder} is in use by another panbroker ({who}): stop it first, or give this one "
                              "its own PANBROKER_DATA_DIR (or --data-dir)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{role}, pid {os.getpid()}, since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC".encode())
        _held[folder] = fd


def release(data_dir: Path) -> None:
    with _guard:
        fd = _held.pop(Path(data_dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def private_files(data_dir: Path) -> None:
    """Make what the broker keeps in ``data_dir`` readable by its owner only (0600 files, 0700 folders)."""
    folder = Path(data_dir)
    if not folder.exists():
        return
    for path in [folder, *folder.rglob("*")]:
        try:
            path.chmod(0o700 if path.is_dir() else 0o600)
        except OSError:
            pass
