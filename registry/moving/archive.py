"""Export versions from the cache into one tar archive laid out as a registry root.

    blobs/sha256/<2 hex>/<64 hex>          every distinct blob, once
    models/<name>/<version>/manifest.json  the exact cached manifest bytes
    models/<name>/<version>/SHA256SUMS     `sha256sum -c` view of the manifest
    models/<name>/<version>/model.sig      when the version is signed
    tags/<name>/<tag>.json                 with `tags`: the chosen tags

so `tar -x` alone turns it into a file:// registry that `modelreg pull` accepts.

Guarantees:
- a version that is not cached whole is pulled first (`transfer.pull`: verified, and
  with `--offline` served from the cache only); every version passes the trust gate;
- every blob is hashed as it is written into the archive (`HashingReader`), so a cache
  file altered after it was verified fails the export instead of being shipped;
- the archive is written to a temp file beside the output and renamed over it only when
  complete: `output` is the whole new archive or untouched;
- the same versions and tags give the same bytes: members sorted by name, mtime 0,
  uid/gid 0, no user names, mode 0644, PAX format.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import DigestMismatch, LocalIOError, RegistryError
from modelreg.hashing import HashingReader, hash_bytes
from modelreg.layout import SIGNATURE_NAME, SUMS_NAME, blob_key, tag_key, version_key
from modelreg.local.atomic import atomic_output
from modelreg.local.cache import Cache
from modelreg.manifest import FileEntry, canonical_json
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref
from modelreg.remote.index import Tag, list_tags
from modelreg.storage import open_storage
from modelreg.transfer import pull, unique_blobs
from modelreg.trust.gate import VerifiedManifest, open_cached_manifest


@dataclass
class ExportResult:
    path: Path
    versions: list[VerifiedManifest] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    blobs: int = 0
    blob_bytes: int = 0
    pulled: list[str] = field(default_factory=list)
    """Versions that were not cached whole and were pulled first."""

    def to_json(self) -> dict:
        return {"path": str(self.path), "blobs": self.blobs, "blob_bytes": self.blob_bytes,
                "versions": [{"ref": str(v.ref), "manifest_sha256": hash_bytes(v.data),
                              "signature": v.status.describe()} for v in self.versions],
                "tags": [f"{t.name}:{t.tag}" for t in self.tags], "pulled": self.pulled}


def export(settings: Settings, refs: list[Ref], output: Path, spec: RemoteSpec, *, tags: bool = False,
           reporter: ProgressReporter | None = None, allow_yanked: bool = False) -> ExportResult:
    """Write `refs` (versions or tags) from the cache into the tar `output` (see the module docstring).

    With `tags`, the archive carries the tags given among `refs` and, online, every tag on
    `spec` that points at an exported version. A yanked version is refused as by pull
    (`modelreg.yanking`) unless `allow_yanked`; the archive carries no yank record.
    """
    from modelreg.yanking import check_cached_yank

    reporter = reporter or SilentProgress()
    cache = Cache(settings.cache_dir)
    result = ExportResult(path=output)
    chosen: dict[tuple[str, str], Tag] = {}
    for ref in refs:
        verified = _cached_whole(settings, cache, ref)
        if verified is not None:
            for note in check_cached_yank(settings, cache, verified.ref, spec, allow_yanked,
                                          ref if ref != verified.ref else None):
                reporter.message(f"Warning: {note}")
        else:
            pulled = pull(settings, ref, spec, reporter=reporter, allow_yanked=allow_yanked)
            result.pulled.append(pulled.manifest.ref)
            verified = open_cached_manifest(settings, cache, Ref(pulled.manifest.name, pulled.manifest.version))
            assert verified is not None, "a pull records the manifest in the cache"
        if verified.ref not in [v.ref for v in result.versions]:
            result.versions.append(verified)
        if tags and ref.version != verified.ref.version:
            chosen[(ref.name, ref.version)] = Tag(ref.name, ref.version, verified.ref.version,
                                                  hash_bytes(verified.data))
    if tags and not settings.offline:
        for tag in _remote_tags(spec, result.versions):
            chosen.setdefault((tag.name, tag.tag), tag)
    result.tags = [chosen[key] for key in sorted(chosen)]
    blobs = sorted({e.sha256: e for v in result.versions for e in unique_blobs(v.manifest)}.values(),
                   key=lambda e: e.sha256)
    result.blobs, result.blob_bytes = len(blobs), sum(e.size for e in blobs)
    metadata = _metadata_members(result)
    try:
        with atomic_output(output, suffix=".partial") as out, \
                tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in blobs:
                _add_blob(tar, cache, entry, output, reporter)
            for key, data in metadata:
                tar.addfile(_member(key, len(data)), io.BytesIO(data))
    except OSError as exc:
        if isinstance(exc, RegistryError):
            raise
        raise LocalIOError(f"Cannot write the archive {output} ({exc.strerror or exc}); nothing was "
                           f"written there. Check the directory's permissions and free space.") from exc
    return result


def _cached_whole(settings: Settings, cache: Cache, ref: Ref) -> VerifiedManifest | None:
    """The gated cached manifest of version `ref` when every blob of it is cached, else None."""
    verified = open_cached_manifest(settings, cache, ref)
    if verified is None or not all(cache.has_blob(e) for e in unique_blobs(verified.manifest)):
        return None
    return verified


def _remote_tags(spec: RemoteSpec, versions: list[VerifiedManifest]) -> list[Tag]:
    """Every tag on `spec` pointing at one of `versions` with the same manifest digest."""
    wanted = {(v.ref.name, v.ref.version, hash_bytes(v.data)) for v in versions}
    with open_storage(spec) as storage:
        return [tag for name in sorted({v.ref.name for v in versions}) for tag in list_tags(storage, name)
                if (tag.name, tag.version, tag.manifest_sha256) in wanted]


def _metadata_members(result: ExportResult) -> list[tuple[str, bytes]]:
    members = []
    for verified in result.versions:
        name, version = verified.ref.name, verified.ref.version
        members.append((version_key(name, version), verified.data))
        members.append((version_key(name, version, SUMS_NAME), verified.manifest.sha256sums().encode()))
        if verified.signature is not None:
            members.append((version_key(name, version, SIGNATURE_NAME), verified.signature))
    members += [(tag_key(tag.name, tag.tag), canonical_json(tag.__dict__)) for tag in result.tags]
    return sorted(members)


def _member(key: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(key)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = \
        size, 0, 0o644, 0, 0, "", ""
    return info


def _add_blob(tar: tarfile.TarFile, cache: Cache, entry: FileEntry, output: Path,
              reporter: ProgressReporter) -> None:
    path = cache.blob_path(entry.sha256)

    def mismatch(actual: str) -> DigestMismatch:
        return DigestMismatch(
            path=entry.path, expected=entry.sha256, actual=actual, expected_size=entry.size,
            actual_size=-1, where=f"the cached copy of {entry.path} ({path})",
            outcome=f"The archive {output} was not written.",
            fix="The cache was altered after the version was pulled: run 'modelreg verify' on the "
                "version (it removes the damaged copy) and export again.", source="cache")

    progress = reporter.task(f"export {entry.path}", entry.size)
    with HashingReader(path, entry.sha256, entry.size, mismatch) as reader:
        tar.addfile(_member(blob_key(entry.sha256), entry.size), _Counting(reader, progress))
        if not reader.complete:
            raise mismatch("(not every byte was read)")


class _Counting:
    """A reader that reports bytes read to a progress callback (tarfile reads in chunks)."""

    def __init__(self, reader: HashingReader, progress) -> None:
        self._reader, self._progress = reader, progress

    def read(self, length: int = -1) -> bytes:
        data = self._reader.read(length)
        self._progress(len(data))
        return data
