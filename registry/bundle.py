"""Turn a set of local files into a cached, pinned bundle (used by ingest and train).

The files are copied into the content-addressed cache while being hashed, the
manifest is written to the cache only after every blob is there, and the pinned
copy lands in the workspace's `manifests/`. Re-creating a version from identical
files and metadata returns the existing manifest unchanged (same `created`, same
digest), so `ingest` twice followed by `push` stays a no-op instead of a conflict.
"""

from __future__ import annotations

from pathlib import Path

from modelreg.config import Settings
from modelreg.errors import AlreadyExists
from modelreg.local.cache import Cache
from modelreg.local.workspace import pin, read_pinned
from modelreg.manifest import FileEntry, Manifest, check_bundle_path
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref


def create_bundle(settings: Settings, ref: Ref, files: dict[str, tuple[str, Path]], *, model: dict,
                  metrics: dict, provenance: dict, reporter: ProgressReporter | None = None) -> Manifest:
    """Store `files` ({bundle path: (role, local path)}) and return the version's manifest.

    Raises AlreadyExists when the cache already holds `ref` with different files or metadata.
    """
    reporter = reporter or SilentProgress()
    cache = Cache(settings.cache_dir)
    entries = []
    for bundle_path, (role, local) in sorted(files.items()):
        check_bundle_path(bundle_path)
        digest, size = cache.add_file(local, reporter.task(f"hash {bundle_path}", local.stat().st_size))
        entries.append(FileEntry(path=bundle_path, role=role, size=size, sha256=digest))
    manifest = Manifest(name=ref.name, version=ref.version, files=tuple(entries), model=model,
                        metrics=metrics, provenance=provenance)
    existing = cache.load_manifest(ref) or read_pinned(settings.workspace, ref)
    if existing is not None:
        if _same_content(existing, manifest):
            reporter.message(f"{ref} already holds these exact files; kept its manifest")
            manifest = existing
        else:
            raise AlreadyExists(
                f"{ref} already exists in the local cache or workspace pins with other files or metadata (manifest "
                f"{existing.digest[:12]}). Versions are immutable: use a new version name.")
    pin(settings.workspace, manifest)
    cache.save_manifest(manifest)
    return manifest


def _same_content(a: Manifest, b: Manifest) -> bool:
    """Equal except for the creation time and the tool versions that recorded it."""
    def key(m: Manifest):
        return (m.files, m.model, m.metrics, m.provenance.get("dataset_fingerprint"))
    return key(a) == key(b)
