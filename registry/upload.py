"""One cached blob to a remote: the bytes sent are the bytes hashed, leftovers of killed pushes cleaned.

The cache is untrusted, so a blob is never uploaded unread: a `HashingReader`
hashes exactly what the backend sends and refuses the read that completes a blob
whose digest differs, so the backend fails before storing it and the manifest is
never published. Before uploading, stale temp objects of the same blob (a killed
push's `.incoming-*` file or unfinished multipart upload) are removed.
"""

from __future__ import annotations

from pathlib import Path

from modelreg.errors import DigestMismatch, MissingFile, RegistryError, RemoteError
from modelreg.hashing import HashingReader
from modelreg.layout import blob_key
from modelreg.local.cache import Cache
from modelreg.manifest import FileEntry
from modelreg.progress import ProgressReporter
from modelreg.storage.base import Storage

STALE_UPLOAD_AGE = 3600.0
"""Seconds without a write after which an upload's leftovers (temp file, unfinished multipart
upload) count as abandoned. Uploads take no lock, so a younger one may be another push of
the same blob in progress: removing it would fail that push."""


def upload_blob(cache: Cache, storage: Storage, entry: FileEntry, reporter: ProgressReporter) -> None:
    """Upload a cached blob, hashing the very bytes sent (the cache is untrusted).

    The `HashingReader` refuses the read that completes a blob whose digest differs,
    so the backend fails before the blob is stored and the manifest is never published.
    The blob is read once: there is no separate verification pass.
    """
    path = cache.blob_path(entry.sha256)
    try:
        removed = storage.remove_stale_uploads(blob_key(entry.sha256), STALE_UPLOAD_AGE, entry.size)
    except RemoteError as exc:  # clean-up is a courtesy: the upload itself may still work
        reporter.message(f"Could not clean up old partial uploads of {entry.path}: {exc}")
    else:
        if removed:
            reporter.message(f"Removed {removed} abandoned partial upload(s) of {entry.path} "
                             f"from {storage.url}")

    def mismatch(actual: str) -> DigestMismatch:
        return DigestMismatch(
            path=entry.path, expected=entry.sha256, actual=actual, expected_size=entry.size,
            actual_size=_size_or_missing(path), where=f"the cached copy of {entry.path} ({path})",
            outcome=f"Nothing was stored on {storage.url} under its digest and the version was not "
                    f"published.",
            fix="The cache was altered after the version was made: pull it again from a good copy "
                "or re-create it (ingest/train), then push.", source="cache")

    try:
        with HashingReader(path, entry.sha256, entry.size, mismatch) as reader:
            storage.write(blob_key(entry.sha256), reader, sha256=entry.sha256,
                          progress=reporter.task(f"push {entry.path}", entry.size))
            if not reader.complete:
                raise mismatch("(not every byte was read)")
    except FileNotFoundError as exc:
        if isinstance(exc, RegistryError):
            raise
        raise MissingFile(path=entry.path, expected=entry.sha256, where=f"the local cache {cache.root}",
                          fix="Pull or re-create the version, then push.", source="cache") from None


def _size_or_missing(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
