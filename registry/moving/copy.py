"""Copy one version between two registries, verified, without it being in the cache.

Guarantees (the same as a pull followed by a push, minus the cache):
- the manifest and `model.sig` are read from the source and pass the gate
  (`modelreg.trust.gate.verify_manifest`: workspace pin, schema, identity,
  signature policy with the trusted keys) before any blob moves;
- each blob the destination lacks is downloaded into a private staging directory
  through a hashing sink (constant memory, refused on any size or digest mismatch),
  then uploaded from there through a `HashingReader` that hashes exactly the bytes
  sent: the destination never stores a blob under a digest it does not have;
- the manifest is published last and create-only (an identical one already there is
  a no-op, a different one is refused), then `SHA256SUMS` and `model.sig` (create-only,
  so a signature already on the destination is kept). The signature bytes are copied
  unchanged, so `model_signing verify` passes on a pull from the destination;
- with `tags`, every source tag pointing at this exact manifest is set on the destination.

Tag rollback checks do not apply: they protect what this machine last pulled, and a
copy records nothing in the cache.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.config import RemoteSpec, Settings
from modelreg.download import download_blob
from modelreg.errors import AlreadyExists
from modelreg.hashing import hash_bytes
from modelreg.layout import SIGNATURE_NAME, SUMS_NAME, blob_key, tag_key, version_key
from modelreg.local.cache import Cache, remove_entry
from modelreg.manifest import FileEntry, Manifest
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref
from modelreg.remote.index import Tag, fetch_manifest, list_tags, read_small
from modelreg.remote.records import MAX_RECORD_BYTES
from modelreg.remote.yanks import yank_keys
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.transfer import publish_signature, require_online, run_all, unique_blobs
from modelreg.trust.gate import VerifiedManifest, verify_manifest
from modelreg.trust.policy import SignatureStatus
from modelreg.upload import upload_blob


@dataclass
class CopyResult:
    manifest: Manifest
    source: str
    dest: str
    copied: list[FileEntry] = field(default_factory=list)
    """Blobs the destination lacked, streamed through verification."""
    present: list[FileEntry] = field(default_factory=list)
    """Blobs already on the destination (same key and size): not sent again."""
    already_there: bool = False
    """The destination already held this exact manifest."""
    signature: SignatureStatus | None = None
    signature_copied: bool = False
    yank_copied: bool = False
    """The version is yanked on the source: its yank record now withdraws it on the destination too."""
    tags: list[Tag] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"ref": self.manifest.ref, "manifest_sha256": self.manifest.digest, "from": self.source,
                "to": self.dest, "copied": [e.sha256 for e in self.copied],
                "present": [e.sha256 for e in self.present],
                "bytes_copied": sum(e.size for e in self.copied), "already_there": self.already_there,
                "signature": self.signature.describe() if self.signature else "unsigned",
                "signature_copied": self.signature_copied, "yank_copied": self.yank_copied,
                "tags": [f"{t.name}:{t.tag}" for t in self.tags]}


@contextmanager
def staging_cache(settings: Settings, purpose: str) -> Iterator[Cache]:
    """A private (0700), empty cache-shaped directory under the cache's tmp/, removed on exit."""
    parent = settings.cache_dir / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{purpose}-", dir=parent))
    try:
        yield Cache(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def gate_source_version(settings: Settings, source: Storage, ref: Ref,
                        source_label: str | None = None) -> VerifiedManifest:
    """The manifest (and signature) `ref` resolves to on `source`, after the trust gate."""
    manifest, data = fetch_manifest(source, ref)
    version_ref = Ref(manifest.name, manifest.version)
    signature = read_small(source, version_key(manifest.name, manifest.version, SIGNATURE_NAME))
    return verify_manifest(settings, version_ref, data, signature, source_label or source.url)


def copy_version(settings: Settings, ref: Ref, source: Storage, dest: Storage, *, tags: bool = False,
                 reporter: ProgressReporter | None = None, local_blobs: Cache | None = None,
                 source_label: str | None = None) -> CopyResult:
    """Copy version (or tag) `ref` from `source` to `dest` (see the module docstring).

    `local_blobs`, when the source's blobs are already verified files on this machine in
    cache layout (an unpacked archive), uploads them from there instead of staging a copy.
    Raises AlreadyExists when `dest` holds a different manifest under that version, or a
    tag of that name; the gate's errors (IntegrityError, UntrustedError) before anything moved.
    """
    reporter = reporter or SilentProgress()
    verified = gate_source_version(settings, source, ref, source_label)
    manifest, data, version_ref = verified.manifest, verified.data, verified.ref
    label = source_label or source.url
    result = CopyResult(manifest=manifest, source=label, dest=dest.url, signature=verified.status)
    manifest_key = version_key(manifest.name, manifest.version)
    existing = read_small(dest, manifest_key)
    if existing is not None:
        check_same_manifest(existing, data, version_ref, dest)
        result.already_there = True
    elif dest.stat(tag_key(manifest.name, manifest.version)) is not None:
        raise AlreadyExists(f"{version_ref} is a tag on {dest.url}; a version cannot share its name. "
                            f"Nothing was copied: remove or rename that tag on {dest.url} first.")
    blobs = unique_blobs(manifest)
    sizes = run_all(dest, lambda e: dest.stat(blob_key(e.sha256)), blobs)
    for entry, size in zip(blobs, sizes):
        (result.present if size == entry.size else result.copied).append(entry)
    if local_blobs is not None:
        run_all(dest, lambda e: upload_blob(local_blobs, dest, e, reporter), result.copied)
    elif result.copied:
        with staging_cache(settings, "copy") as staging:
            run_all(dest, lambda e: _relay_blob(staging, source, dest, e, version_ref, reporter),
                    result.copied)
    if existing is None:
        try:
            dest.write(manifest_key, data, create_only=True)
        except AlreadyExists:
            check_same_manifest(read_small(dest, manifest_key) or b"", data, version_ref, dest)
            result.already_there = True
    sums_key = version_key(manifest.name, manifest.version, SUMS_NAME)
    if dest.stat(sums_key) is None:
        dest.write(sums_key, manifest.sha256sums().encode())
    if verified.signature is not None:
        result.signature_copied = publish_signature(dest, version_ref, verified.signature)
    result.yank_copied = copy_yank(source, dest, version_ref)
    if tags:
        digest = hash_bytes(data)
        for tag in list_tags(source, manifest.name):
            if tag.version == manifest.version and tag.manifest_sha256 == digest:
                set_tag(dest, tag)
                result.tags.append(tag)
    return result


def _relay_blob(staging: Cache, source: Storage, dest: Storage, entry: FileEntry, ref: Ref,
                reporter: ProgressReporter) -> None:
    """Source -> private staging file (verified while it streams) -> destination (hashed as sent)."""
    try:
        download_blob(staging, source, entry, reporter, ref)
        upload_blob(staging, dest, entry, reporter)
    finally:
        remove_entry(staging.blob_path(entry.sha256))


def set_tag(dest: Storage, tag: Tag) -> None:
    """Write `tag` on `dest` with a tag-history record (`modelreg.tag_moves`), refusing when a
    version there has the tag's name."""
    from modelreg.tag_moves import write_recorded_tag

    if dest.stat(version_key(tag.name, tag.tag)) is not None:
        raise AlreadyExists(f"{tag.name}:{tag.tag} is a version on {dest.url}; the tag of that name "
                            f"was not copied. Pick another tag name with 'modelreg tag'.")
    write_recorded_tag(dest, tag)


def copy_yank(source: Storage, dest: Storage, ref: Ref) -> bool:
    """Carry the source's yank record (and its signature, first) to `dest`, create-only, so a
    withdrawn version stays withdrawn where it is copied; True when one was copied."""
    record_key, signature_key = yank_keys(ref)
    record = read_small(source, record_key, limit=MAX_RECORD_BYTES)
    if record is None or dest.stat(record_key) is not None:
        return False
    signature = read_small(source, signature_key)
    if signature is not None:
        dest.write(signature_key, signature)
    try:
        dest.write(record_key, record, create_only=True)
    except AlreadyExists:
        return False
    return True


def check_same_manifest(existing: bytes, data: bytes, ref: Ref, dest: Storage) -> None:
    if hash_bytes(existing) != hash_bytes(data):
        raise AlreadyExists(
            f"{ref} already exists on {dest.url} with a different manifest ({hash_bytes(existing)[:12]}, "
            f"the source's is {hash_bytes(data)[:12]}). Versions are immutable: nothing was replaced. "
            f"Copy it under another registry, or remove the destination's copy by hand if it is wrong.")


def copy(settings: Settings, ref: Ref, from_spec: RemoteSpec, to_spec: RemoteSpec, *, tags: bool = False,
         reporter: ProgressReporter | None = None) -> CopyResult:
    """`modelreg copy`: open both registries and copy one version (see `copy_version`)."""
    require_online(settings, "copy from", from_spec)
    require_online(settings, "copy to", to_spec)
    with open_storage(from_spec) as source, open_storage(to_spec) as dest:
        result = copy_version(settings, ref, source, dest, tags=tags, reporter=reporter,
                              source_label=from_spec.label)
    result.dest = to_spec.label
    return result
