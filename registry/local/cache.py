"""The local content-addressed cache: verified blobs and the manifests that name them.

    <cache>/blobs/sha256/<2 hex>/<64 hex>        verified content, read-only (0444)
    <cache>/blobs/sha256/<2 hex>/<64 hex>.partial an interrupted download, resumable, never a blob
    <cache>/manifests/<name>/<version>.json       a manifest whose blobs are all present
    <cache>/manifests/<name>/<version>.sig        its model.sig, when it has one
    <cache>/locks/<64 hex>.lock                   one downloader per blob at a time

A blob file only ever appears by `os.replace` after its size and sha256 matched,
and a manifest only after all its blobs did. The lock only avoids duplicate
downloads; correctness comes from temp file + verify + rename. The cache is still
treated as untrusted by readers that deserialize: `modelreg.load` re-hashes.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from modelreg.errors import IntegrityError, NotFound
from modelreg.hashing import CHUNK_SIZE, HashingSink, Progress, hash_file
from modelreg.layout import blob_key
from modelreg.manifest import FileEntry, Manifest
from modelreg.refs import Ref


@dataclass(frozen=True)
class Cache:
    root: Path

    # -- blobs -------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.root.joinpath(*blob_key(sha256).split("/"))

    def has_blob(self, entry: FileEntry) -> bool:
        """True when a blob of the right size is present (not re-hashed: see `verify_blob`)."""
        try:
            return self.blob_path(entry.sha256).stat().st_size == entry.size
        except FileNotFoundError:
            return False

    def blob_lock(self, sha256: str) -> FileLock:
        """A cross-process lock so two pulls of one blob do not both download it."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{sha256}.lock"), timeout=-1)

    def verify_blob(self, entry: FileEntry, progress: Progress | None = None) -> Path:
        """Re-hash a cached blob; a corrupt one is deleted and raises IntegrityError (source "cache")."""
        path = self.blob_path(entry.sha256)
        if not path.exists():
            raise NotFound(f"{entry.path} ({entry.sha256[:12]}) is not in the local cache {self.root}; "
                           f"run 'modelreg pull' to fetch it.")
        actual, size = hash_file(path, progress)
        if actual != entry.sha256 or size != entry.size:
            _force_unlink(path)
            raise IntegrityError(
                f"The cached copy of {entry.path} is corrupt: expected sha256 {entry.sha256} "
                f"({entry.size} bytes), found {actual} ({size} bytes) in {path}. The bad copy was "
                f"deleted; run 'modelreg pull' again to fetch a good one.",
                path=entry.path, expected=entry.sha256, actual=actual, source="cache")
        return path

    def add_file(self, source: Path, progress: Progress | None = None) -> tuple[str, int]:
        """Copy a local file into the cache, hashing while copying; returns (sha256, size)."""
        temp_dir = self.root / "tmp"
        temp_dir.mkdir(parents=True, exist_ok=True)
        temp = temp_dir / f"{uuid.uuid4().hex}.incoming"
        try:
            with open(source, "rb") as src, open(temp, "wb") as out:
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

    def publish_verified(self, temp: Path, entry: FileEntry, actual: str, size: int, source: str) -> Path:
        """Rename a downloaded temp file into the blob store if it matches `entry`, else delete it."""
        if actual != entry.sha256 or size != entry.size:
            temp.unlink(missing_ok=True)
            raise IntegrityError(
                f"Download of {entry.path} from {source} failed verification: expected sha256 "
                f"{entry.sha256} ({entry.size} bytes), got {actual} ({size} bytes). The download was "
                f"deleted and nothing was written to the cache. The copy on the remote is damaged or "
                f"was replaced: re-push the version from a good copy ('modelreg push'), or ask whoever "
                f"owns the remote.",
                path=entry.path, expected=entry.sha256, actual=actual, source="remote")
        return self._publish(temp, actual)

    def _publish(self, temp: Path, sha256: str) -> Path:
        target = self.blob_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temp, 0o444)
        os.replace(temp, target)
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

    def cached_refs(self) -> list[Ref]:
        base = self.root / "manifests"
        if not base.is_dir():
            return []
        return sorted(Ref(path.parent.name, path.stem) for path in base.glob("*/*.json"))


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same directory and `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _force_unlink(path: Path) -> None:
    try:
        os.chmod(path, 0o644)
    except OSError:
        pass
    path.unlink(missing_ok=True)

