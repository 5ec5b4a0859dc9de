"""The storage interface every backend (file, S3, SSH) implements.

Everything above it — dedupe, verification, manifests last, tags — is written once
in `modelreg.transfer`; a backend only moves bytes under string keys such as
`blobs/sha256/ab/ab12...` relative to the registry root. Keys are always
validated POSIX paths (see `modelreg.layout`).

What a backend can and cannot promise differs (an S3 server may ignore
`If-None-Match`, SFTP has no server-side checksum), so each one states it in its
`capabilities` instead of the protocol promising it for all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

from modelreg.errors import UsageError
from modelreg.hashing import HashingReader, Progress

DEFAULT_STALL_TIMEOUT = 30.0
"""Seconds without a byte from a remote before an operation is abandoned (`stall_timeout`)."""


def stall_timeout_of(options: dict, label: str) -> float:
    """The `stall_timeout` remote option (seconds, > 0), else `DEFAULT_STALL_TIMEOUT`.

    `modelreg.config.Settings.remote` fills it in from the flag, environment or config file.
    """
    value = options.get("stall_timeout")
    if value is None:
        return DEFAULT_STALL_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if not seconds > 0:
        raise UsageError(f"Invalid stall_timeout {value!r} for {label}: give a number of seconds "
                         f"above 0.")
    return seconds


TEMP_PREFIX = ".incoming-"
"""Temp files of uploads in progress (file://, SSH) are `TEMP_PREFIX + <32 hex> + "-" + target name`."""


def temp_target(name: str) -> str | None:
    """The name of the file a temp file (see `TEMP_PREFIX`) is uploading, or None for any other name."""
    if not name.startswith(TEMP_PREFIX):
        return None
    unique, dash, target = name[len(TEMP_PREFIX):].partition("-")
    if dash and target and len(unique) == 32 and all(char in "0123456789abcdef" for char in unique):
        return target
    return None


def is_temp_of(name: str, target: str) -> bool:
    """Is `name` a temp file (see `TEMP_PREFIX`) of an upload to the file named `target`?"""
    return temp_target(name) == target


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object, as `Storage.list_info` reports it."""

    key: str
    size: int
    mtime: float
    """When it was last written (POSIX seconds, by the server's clock)."""
    age: float
    """Seconds from `mtime` to the listing (>= 0), by the server's clock where the backend can read
    it (S3: the response's `Date` header), else this machine's (file://, SSH: the mtimes are
    the server's, the clock is ours; a skewed clock makes objects look older or younger)."""
    etag: str | None = None
    """S3's ETag as listed (quotes included; derived from the content: the MD5 of a single PUT, of
    the parts for a multipart upload); None on backends without one (file://, SSH)."""


@dataclass(frozen=True)
class UploadInfo:
    """An unfinished upload (`Storage.list_uploads`): a temp file or an incomplete multipart upload."""

    key: str
    """The key the upload would have published."""
    upload_id: str
    """The backend's name for it, for `remove_upload`: the temp file's key (file://, SSH) or the
    multipart upload id (S3)."""
    size: int | None
    """Bytes it holds (a temp file's size, the sum of a multipart upload's parts), when known."""
    age: float
    """Seconds since its last write (a temp file's mtime, a multipart upload's initiation or
    latest part), measured as for `ObjectInfo.age`."""


def temp_upload(key: str, size: int, age: float) -> UploadInfo | None:
    """The unfinished upload whose temp file is `key` (file://, SSH), or None when `key` is not a temp file."""
    directory, _, name = key.rpartition("/")
    target = temp_target(name)
    if target is None:
        return None
    return UploadInfo(key=f"{directory}/{target}" if directory else target, upload_id=key, size=size,
                      age=max(0.0, age))


def temp_key_of(upload: UploadInfo) -> str:
    """The temp file's key of an upload from `temp_upload`; UsageError for anything else, so that
    `remove_upload` can never delete an object."""
    if temp_upload(upload.upload_id, 0, 0) != replace(upload, size=0, age=0):
        raise UsageError(f"{upload.upload_id!r} is not the temp file of an upload of {upload.key!r}; "
                         f"nothing was removed.")
    return upload.upload_id


class Cancelled(Exception):
    """Raised by a transfer that stopped because `Storage.cancel()` was called (e.g. on Ctrl-C).

    Not a `RegistryError`: nothing failed, the caller asked to stop.
    """


def stall_advice(seconds: float) -> str:
    """How to wait longer, for messages about a remote that stopped answering."""
    return (f"no byte arrived for {seconds:g} s (stall_timeout). Check the endpoint and the network; "
            f"on a slow link raise the limit with --stall-timeout, MODELREG_STALL_TIMEOUT or "
            f"stall_timeout in the config file")


class Sink(Protocol):
    """Where `Storage.read` puts bytes: anything with a `write(bytes)` (a file, a `HashingSink`...).

    The return value is ignored. Progress reporting, size limits and hashing belong
    to the sink; whatever its `write` raises reaches the caller of `read` unchanged.
    `data` may be a view of a buffer the backend reuses once `write` returns (S3 parts,
    `s3.parts`): a sink that keeps bytes must copy them, as files and BytesIO do.
    """

    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


@dataclass(frozen=True)
class Capabilities:
    """What one backend guarantees, for the orchestration (and a reader) to rely on.

    Like restic's backend `Properties`: stated by the backend, never assumed.
    """

    atomic_create_only: bool
    """Of several writers racing `write(create_only=True)` on one key, exactly one wins and
    every other gets `AlreadyExists`. When False, a key that already exists is still
    refused, but writers racing within the backend's check-then-write window may all succeed."""

    atomic_replace: bool
    """An overwriting `write` is atomic: readers see the old object or the whole new one."""

    server_side_checksums: bool
    """`write(sha256=...)` has the server refuse bytes that do not match (`IntegrityError`).
    When False the digest is not checked on upload; readers verify every byte anyway."""

    parallel_transfers: int
    """How many files the orchestration may move at once through this backend (>= 1)."""

    def __post_init__(self) -> None:
        if self.parallel_transfers < 1:
            raise ValueError(f"parallel_transfers must be at least 1, not {self.parallel_transfers}")


@runtime_checkable
class Storage(Protocol):
    """A registry root that can store and fetch immutable objects.

    Guarantees a caller relies on, from every backend:
    - An overwriting `write` never leaves a partial object: readers see the old one, none,
      or the whole new one (`capabilities.atomic_replace`).
    - `write(create_only=True)` never replaces an existing object; it raises
      `modelreg.errors.AlreadyExists` instead. Whether two *racing* writers are also
      decided exactly (one wins) is `capabilities.atomic_create_only`.
    - Every method is safe to call from several threads at once.
    - Failures raise `modelreg.errors.RegistryError` subclasses (`NotFound`,
      `AlreadyExists`, `RemoteError` with the backend's exception as `__cause__`).
    - It is a context manager: `with open_storage(spec) as storage:` closes it on exit.
    """

    url: str
    """The registry root as a URL, for messages (never contains credentials)."""

    capabilities: Capabilities
    """What this backend (as configured) guarantees beyond the above."""

    @property
    def parallel_transfers(self) -> int:
        """`capabilities.parallel_transfers` (kept for callers that read it directly)."""

    def stat(self, key: str) -> int | None:
        """Size in bytes of `key`, or None when it does not exist."""

    def read(self, key: str, sink: Sink, *, offset: int = 0) -> None:
        """Write the bytes of `key` from `offset` on, in order, into `sink`, from the calling thread.

        Exceptions raised by `sink.write` (e.g. a size limit) propagate unchanged, and
        the storage stays usable afterwards. Raises `NotFound` when the key does not exist.
        """

    def write(self, key: str, source: Path | bytes | HashingReader, *, create_only: bool = False,
              sha256: str | None = None, progress: Progress | None = None) -> None:
        """Store `source` (a local file, bytes, or a `HashingReader`) under `key`, atomically.

        A `HashingReader` is read once, each range exactly once; when it raises (its
        bytes do not match their digest), nothing is stored.

        `sha256`, when given, is the hex digest of `source`; a backend with
        `capabilities.server_side_checksums` has the server check it.
        `progress` is called with byte counts as the upload advances.
        """

    def list_info(self, prefix: str) -> list[ObjectInfo]:
        """`list` with each object's size, modification time and age, sorted by key.

        `prefix` names a directory ("blobs/" and "blobs" are the same; "" is the root).
        A symbolic link or other non-regular file is listed as it is (file://, SSH:
        its own size and mtime, never its target's).
        """

    def list_uploads(self, prefix: str) -> list[UploadInfo]:
        """Every unfinished upload under `prefix` (recursively), young or old, sorted by key.

        What a killed (or still running) writer leaves: on file:// and SSH its temp file
        (see `TEMP_PREFIX`), on S3 an incomplete multipart upload (which no listing shows
        but whose parts are stored). A young one may be an upload in progress: the caller
        decides by `age` what is abandoned.
        """

    def list(self, prefix: str) -> list[str]:
        """All keys under `prefix` (recursively), sorted; empty when none. Temp files are never listed."""

    def remove_upload(self, upload: UploadInfo) -> None:
        """Remove what `upload` (from `list_uploads`) holds; one already gone is not an error.

        Never touches `upload.key` itself.
        """

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    def remove_stale_uploads(self, key: str, older_than: float, size: int | None = None) -> int:
        """Remove what killed uploads of `key` left behind (temp files, unfinished multipart
        uploads) that saw no write for `older_than` seconds; returns how many were removed.

        Leftovers younger than that may be another writer's upload in progress and are
        kept. Never touches `key` itself. `size`, when given, is the size of the object
        about to be written: a backend may then skip looking where an upload of that size
        leaves nothing (S3: a single PUT); `gc` still finds any leftover.
        """

    def cancel(self) -> None:
        """Make every transfer in flight, on any thread, stop at its next chunk by raising
        `Cancelled`; a download's bytes already handed to the sink stay there (resumable),
        an upload's temp object is removed when the connection still allows it. Later
        calls fail with `Cancelled` too: cancel before closing, on Ctrl-C."""

    def close(self) -> None:
        """Release connections; the object is unusable afterwards. Calling it twice is harmless."""

    def __enter__(self) -> Self:
        """Return the storage itself."""

    def __exit__(self, *exc_info: object) -> None:
        """Close the storage."""


class StorageBase:
    """The parts every backend shares: the context manager and `parallel_transfers`.

    A backend subclasses it, sets `url` and `capabilities` in `__init__` and
    implements the other `Storage` methods.
    """

    url: str
    capabilities: Capabilities
    cancelled: threading.Event
    """Set by `cancel()`; a backend creates it in `__init__` and checks it between chunks."""

    @property
    def parallel_transfers(self) -> int:
        return self.capabilities.parallel_transfers

    def cancel(self) -> None:
        self.cancelled.set()

    def check_cancelled(self) -> None:
        """Raise `Cancelled` once `cancel()` was called."""
        if self.cancelled.is_set():
            raise Cancelled(f"transfer with {self.url} cancelled")

    def list(self, prefix: str) -> list[str]:
        return [info.key for info in self.list_info(prefix)]  # type: ignore[attr-defined]

    def remove_stale_uploads(self, key: str, older_than: float, size: int | None = None) -> int:
        """As the protocol says, through `list_uploads` of the key's directory and `remove_upload`
        (whatever `size`: a killed upload of any size leaves a temp file)."""
        directory = key.rpartition("/")[0]
        stale = [upload for upload in self.list_uploads(directory)  # type: ignore[attr-defined]
                 if upload.key == key and upload.age >= older_than]
        for upload in stale:
            self.remove_upload(upload)  # type: ignore[attr-defined]
        return len(stale)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
