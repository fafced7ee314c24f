"""Replacing a file atomically and durably, at disk speed.

`write_atomically` writes a temporary file in the target's folder (locked while it is written),
fsyncs it, renames it over the target and fsyncs the folder: a crash at any point leaves either
the old file or the new one, whole, and once the call returns the new one survives a power cut.
The next call removes what a killed call left behind.

Two things keep the disk's time off the caller's path without weakening that:

- `start_writeback` asks the kernel (Linux ``sync_file_range``) to start writing each piece to
  disk as soon as it is written, so the closing fsync waits for the tail, not the whole file;
- the previous file is kept by a hard link across the rename and deleted afterwards on a helper
  thread: freeing its blocks costs milliseconds (more with the ``discard`` mount option) that
  nobody needs to wait for. A deletion still pending when the interpreter exits is done then; one
  a crash prevented is done by the next call. Without hard links the rename frees it directly.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from .serialization_parallel import later

try:  # POSIX: a temporary file is locked while it is written, so only a dead writer's is stale
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: None, tested before each use

__all__ = ["write_atomically", "start_writeback", "settle"]

_STALE_AGE_S = 3600  # without file locks, a leftover this old is taken as a crashed save's
_SYNC_FILE_RANGE_WRITE = 2  # start writeback of the range's dirty pages; do not wait


def _sync_file_range() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - a libc without it
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_RANGE = _sync_file_range()


def start_writeback(f: BinaryIO, begin: int, end: int) -> None:
    """Start writing bytes ``[begin, end)`` of ``f`` (flushed to the OS) to disk without waiting;
    a hint only (durability comes from the fsync): nothing happens where it is not supported."""
    if _SYNC_RANGE is not None and end > begin:
        _SYNC_RANGE(f.fileno(), begin, end - begin, _SYNC_FILE_RANGE_WRITE)


def _default_mode() -> int:
    """0666 less the process umask: the permissions ``open(path, "w")`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _remove_stale(folder: str, base: str) -> None:
    """Delete what killed calls for ``base`` left behind: temporaries no live call is writing, and
    kept previous files."""
    pattern = re.compile(re.escape(f".{base}.") + r"[A-Za-z0-9_]{8}\.(tmp|old)")
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return
    for name in names:
        leftover = os.path.join(folder, name)
        try:
            if name.endswith(".old"):
                os.unlink(leftover)  # only ever a second name of a replaced file
            elif fcntl is None:
                if time.time() - os.stat(leftover).st_mtime > _STALE_AGE_S:
                    os.unlink(leftover)
            else:
                fd = os.open(leftover, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live save holds it
                    os.unlink(leftover)
                finally:
                    os.close(fd)
        except OSError:
            continue


_pending: set[str] = set()  # previous files whose deletion is queued
_deleted = threading.Condition()


def _delete(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # already gone (the exit hook, or another call's clean-up)
    with _deleted:
        _pending.discard(path)
        _deleted.notify_all()


def settle(timeout: float = 10.0) -> None:
    """Wait (at most ``timeout`` seconds) until the previous files queued for deletion are gone,
    for a caller about to list the folder."""
    with _deleted:
        _deleted.wait_for(lambda: not _pending, timeout)


@atexit.register
def _delete_pending() -> None:
    for path in list(_pending):
        _delete(path)


def _keep_previous(path: str, tmp: str) -> str | None:
    """A second name for the file at ``path`` (so the rename does not free it), or None."""
    keep = tmp[: -len(".tmp")] + ".old"
    try:
        os.link(path, keep)
    except OSError:  # no file yet, or a file system without hard links
        return None
    return keep


def write_atomically(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Replace the file ``path`` with what ``write`` writes to the open binary file it is given,
    atomically and durably (module docstring); an error or interrupt leaves the old file."""
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    _remove_stale(folder, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    keep = None
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            os.fchmod(f.fileno(), _default_mode())  # mkstemp makes 0600; an ordinary file is wanted
            write(f)
            f.flush()
            os.fsync(f.fileno())
            keep = _keep_previous(path, tmp)
            os.replace(tmp, path)  # still locked: a concurrent save never takes it for a leftover
    except BaseException:
        for leftover in (tmp, keep):
            if leftover is not None and os.path.lexists(leftover):
                os.unlink(leftover)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        dir_fd = None
    if dir_fd is not None:
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    if keep is not None:
        with _deleted:
            _pending.add(keep)
        later(lambda: _delete(keep))
