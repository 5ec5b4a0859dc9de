"""Push and pull: the orchestration written once for every backend.

Guarantees:
- push uploads only blobs the remote lacks (same key, same size), verifies each
  local blob before sending it, and publishes the manifest last and create-only:
  a version is invisible until all its blobs are there, and an existing version
  is never replaced (pushing the identical bundle again is a no-op).
- pull fetches and validates the manifest (checking the workspace pin), then
  downloads missing blobs through a hashing sink into a resumable `.partial`
  file that is renamed into the cache only when size and sha256 match. Files
  are materialized into `--dest` only after every blob verified.
- pull of a *version* that is already cached whole and passes the gate (pin,
  signature policy) is served from the cache without opening the remote: versions
  are immutable. A tag always asks the remote, except with `settings.offline`,
  where it resolves through the version it pointed at when last pulled (with a
  note saying so). Offline, nothing else ever opens a remote.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import (
    AlreadyExists,
    DigestMismatch,
    IntegrityError,
    LocalIOError,
    MissingFile,
    NotFound,
    RegistryError,
    UsageError,
)
from modelreg.hashing import CHUNK_SIZE, HashingReader, HashingSink, hash_bytes
from modelreg.layout import SIGNATURE_NAME, SUMS_NAME, blob_key, version_key
from modelreg.local.cache import Cache
from modelreg.local.materialize import materialize
from modelreg.local.workspace import pin
from modelreg.manifest import FileEntry, Manifest
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref
from modelreg.remote.index import Tag, fetch_manifest, read_small, write_tag
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.trust.gate import open_cached_manifest, require_cached_manifest, verify_manifest
from modelreg.trust.policy import SignatureStatus, check_tag_not_downgraded, remember_tag, sign_bundle


@dataclass
class PushResult:
    manifest: Manifest
    remote: str
    uploaded: list[FileEntry] = field(default_factory=list)
    skipped: list[FileEntry] = field(default_factory=list)
    already_published: bool = False
    signed: bool = False


@dataclass
class PullResult:
    manifest: Manifest
    remote: str
    downloaded: list[FileEntry] = field(default_factory=list)
    cached: list[FileEntry] = field(default_factory=list)
    dest: Path | None = None
    signature: SignatureStatus | None = None
    notes: list[str] = field(default_factory=list)
    from_cache: bool = False
    """True when the remote was not contacted: the version was cached (see `pull`)."""


def unique_blobs(manifest: Manifest) -> list[FileEntry]:
    """One entry per distinct digest (two paths with the same content share a blob)."""
    seen: dict[str, FileEntry] = {}
    for entry in manifest.files:
        seen.setdefault(entry.sha256, entry)
    return list(seen.values())


def run_all(storage: Storage, func, items: list) -> list:
    """Apply `func` to every item (in parallel when the backend allows) and report every failure.

    The first failure is raised after all items ran, with the others attached as notes.
    """
    results, failures = [], []
    with ThreadPoolExecutor(max_workers=max(1, min(storage.parallel_transfers, len(items) or 1))) as pool:
        futures = [pool.submit(func, item) for item in items]
        for future in futures:
            try:
                results.append(future.result())
            except RegistryError as exc:
                failures.append(exc)
    if failures:
        first = failures[0]
        for other in failures[1:]:
            first.add_note(f"Also: {other}")
        raise first
    return results


def push(settings: Settings, ref: Ref, spec: RemoteSpec, *, sign_key: Path | None = None,
         passphrase: bytes | None = None, reporter: ProgressReporter | None = None) -> PushResult:
    """Publish a locally cached version to `spec` (see module docstring for guarantees).

    With `sign_key`, the bundle is signed (OpenSSF model-signing format) and `model.sig`
    is stored beside the manifest, create-only like it.
    """
    reporter = reporter or SilentProgress()
    require_online(settings, "push to", spec)
    cache = Cache(settings.cache_dir)
    verified = require_cached_manifest(
        settings, cache, ref, fix=f"Create it with 'modelreg ingest {ref.version} --from DIR' or "
                                  f"'modelreg train {ref.version}', or pull it first.")
    manifest, manifest_bytes = verified.manifest, verified.data
    signature = sign_bundle(manifest, manifest_bytes, sign_key, passphrase) if sign_key else None
    storage = open_storage(spec)
    try:
        result = PushResult(manifest=manifest, remote=spec.label)
        manifest_key = version_key(ref.name, ref.version)
        existing = read_small(storage, manifest_key)
        if existing is not None:
            _check_same_version(existing, manifest_bytes, ref, spec)
            result.already_published = True
        else:
            blobs = unique_blobs(manifest)
            remote_sizes = run_all(storage, lambda e: storage.stat(blob_key(e.sha256)), blobs)
            for entry, size in zip(blobs, remote_sizes):
                (result.skipped if size == entry.size else result.uploaded).append(entry)
            if result.skipped:
                reporter.message(f"{len(result.skipped)} blob(s) already on {spec.label}: not sent again")
            run_all(storage, lambda e: _upload_blob(cache, storage, e, reporter), result.uploaded)
            try:
                storage.write(manifest_key, manifest_bytes, create_only=True)
            except AlreadyExists:
                _check_same_version(read_small(storage, manifest_key) or b"", manifest_bytes, ref, spec)
        sums_key = version_key(ref.name, ref.version, SUMS_NAME)
        if storage.stat(sums_key) is None:
            storage.write(sums_key, manifest.sha256sums().encode())
        if signature is not None:
            result.signed = _publish_signature(storage, ref, signature)
            cache.save_signature(ref, signature)
        pin(settings.workspace, manifest)
        return result
    finally:
        storage.close()


def _publish_signature(storage: Storage, ref: Ref, signature: bytes) -> bool:
    """Store model.sig create-only; False when the version already carries a signature (kept)."""
    try:
        storage.write(version_key(ref.name, ref.version, SIGNATURE_NAME), signature, create_only=True)
        return True
    except AlreadyExists:
        return False


def _check_same_version(remote_bytes: bytes, manifest_bytes: bytes, ref: Ref, spec: RemoteSpec) -> None:
    remote_digest, ours = hash_bytes(remote_bytes), hash_bytes(manifest_bytes)
    if remote_digest != ours:
        raise AlreadyExists(
            f"{ref} already exists on {spec.label} with different content (manifest "
            f"{remote_digest[:12]}, yours {ours[:12]}). Versions are immutable: push "
            f"under a new version name.")


def _upload_blob(cache: Cache, storage: Storage, entry: FileEntry, reporter: ProgressReporter) -> None:
    """Upload a cached blob, hashing the very bytes sent (the cache is untrusted).

    The `HashingReader` refuses the read that completes a blob whose digest differs,
    so the backend fails before the blob is stored and the manifest is never published.
    The blob is read once: there is no separate verification pass.
    """
    path = cache.blob_path(entry.sha256)

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


def pull(settings: Settings, ref: Ref, spec: RemoteSpec, *, dest: Path | None = None,
         allow_downgrade: bool = False, reporter: ProgressReporter | None = None) -> PullResult:
    """Fetch a version (or tag) into the verified cache, and optionally into `dest`.

    Before any blob is transferred, the manifest is checked against the workspace pin,
    its signature against the trusted keys, and a tag against the version it last
    pointed at (refusing a move back to an older version unless `allow_downgrade`).
    """
    reporter = reporter or SilentProgress()
    cache = Cache(settings.cache_dir)
    cached = pull_from_cache(settings, cache, ref, spec, dest=dest)
    if cached is not None:
        return cached
    storage = open_storage(spec)
    try:
        manifest, manifest_bytes = fetch_manifest(storage, ref)
        version_ref = Ref(manifest.name, manifest.version)
        signature = read_small(storage, version_key(manifest.name, manifest.version, SIGNATURE_NAME))
        verified = verify_manifest(settings, version_ref, manifest_bytes, signature, spec.label)
        result = PullResult(manifest=manifest, remote=spec.label, signature=verified.status)
        is_tag = ref.version != manifest.version
        if is_tag:
            note = check_tag_not_downgraded(cache, ref, manifest, allow_downgrade)
            result.notes += [note] if note else []
        missing: list[FileEntry] = []
        for entry in unique_blobs(manifest):
            (result.cached if cache.has_blob(entry) else missing).append(entry)
        fetched = run_all(storage, lambda e: download_blob(cache, storage, e, reporter), missing)
        for entry, was_downloaded in zip(missing, fetched):
            (result.downloaded if was_downloaded else result.cached).append(entry)
    finally:
        storage.close()
    cache.save_signature(version_ref, signature)
    cache.save_manifest_bytes(version_ref, manifest_bytes)
    if is_tag:
        remember_tag(cache, ref, manifest, manifest_bytes)
    if dest is not None:
        result.dest = materialize(cache, manifest, manifest_bytes, dest, signature)
    return result


def pull_from_cache(settings: Settings, cache: Cache, ref: Ref, spec: RemoteSpec, *,
                    dest: Path | None = None) -> PullResult | None:
    """A pull served by the cache alone, or None when the remote must be asked.

    `ref` is served when it names a version whose manifest and every blob are cached
    and which passes the gate now (pin, signature policy); offline, a tag is served
    through the version it resolved to when last pulled. Offline, anything else is
    NotFound listing what the cache holds. Blobs are checked by size here, like any
    cached blob a pull reuses; `dest` gets bytes re-hashed while they are copied.
    """
    notes = []
    version_ref, expected_digest = ref, None
    if cache.read_manifest_bytes(ref) is None and settings.offline:
        seen = cache.read_tag_seen(ref)
        if seen is not None:
            version_ref, expected_digest = Ref(ref.name, seen["version"]), seen["manifest_sha256"]
            notes.append(f"--offline: tag {ref} resolved to {version_ref.version} (created "
                         f"{seen['created']}), the version it pointed at when last pulled; the remote "
                         f"was not asked whether it moved since.")
    try:
        verified = open_cached_manifest(settings, cache, version_ref)
    except RegistryError:
        if settings.offline:
            raise
        return None  # e.g. a signature now required: the remote may have one the cache lacks
    if verified is not None and expected_digest and hash_bytes(verified.data) != expected_digest:
        verified = None  # the cached manifest is not the one the tag pointed at
    if verified is None or not all(cache.has_blob(e) for e in unique_blobs(verified.manifest)):
        if settings.offline:
            raise NotFound(f"{ref} is not in the local cache {cache.root}, and --offline (or "
                           f"MODELREG_OFFLINE) forbids asking {spec.label}. Cached: "
                           f"{', '.join(cached_versions(cache)) or 'nothing'}. Pull it once online.")
        return None
    result = PullResult(manifest=verified.manifest, remote=spec.label, signature=verified.status,
                        cached=unique_blobs(verified.manifest), notes=notes, from_cache=True)
    if dest is not None:
        result.dest = materialize(cache, verified.manifest, verified.data, dest, verified.signature)
    return result


def cached_versions(cache: Cache) -> list[str]:
    """`name:version` of every manifest in the cache, sorted (for messages)."""
    root = cache.root / "manifests"
    return sorted(f"{path.parent.name}:{path.stem}" for path in root.glob("*/*.json"))


def require_online(settings: Settings, action: str, spec: RemoteSpec) -> None:
    """UsageError when `settings.offline` forbids the connection `action` needs."""
    if settings.offline:
        raise UsageError(f"Cannot {action} {spec.label} with --offline (or MODELREG_OFFLINE=1): it "
                         f"needs the remote. Drop --offline or unset MODELREG_OFFLINE.")


def download_blob(cache: Cache, storage: Storage, entry: FileEntry, reporter: ProgressReporter) -> bool:
    """Bring one blob into the cache, verified; returns False when another process already did."""
    lock = cache.blob_lock(entry.sha256)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        reporter.message(f"waiting for another modelreg process that is downloading {entry.path}")
        lock.acquire()
    try:
        if cache.has_blob(entry):
            return False
        partial = cache.open_partial(entry)
        digest, offset = _resume_state(partial, entry)
        progress = reporter.task(f"pull {entry.path}", entry.size)
        if offset:
            progress(offset)
        with open(partial, "ab") as out:
            sink = HashingSink(out, limit=entry.size, digest=digest, size=offset, progress=progress)
            try:
                storage.read(blob_key(entry.sha256), sink, offset=offset)
            except OverflowError as exc:
                partial.unlink(missing_ok=True)
                raise IntegrityError(
                    f"The blob for {entry.path} on {storage.url} is larger than the {entry.size} bytes "
                    f"its manifest declares; the download was stopped and deleted. The remote copy was "
                    f"replaced or damaged: re-push the version from a good copy.",
                    path=entry.path, expected=entry.sha256, actual="(oversized)",
                    source="remote") from exc
            except NotFound as exc:
                raise NotFound(f"The blob of {entry.path} ({blob_key(entry.sha256)}) is missing on "
                               f"{storage.url}. Re-push the version ('modelreg push') to repair "
                               f"the remote.") from exc
            except OSError as exc:
                if isinstance(exc, RegistryError):
                    raise
                raise LocalIOError(
                    f"Cannot write the download of {entry.path} to {partial} ({exc.strerror or exc}). "
                    f"Free disk space or point MODELREG_CACHE at a larger disk, then pull again: the "
                    f"{sink.size} bytes already received are kept and the download resumes.") from exc
        cache.publish_download(partial, entry, sink.hexdigest(), sink.size, storage.url)
        return True
    finally:
        lock.release()


def _resume_state(partial: Path, entry: FileEntry):
    """Hash the bytes an interrupted download left behind, so the transfer can continue after them."""
    digest = hashlib.sha256()
    try:
        offset = partial.stat().st_size
    except FileNotFoundError:
        return digest, 0
    if offset >= entry.size:
        partial.unlink()
        return digest, 0
    with open(partial, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest, offset


def tag(settings: Settings, ref: Ref, tag_name: str, spec: RemoteSpec) -> Tag:
    """Point `tag_name` at the version `ref` names (a version or another tag) on the remote."""
    require_online(settings, "tag on", spec)
    storage = open_storage(spec)
    try:
        manifest, data = fetch_manifest(storage, ref)
        new_tag = Tag(name=manifest.name, tag=tag_name, version=manifest.version,
                      manifest_sha256=hash_bytes(data))
        if storage.stat(version_key(manifest.name, tag_name)) is not None:
            raise AlreadyExists(f"{manifest.name}:{tag_name} is a version on {spec.label}; a tag "
                                f"cannot share its name. Pick another tag name.")
        write_tag(storage, new_tag)
        return new_tag
    finally:
        storage.close()
