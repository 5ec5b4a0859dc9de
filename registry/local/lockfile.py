"""Advisory locks between modelreg processes: `flock` on a lock file, polled like filelock's.

They only coordinate: a second pull of one blob waits instead of downloading it
again, two processes recording a host key do not interleave. Nothing depends on
them for correctness (on NFS `flock` may not lock at all): blobs are published by
rename after verification, and known_hosts is replaced whole.

This replaces the `filelock` package on the download path: importing it took
~20 ms (`python -X importtime`: filelock 4 loads its asyncio, decimal and settings
modules), a twentieth of a whole `modelreg pull` of the 4 MB bundle. The lock file
is opened with O_NOFOLLOW: a symlink planted at its name is refused (OSError), never
followed. Where `fcntl` does not exist (Windows), filelock is used as before.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

POLL_INTERVAL = 0.05
"""Seconds between attempts while another process holds the lock (filelock's default)."""


class LockBusy(Exception):
    """The lock is held by someone else and the caller asked not to wait."""


class FileLock:
    """An exclusive lock on `path` (created if missing); not reentrant, one holder per object."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._fallback: Any = None  # a filelock.FileLock, off POSIX

    @property
    def is_locked(self) -> bool:
        return self._fd is not None or self._fallback is not None

    def acquire(self, blocking: bool = True) -> None:
        """Take the lock, waiting for it unless `blocking` is False (then `LockBusy`); OSError if
        the lock file cannot be opened (a symlink, no permission, no space)."""
        if self.is_locked:
            raise RuntimeError(f"{self.path} is already locked by this object")
        if fcntl is None:  # pragma: no cover - not on POSIX
            self._acquire_fallback(blocking)
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not blocking:
                        raise LockBusy(f"{self.path} is locked by another process") from None
                    time.sleep(POLL_INTERVAL)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the file releases it); a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        fallback, self._fallback = self._fallback, None
        if fallback is not None:  # pragma: no cover - not on POSIX
            fallback.release()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *_exc) -> None:
        self.release()

    def _acquire_fallback(self, blocking: bool) -> None:  # pragma: no cover - not on POSIX
        import filelock

        lock = filelock.FileLock(str(self.path), timeout=-1 if blocking else 0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LockBusy(f"{self.path} is locked by another process") from None
        self._fallback = lock
