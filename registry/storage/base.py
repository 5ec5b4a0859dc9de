"""The storage interface every backend (file, S3, SSH) implements.

Everything above it — dedupe, verification, manifests last, tags — is written once
in `modelreg.transfer`; a backend only moves bytes under string keys such as
`blobs/sha256/ab/ab12...` relative to the registry root. Keys are always
validated POSIX paths (see `modelreg.layout`).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from modelreg.hashing import Progress


@runtime_checkable
class Storage(Protocol):
    """A registry root that can store and fetch immutable objects.

    Guarantees a caller relies on:
    - `write` is atomic: readers see the old object, no object, or the whole new one.
    - `write(create_only=True)` never replaces an existing object; it raises
      `modelreg.errors.AlreadyExists` instead, and of two racing writers exactly one wins.
    - Every method is safe to call from several threads at once.
    - Failures raise `modelreg.errors.RegistryError` subclasses (`NotFound`,
      `AlreadyExists`, `RemoteError` with the backend's exception as `__cause__`).
    """

    url: str
    """The registry root as a URL, for messages (never contains credentials)."""

    parallel_transfers: int
    """How many files the orchestration may move at once through this backend."""

    def stat(self, key: str) -> int | None:
        """Size in bytes of `key`, or None when it does not exist."""

    def read(self, key: str, sink: BinaryIO, *, offset: int = 0, progress: Progress | None = None) -> None:
        """Write the bytes of `key` from `offset` on, in order, into `sink`.

        Exceptions raised by `sink.write` (e.g. a size limit) propagate unchanged.
        Raises `NotFound` when the key does not exist.
        """

    def write(self, key: str, source: Path | bytes, *, create_only: bool = False,
              sha256: str | None = None, progress: Progress | None = None) -> None:
        """Store `source` (a local file or bytes) under `key`, atomically.

        `sha256`, when given, is the hex digest of `source`; backends that can have
        the server check it (S3 checksums) do so.
        """

    def list(self, prefix: str) -> list[str]:
        """All keys under `prefix` (recursively), sorted; empty when none."""

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    def close(self) -> None:
        """Release connections; the object is unusable afterwards."""
