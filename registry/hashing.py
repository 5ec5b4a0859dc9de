"""SHA-256 helpers that hash bytes exactly once, while they stream.

Every digest modelreg compares is lowercase hex SHA-256. `HashingSink` is the
piece downloads write through, so the bytes that land in a temp file are the bytes
that were hashed; `hash_file` is for files already on disk.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

CHUNK_SIZE = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")

Progress = Callable[[int], None]
"""A callback receiving a number of bytes just processed (may be negative when a retry rewinds)."""


class Sink(Protocol):
    """Where streamed bytes go: anything with `write` (a file, a BytesIO, a HashingSink)."""

    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


def is_sha256_hex(value: str) -> bool:
    """True for a 64-character lowercase hex digest."""
    return bool(_HEX64.fullmatch(value))


def hash_file(path: Path, progress: Progress | None = None) -> tuple[str, int]:
    """Return (sha256 hex, size) of a file, reading it once in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest(), size


def hash_bytes(data: bytes) -> str:
    """Return the sha256 hex of an in-memory byte string."""
    return hashlib.sha256(data).hexdigest()


class HashingSink:
    """A write-only file object that hashes and counts what it forwards.

    `limit` bounds how many bytes are accepted: a remote object larger than its
    declared size is detected after `limit` bytes instead of filling the disk.
    Writes past the limit raise `OverflowError`, which the caller turns into an
    integrity error naming the file.
    """

    def __init__(self, target: Sink, *, limit: int | None = None,
                 progress: Progress | None = None, digest=None, size: int = 0) -> None:
        self._target = target
        self._digest = digest if digest is not None else hashlib.sha256()
        self._limit = limit
        self._progress = progress
        self.size = size

    def write(self, data) -> int:
        view = memoryview(data)
        if self._limit is not None and self.size + len(view) > self._limit:
            raise OverflowError(f"more than {self._limit} bytes received")
        self._target.write(view)
        self._digest.update(view)
        self.size += len(view)
        if self._progress:
            self._progress(len(view))
        return len(view)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        flush = getattr(self._target, "flush", None)
        if flush is not None:
            flush()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class HashingReader:
    """An upload source that hashes exactly the bytes it hands out and refuses the last one on a mismatch.

    Backends read it by offset (`read_at`, from several threads, each range once, in
    any order) or front to back (`read`). Bytes are hashed in file order as they are
    handed over; ranges read ahead of the hashed front wait in memory (as much as the
    backend has in flight). When the last byte is handed over, the digest is compared
    with `sha256` and, on a mismatch, that read raises what `mismatch(actual)` returns
    instead of returning data: the backend fails before publishing the object, so an
    altered local file is never stored under the digest it claims.
    """

    def __init__(self, path: Path, sha256: str, size: int,
                 mismatch: Callable[[str], Exception]) -> None:
        self.path = path
        self.size = size
        self._expected = sha256
        self._mismatch = mismatch
        self._fd: int | None = None
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._ahead: dict[int, bytes] = {}
        self._position = 0
        self._matched = False
        self._lock = threading.Lock()

    def __enter__(self) -> HashingReader:
        """Open the file without following a symlink; a link or special file is refused as a mismatch."""
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise self._mismatch("(a symbolic link, not followed)") from None
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            self.__exit__()
            raise self._mismatch("(not a regular file)")
        if self.size == 0 and hashlib.sha256().hexdigest() != self._expected:
            self.__exit__()
            raise self._mismatch(hashlib.sha256().hexdigest())
        self._matched = self.size == 0
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def complete(self) -> bool:
        """True once every byte was handed over and matched `sha256`."""
        return self._matched

    def read(self, length: int = -1) -> bytes:
        """The next `length` bytes (all that remain when -1); b"" at the end."""
        with self._lock:
            offset = self._position
            length = self.size - offset if length < 0 else min(length, self.size - offset)
            self._position += length
        return self.read_at(offset, length) if length > 0 else b""

    def read_at(self, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` (clipped to `size`); each range is to be read once."""
        assert self._fd is not None, "read inside the `with` block"
        length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise self._mismatch(f"(the file is shorter than {self.size} bytes)")
        with self._lock:
            if offset < self._hashed or offset in self._ahead:
                raise RuntimeError(f"bytes at {offset} of {self.path} were read twice; a backend "
                                   f"must read each range of a HashingReader once")
            self._ahead[offset] = data
            while self._hashed in self._ahead:
                piece = self._ahead.pop(self._hashed)
                self._digest.update(piece)
                self._hashed += len(piece)
            if self._hashed == self.size:
                if self._digest.hexdigest() != self._expected:
                    raise self._mismatch(self._digest.hexdigest())
                self._matched = True
        return data
