"""Atomic writes on this machine's disk: the one temp-file-then-rename helper.

A reader of `path` sees the old file, no file, or the whole new one, never a
half-written file: bytes go to a unique temp name in the same directory (same
filesystem, so the rename is atomic), which is removed on any exception,
KeyboardInterrupt included. `create_only=True` publishes with `os.link`, which
fails when the name exists, so of two racing writers exactly one wins and an
existing file is never replaced (keys, signatures). The temp name is opened with
O_EXCL|O_NOFOLLOW, so a planted symlink is never written through.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from modelreg.errors import AlreadyExists
from modelreg.file_writes import open_sliced


def temp_name(path: Path, suffix: str = ".tmp") -> Path:
    """A unique, hidden name beside `path` (keeps `path`'s suffix last when asked, e.g. `.h5`)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}{suffix}")


@contextmanager
def atomic_output(path: Path, *, create_only: bool = False, mode: int = 0o644,
                  fsync: bool = False, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Yield a binary file whose content becomes `path` when the block ends without an exception.

    Raises AlreadyExists (and leaves `path` untouched) when `create_only` and `path` exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(path, suffix)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with open_sliced(fd) as out:
            os.fchmod(out.fileno(), mode)
            yield out
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        publish(temp, path, create_only=create_only)
    finally:
        temp.unlink(missing_ok=True)


def publish(temp: Path, path: Path, *, create_only: bool = False) -> None:
    """Move a finished temp file to `path`: replace, or (create_only) link and fail if taken."""
    if not create_only:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)
    except FileExistsError as exc:
        raise AlreadyExists(f"{path} already exists; modelreg never replaces it.") from exc
    temp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes, *, create_only: bool = False, mode: int = 0o644,
                 fsync: bool = False) -> None:
    """Write `data` to `path` atomically (see `atomic_output`)."""
    with atomic_output(path, create_only=create_only, mode=mode, fsync=fsync) as out:
        out.write(data)
