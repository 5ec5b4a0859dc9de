"""SHA-256 helpers that hash bytes exactly once, while they stream.

Every digest modelreg compares is lowercase hex SHA-256. `HashingSink` is the
piece downloads write through, so the bytes that land in a temp file are the bytes
that were hashed; `hash_file` is for files already on disk.
"""

from __future__ import annotations

import hashlib
import re
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
