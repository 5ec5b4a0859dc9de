"""The local content-addressed cache: verified blobs and the manifests that name them.

    <cache>/blobs/sha256/<2 hex>/<64 hex>         verified content, read-only (0444)
    <cache>/blobs/sha256/<2 hex>/<64 hex>.partial an interrupted download, resumable, never a blob
    <cache>/blobs/sha256/<2 hex>/<64 hex>.partial.<host>.<pid>.<random>  one process's download
    <cache>/fingerprints/<2 hex>/<64 hex>.json    stat of a blob when it was last fully verified
    <cache>/manifests/<name>/<version>.json       a manifest whose blobs are all present
    <cache>/manifests/<name>/<version>.sig        its model.sig, when it has one
    <cache>/manifests/<name>/<version>.remotes    the remotes known to hold it (pulled or pushed)
    <cache>/tags-seen/<name>/<tag>.json           the version a tag pointed at when last pulled
    <cache>/locks/<64 hex>.lock                   one downloader per blob at a time
    <cache>/snapshots/<name>/<version>/           a verified copy of a `files` bundle, by `load`
    <cache>/tmp/                                  files being added by ingest/train

A blob file only ever appears by rename after its size and sha256 matched, and a
manifest only after all its blobs did. The lock only avoids duplicate downloads;
correctness comes from per-process temp files + verify + rename (see
`modelreg.download.download_blob`), so a lock that silently does not lock (NFS,
Lustre) costs a duplicate download, never a wrong blob. Readers that deserialize
still treat the cache as untrusted: every read goes through `read_verified`, the
one place a cached blob is checked, which deletes a corrupt blob and raises.

modelreg never follows a symlink it did not create: blobs are opened with
O_NOFOLLOW and must be regular files; a symlink, FIFO or other non-regular file
where a blob should be is a damaged entry, which is unlinked (the link itself,
never its target) and re-fetched by the next pull. Nothing is ever chmod-ed
through a path: permissions are set on file descriptors modelreg opened itself.

A fingerprint (size, mtime_ns, ctime_ns, inode, device) is recorded each time a
blob is fully hashed. `verified_fingerprint` says whether the blob is unchanged
since then; when it changed, or the record is missing or unreadable, the blob is
re-hashed. The fingerprint is an optimization for reporting and repair only:
bytes are still hashed every time they are read.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from modelreg.errors import DigestMismatch, LocalIOError, MissingFile
from modelreg.file_writes import open_sliced
from modelreg.hashing import CHUNK_SIZE, HashingSink, Progress, Sink
from modelreg.layout import blob_key
from modelreg.local.atomic import atomic_output, atomic_write, publish, temp_name
from modelreg.local.lockfile import FileLock
from modelreg.manifest import FileEntry, Manifest, utc_now
from modelreg.refs import Ref

FINGERPRINT_FIELDS = ("size", "mtime_ns", "ctime_ns", "inode", "device")


class _Discard:
    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        return len(data)


@dataclass(frozen=True)
class Cache:
    root: Path

    # -- blobs -------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.root.joinpath(*blob_key(sha256).split("/"))

    def has_blob(self, entry: FileEntry) -> bool:
        """True when a regular file of the right size is the blob (not re-hashed: see `read_verified`).

        A symlink or other non-regular file in its place is removed (never followed),
        so the caller fetches a good copy.
        """
        path = self.blob_path(entry.sha256)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(info.st_mode):
            remove_entry(path)
            return False
        return info.st_size == entry.size

    def verified_fingerprint(self, entry: FileEntry) -> str | None:
        """When the blob was last fully verified, if its stat fingerprint is unchanged since; else None.

        None also when there is no fingerprint record or it is unreadable: then the
        caller must re-hash (`verify_blob`).
        """
        path = self.blob_path(entry.sha256)
        try:
            record = json.loads(read_regular(self._fingerprint_path(entry.sha256)) or b"")
            current = _fingerprint(os.lstat(path))
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("verified_at"), str):
            return None
        if current["size"] != entry.size or any(record.get(k) != current[k] for k in FINGERPRINT_FIELDS):
            return None
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        return record["verified_at"]

    def _fingerprint_path(self, sha256: str) -> Path:
        return self.root / "fingerprints" / sha256[:2] / f"{sha256}.json"

    def _record_fingerprint(self, sha256: str, info: os.stat_result) -> None:
        """Remember the stat of a blob just verified; best effort (a missing record means re-hash)."""
        try:
            atomic_write(self._fingerprint_path(sha256),
                         json.dumps({**_fingerprint(info), "verified_at": utc_now()}).encode())
        except OSError:
            pass

    def blob_lock(self, sha256: str) -> FileLock:
        """A cross-process lock so two pulls of one blob do not both download it (`lockfile`)."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(locks / f"{sha256}.lock")

    def read_verified(self, entry: FileEntry, sink: Sink, progress: Progress | None = None) -> None:
        """Stream the cached blob of `entry` into `sink`, hashing exactly the bytes handed over.

        The sink's bytes are trustworthy only once this returns. Raises MissingFile
        when the blob is absent, and DigestMismatch (after deleting the blob, so a
        pull fetches a good copy) when its digest or size differs from `entry`.
        """
        path = self.blob_path(entry.sha256)
        source = open_regular(path)
        if source is None:
            raise MissingFile(path=entry.path, expected=entry.sha256, where=f"the local cache {self.root}",
                              fix="Run 'modelreg pull' to fetch it again.", source="cache")
        with source:
            before = os.fstat(source.fileno())
            hashing = HashingSink(sink, progress=progress)
            while chunk := source.read(CHUNK_SIZE):
                hashing.write(chunk)
        if hashing.hexdigest() == entry.sha256 and hashing.size == entry.size:
            self._record_fingerprint(entry.sha256, before)
        else:
            remove_entry(path)
            raise DigestMismatch(
                path=entry.path, expected=entry.sha256, actual=hashing.hexdigest(),
                expected_size=entry.size, actual_size=hashing.size,
                where=f"the cached copy of {entry.path} ({path})",
                outcome="It was not used and has been deleted.",
                fix="Run 'modelreg pull' again to fetch a good copy.", source="cache")

    def verify_blob(self, entry: FileEntry, progress: Progress | None = None) -> Path:
        """Re-hash a cached blob in place (see `read_verified`); returns its path."""
        self.read_verified(entry, _Discard(), progress)
        return self.blob_path(entry.sha256)

    def read_bytes(self, entry: FileEntry) -> bytes:
        """The exact, verified bytes of a small cached blob."""
        buffer = io.BytesIO()
        self.read_verified(entry, buffer)
        return buffer.getvalue()

    def copy_verified(self, entry: FileEntry, target: Path) -> None:
        """Write the verified bytes of a cached blob to `target` atomically (nothing on failure)."""
        with atomic_output(target, suffix=".incoming") as out:
            self.read_verified(entry, out)

    def add_file(self, source: Path, progress: Progress | None = None) -> tuple[str, int]:
        """Copy a local file into the cache, hashing while copying; returns (sha256, size)."""
        temp = temp_name(self.root / "tmp" / "file", ".incoming")
        try:
            src = open(source, "rb")
        except OSError as exc:
            raise LocalIOError(f"Cannot read {source} ({exc.strerror or exc}); check the path and its "
                               f"permissions.") from exc
        try:
            temp.parent.mkdir(parents=True, exist_ok=True)
            with src, open_new(temp) as out:
                sink = HashingSink(out, progress=progress)
                while chunk := src.read(CHUNK_SIZE):
                    sink.write(chunk)
            digest = sink.hexdigest()
            self._publish(temp, digest)
            return digest, sink.size
        except OSError as exc:
            raise LocalIOError(f"Cannot copy {source} into the local cache {self.root} "
                               f"({exc.strerror or exc}); nothing was stored. Free disk space or point "
                               f"MODELREG_CACHE at a writable disk with room, then try again.") from exc
        finally:
            temp.unlink(missing_ok=True)

    def partial_path(self, entry: FileEntry) -> Path:
        """Where an interrupted download of `entry` leaves its bytes for the next pull to resume from."""
        path = self.blob_path(entry.sha256).with_name(f"{entry.sha256}.partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def publish_download(self, temp: Path, entry: FileEntry, actual: str, size: int, source: str) -> Path:
        """Rename a downloaded temp file into the blob store if it matches `entry`, else delete it."""
        if actual != entry.sha256 or size != entry.size:
            remove_entry(temp)
            raise DigestMismatch(
                path=entry.path, expected=entry.sha256, actual=actual, expected_size=entry.size,
                actual_size=size, where=f"the download of {entry.path} from {source}",
                outcome="The download was deleted and nothing was written to the cache.",
                fix="The copy on the remote is damaged or was replaced: repair it from a good copy with "
                    "'modelreg push NAME:VERSION --repair', or ask whoever owns the remote.", source="remote")
        return self._publish(temp, actual)

    def _publish(self, temp: Path, sha256: str) -> Path:
        """Make a verified temp file (one this process created) read-only and rename it to the blob."""
        target = self.blob_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        publish(temp, target)
        try:
            self._record_fingerprint(sha256, os.lstat(target))
        except OSError:
            pass
        return target

    # -- manifests ---------------------------------------------------------

    def manifest_path(self, ref: Ref) -> Path:
        return self.root / "manifests" / ref.name / f"{ref.version}.json"

    def save_manifest(self, manifest: Manifest) -> Path:
        """Record a manifest whose blobs are all present (call only after they are)."""
        return self.save_manifest_bytes(Ref(manifest.name, manifest.version), manifest.to_bytes())

    def save_manifest_bytes(self, ref: Ref, data: bytes) -> Path:
        """Record exact manifest bytes as received, so their digest stays the remote's."""
        path = self.manifest_path(ref)
        atomic_write(path, data)
        return path

    def save_signature(self, ref: Ref, signature: bytes | None) -> None:
        """Keep (or, with None, forget) the `model.sig` that came with a cached manifest."""
        path = self.manifest_path(ref).with_suffix(".sig")
        if signature is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write(path, signature)

    def read_signature(self, ref: Ref) -> bytes | None:
        return read_regular(self.manifest_path(ref).with_suffix(".sig"))

    def remember_published(self, ref: Ref, remote_url: str) -> None:
        """Record that `remote_url` holds version `ref` (it was pulled from or pushed there)."""
        urls = self.published_on(ref)
        if remote_url not in urls:
            path = self.manifest_path(ref).with_suffix(".remotes")
            atomic_write(path, json.dumps(sorted({*urls, remote_url})).encode())

    def forget_published(self, ref: Ref, remote_url: str) -> None:
        """Record that `remote_url` no longer holds version `ref` (it was deleted there)."""
        urls = self.published_on(ref)
        if remote_url in urls:
            path = self.manifest_path(ref).with_suffix(".remotes")
            atomic_write(path, json.dumps(sorted(urls - {remote_url})).encode())

    def published_on(self, ref: Ref) -> set[str]:
        """The remotes known to hold version `ref`; empty when unknown or unreadable."""
        data = read_regular(self.manifest_path(ref).with_suffix(".remotes"))
        try:
            urls = json.loads(data) if data is not None else []
        except (ValueError, RecursionError):
            return set()
        return {url for url in urls if isinstance(url, str)} if isinstance(urls, list) else set()

    def read_manifest_bytes(self, ref: Ref) -> bytes | None:
        return read_regular(self.manifest_path(ref))

    def manifest_file_names(self, name: str) -> frozenset[str]:
        """The file names under `manifests/<name>/` (empty when there is no such directory), so that a
        caller asking about thousands of versions opens only the manifests that exist."""
        try:
            return frozenset(os.listdir(self.root / "manifests" / name))
        except OSError:  # absent, not a directory, unreadable: nothing to show as cached
            return frozenset()

    def load_manifest(self, ref: Ref) -> Manifest | None:
        data = self.read_manifest_bytes(ref)
        if data is None:
            return None
        return Manifest.from_bytes(data, source=f"the local cache ({self.manifest_path(ref)})")

    def snapshot_dir(self, ref: Ref) -> Path:
        """Where a version is materialized when a family loads it as a directory (`files`)."""
        return self.root / "snapshots" / ref.name / ref.version

    # -- tags last seen (rollback protection) ------------------------------

    def tag_seen_path(self, tag_ref: Ref) -> Path:
        return self.root / "tags-seen" / tag_ref.name / f"{tag_ref.version}.json"

    def read_tag_seen(self, tag_ref: Ref) -> dict | None:
        """The record `remember_tag_seen` wrote for this tag, or None (also when unreadable)."""
        try:
            record = json.loads(read_regular(self.tag_seen_path(tag_ref)) or b"")
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(record, dict) or not all(isinstance(record.get(key), str)
                                                   for key in ("version", "created", "manifest_sha256")):
            return None
        return record

    def remember_tag_seen(self, tag_ref: Ref, record: dict) -> None:
        atomic_write(self.tag_seen_path(tag_ref), json.dumps(record, sort_keys=True).encode())


def _fingerprint(info: os.stat_result) -> dict:
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ctime_ns": info.st_ctime_ns,
            "inode": info.st_ino, "device": info.st_dev}


def _open_regular_fd(path: str | Path) -> tuple[int, os.stat_result] | None:
    """(fd, stat) of `path` opened for reading if it is a regular file itself, else None (see `open_regular`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EOPNOTSUPP):
            raise
        remove_entry(path)
        return None
    try:
        info = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        remove_entry(path)
        return None
    return fd, info


def open_regular(path: str | Path):
    """Open `path` for reading only if it is a regular file itself (not a link, FIFO, device...).

    Returns None when it is absent. A symlink or non-regular file in its place is
    removed with `remove_entry` (the link, never its target) and reported as absent.
    """
    opened = _open_regular_fd(path)
    if opened is None:
        return None
    os.set_blocking(opened[0], True)
    return os.fdopen(opened[0], "rb")


SMALL_FILE_LIMIT = 64 * 1024 * 1024
"""The most `read_regular` reads: manifests, records and the listing index are far smaller."""


def read_regular(path: str | Path, limit: int = SMALL_FILE_LIMIT) -> bytes | None:
    """The bytes of a small cache file that is a regular file itself, or None (see `open_regular`).

    A file larger than `limit` counts as absent (callers treat it like a missing or unreadable
    record), so a planted huge file is never read into memory whole. Read with `os.read` on
    the descriptor, without a file object: `list` reads 10,000 cached manifests this way
    (~100 µs each through `os.fdopen` and pathlib, measured in a repeated 10,000-version list).
    """
    opened = _open_regular_fd(path)
    if opened is None:
        return None
    fd, info = opened
    try:
        parts, total = [], 0
        while total <= limit:  # until EOF: the file may have grown since fstat
            chunk = os.read(fd, min(limit + 1 - total, max(info.st_size + 1 - total, 64 * 1024)))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > limit:
        return None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def open_new(path: Path, *, append_to_existing: bool = False):
    """A binary write handle on a file this process creates (O_EXCL, O_NOFOLLOW): never through a link."""
    flags = os.O_WRONLY | os.O_NOFOLLOW | (os.O_APPEND if append_to_existing else os.O_CREAT | os.O_EXCL)
    return open_sliced(os.open(path, flags, 0o644))


def remove_entry(path: str | Path) -> None:
    """Remove a cache entry (a damaged blob, a link, a FIFO): unlinks the name, never what it points to."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError as exc:
        raise LocalIOError(f"{path} in the modelreg cache is a directory; remove it by hand.") from exc
