"""The local content-addressed cache: verified blobs and the manifests that name them.

    <cache>/blobs/sha256/<2 hex>/<64 hex>         verified content, read-only (0444)
    <cache>/blobs/sha256/<2 hex>/<64 hex>.partial an interrupted download, resumable, never a blob
    <cache>/manifests/<name>/<version>.json       a manifest whose blobs are all present
    <cache>/manifests/<name>/<version>.sig        its model.sig, when it has one
    <cache>/tags-seen/<name>/<tag>.json           the version a tag pointed at when last pulled
    <cache>/locks/<64 hex>.lock                   one downloader per blob at a time
    <cache>/snapshots/<name>/<version>/           a verified copy of a `files` bundle, by `load`
    <cache>/tmp/                                  files being added by ingest/train

A blob file only ever appears by rename after its size and sha256 matched, and a
manifest only after all its blobs did. The lock only avoids duplicate downloads;
correctness comes from temp file + verify + rename. Readers that deserialize still
treat the cache as untrusted: every read goes through `read_verified`, the one
place a cached blob is checked, which deletes a corrupt blob and raises.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from modelreg.errors import DigestMismatch, MissingFile
from modelreg.hashing import CHUNK_SIZE, HashingSink, Progress, Sink
from modelreg.layout import blob_key
from modelreg.local.atomic import atomic_output, atomic_write, publish, temp_name
from modelreg.manifest import FileEntry, Manifest
from modelreg.refs import Ref


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
        """True when a blob of the right size is present (not re-hashed: see `read_verified`)."""
        try:
            return self.blob_path(entry.sha256).stat().st_size == entry.size
        except FileNotFoundError:
            return False

    def blob_lock(self, sha256: str) -> FileLock:
        """A cross-process lock so two pulls of one blob do not both download it."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{sha256}.lock"), timeout=-1)

    def read_verified(self, entry: FileEntry, sink: Sink, progress: Progress | None = None) -> None:
        """Stream the cached blob of `entry` into `sink`, hashing exactly the bytes handed over.

        The sink's bytes are trustworthy only once this returns. Raises MissingFile
        when the blob is absent, and DigestMismatch (after deleting the blob, so a
        pull fetches a good copy) when its digest or size differs from `entry`.
        """
        path = self.blob_path(entry.sha256)
        try:
            source = open(path, "rb")
        except FileNotFoundError:
            raise MissingFile(path=entry.path, expected=entry.sha256, where=f"the local cache {self.root}",
                              fix="Run 'modelreg pull' to fetch it again.", source="cache") from None
        with source:
            hashing = HashingSink(sink, progress=progress)
            while chunk := source.read(CHUNK_SIZE):
                hashing.write(chunk)
        if hashing.hexdigest() != entry.sha256 or hashing.size != entry.size:
            _force_unlink(path)
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
        temp.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(source, "rb") as src, open(temp, "xb") as out:
                sink = HashingSink(out, progress=progress)
                while chunk := src.read(CHUNK_SIZE):
                    sink.write(chunk)
            digest = sink.hexdigest()
            self._publish(temp, digest)
            return digest, sink.size
        finally:
            temp.unlink(missing_ok=True)

    def open_partial(self, entry: FileEntry) -> Path:
        """Where an interrupted download of `entry` keeps its bytes (only touched under the blob lock)."""
        path = self.blob_path(entry.sha256).with_name(f"{entry.sha256}.partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def publish_download(self, temp: Path, entry: FileEntry, actual: str, size: int, source: str) -> Path:
        """Rename a downloaded temp file into the blob store if it matches `entry`, else delete it."""
        if actual != entry.sha256 or size != entry.size:
            temp.unlink(missing_ok=True)
            raise DigestMismatch(
                path=entry.path, expected=entry.sha256, actual=actual, expected_size=entry.size,
                actual_size=size, where=f"the download of {entry.path} from {source}",
                outcome="The download was deleted and nothing was written to the cache.",
                fix="The copy on the remote is damaged or was replaced: re-push the version from a "
                    "good copy ('modelreg push'), or ask whoever owns the remote.", source="remote")
        return self._publish(temp, actual)

    def _publish(self, temp: Path, sha256: str) -> Path:
        target = self.blob_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temp, 0o444)
        publish(temp, target)
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
        try:
            return self.manifest_path(ref).with_suffix(".sig").read_bytes()
        except FileNotFoundError:
            return None

    def read_manifest_bytes(self, ref: Ref) -> bytes | None:
        try:
            return self.manifest_path(ref).read_bytes()
        except FileNotFoundError:
            return None

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
            record = json.loads(self.tag_seen_path(tag_ref).read_text())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(record, dict) or not all(isinstance(record.get(key), str)
                                                   for key in ("version", "created", "manifest_sha256")):
            return None
        return record

    def remember_tag_seen(self, tag_ref: Ref, record: dict) -> None:
        atomic_write(self.tag_seen_path(tag_ref), json.dumps(record, sort_keys=True).encode())


def _force_unlink(path: Path) -> None:
    try:
        os.chmod(path, 0o644)
    except OSError:
        pass
    path.unlink(missing_ok=True)
