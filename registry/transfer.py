"""Push and pull: the orchestration written once for every backend.

Guarantees:
- push uploads only blobs the remote lacks (same key, same size), verifies each
  local blob before sending it, and publishes the manifest last and create-only:
  a version is invisible until all its blobs are there, and an existing version
  is never replaced (pushing the identical bundle again is a no-op).
- push with `repair=True` re-reads every blob on the remote, hashing it, replaces
  missing or damaged ones and restores missing metadata (see `modelreg.repair`).
- pull fetches and validates the manifest (checking the workspace pin), then
  downloads missing blobs through a hashing sink into a resumable `.partial`
  file that is renamed into the cache only when size and sha256 match. Files
  are materialized into `--dest` only after every blob verified.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import AlreadyExists, IntegrityError, LocalIOError, NotFound, RegistryError, RemoteError
from modelreg.hashing import CHUNK_SIZE, HashingSink, hash_bytes
from modelreg.layout import SIGNATURE_NAME, SUMS_NAME, blob_key, version_key
from modelreg.local.cache import Cache
from modelreg.local.materialize import materialize
from modelreg.local.workspace import pin
from modelreg.manifest import FileEntry, Manifest
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref
from modelreg.remote.index import Tag, fetch_manifest, read_small, write_tag
from modelreg.repair import GOOD, RepairResult, check_remote_blob, repair_command, repair_metadata
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.trust.gate import require_cached_manifest, verify_manifest
from modelreg.trust.policy import SignatureStatus, check_tag_not_downgraded, remember_tag, sign_bundle


@dataclass
class PushResult:
    manifest: Manifest
    remote: str
    uploaded: list[FileEntry] = field(default_factory=list)
    skipped: list[FileEntry] = field(default_factory=list)
    already_published: bool = False
    signed: bool = False
    repair: RepairResult | None = None
    """With `push(repair=True)`: every blob checked and what was repaired."""


@dataclass
class PullResult:
    manifest: Manifest
    remote: str
    downloaded: list[FileEntry] = field(default_factory=list)
    cached: list[FileEntry] = field(default_factory=list)
    dest: Path | None = None
    signature: SignatureStatus | None = None
    notes: list[str] = field(default_factory=list)


def unique_blobs(manifest: Manifest) -> list[FileEntry]:
    """One entry per distinct digest (two paths with the same content share a blob)."""
    seen: dict[str, FileEntry] = {}
    for entry in manifest.files:
        seen.setdefault(entry.sha256, entry)
    return list(seen.values())


WAIT_SLICE = 0.2
"""Seconds the calling thread waits on a transfer at a time, so Ctrl-C reaches it promptly."""


def run_all(storage: Storage, func, items: list) -> list:
    """Apply `func` to every item (in parallel when the backend allows) and report every failure.

    The first failure is raised after all items ran, with the others attached as notes.
    An interruption of the calling thread (KeyboardInterrupt, or any exception other than
    a RegistryError) cancels the storage, so transfers in flight stop at their next
    chunk, drops the items not started yet and propagates at once: it does not wait for
    the workers (each cleans up after itself).
    """
    results, failures = [], []
    pool = ThreadPoolExecutor(max_workers=max(1, min(storage.parallel_transfers, len(items) or 1)),
                              thread_name_prefix="modelreg-transfer")
    try:
        futures = [pool.submit(func, item) for item in items]
        for future in futures:
            while not wait([future], timeout=WAIT_SLICE).done:
                pass
            try:
                results.append(future.result())
            except RegistryError as exc:
                failures.append(exc)
    except BaseException:
        storage.cancel()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if failures:
        first = failures[0]
        for other in failures[1:]:
            first.add_note(f"Also: {other}")
        raise first
    return results


def push(settings: Settings, ref: Ref, spec: RemoteSpec, *, sign_key: Path | None = None,
         passphrase: bytes | None = None, reporter: ProgressReporter | None = None,
         repair: bool = False) -> PushResult:
    """Publish a locally cached version to `spec` (see module docstring for guarantees).

    With `sign_key`, the bundle is signed (OpenSSF model-signing format) and `model.sig`
    is stored beside the manifest, create-only like it. With `repair`, the remote copy is
    verified and mended from the cache instead (`modelreg.repair`; `result.repair`).
    """
    reporter = reporter or SilentProgress()
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
        if repair:
            if existing is not None:
                _check_same_version(existing, manifest_bytes, ref, spec)
            result.repair = _repair(cache, storage, ref, manifest, manifest_bytes,
                                    signature or cache.read_signature(ref), existing is not None, reporter)
            if result.repair.metadata["manifest.json"] == GOOD and existing is None:
                _check_same_version(read_small(storage, manifest_key) or b"", manifest_bytes, ref, spec)
            result.uploaded = [check.entry for check in result.repair.repaired]
            result.signed = signature is not None and result.repair.metadata.get(SIGNATURE_NAME) == "restored"
            if signature is not None:
                cache.save_signature(ref, signature)
        elif existing is not None:
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
        if not repair:
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


def _repair(cache: Cache, storage: Storage, ref: Ref, manifest: Manifest, manifest_bytes: bytes,
            signature: bytes | None, manifest_present: bool, reporter: ProgressReporter) -> RepairResult:
    """Verify every blob on the remote, replace the bad ones from the cache, then mend the metadata."""
    blobs = unique_blobs(manifest)
    result = RepairResult(blobs=run_all(storage, lambda e: check_remote_blob(storage, e, reporter), blobs))
    for check in result.repaired:
        reporter.message(f"{check.entry.path} ({blob_key(check.entry.sha256)}) on {storage.url}: "
                         f"{check.detail}; replacing it from the local cache")
    run_all(storage, lambda c: _upload_blob(cache, storage, c.entry, reporter), result.repaired)
    repair_metadata(storage, ref, manifest, manifest_bytes, signature, manifest_present, result)
    return result


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


STALE_UPLOAD_AGE = 3600.0
"""Seconds without a write after which an upload's leftovers (temp file, unfinished multipart
upload) count as abandoned. Uploads take no lock, so a younger one may be another push of
the same blob in progress: removing it would fail that push."""


def _upload_blob(cache: Cache, storage: Storage, entry: FileEntry, reporter: ProgressReporter) -> None:
    path = cache.verify_blob(entry)  # the cache is untrusted: never upload unverified bytes
    try:
        removed = storage.remove_stale_uploads(blob_key(entry.sha256), STALE_UPLOAD_AGE)
    except RemoteError as exc:  # clean-up is a courtesy: the upload itself may still work
        reporter.message(f"Could not clean up old partial uploads of {entry.path}: {exc}")
    else:
        if removed:
            reporter.message(f"Removed {removed} abandoned partial upload(s) of {entry.path} "
                             f"from {storage.url}")
    storage.write(blob_key(entry.sha256), path, sha256=entry.sha256,
                  progress=reporter.task(f"push {entry.path}", entry.size))


def pull(settings: Settings, ref: Ref, spec: RemoteSpec, *, dest: Path | None = None,
         allow_downgrade: bool = False, reporter: ProgressReporter | None = None) -> PullResult:
    """Fetch a version (or tag) into the verified cache, and optionally into `dest`.

    Before any blob is transferred, the manifest is checked against the workspace pin,
    its signature against the trusted keys, and a tag against the version it last
    pointed at (refusing a move back to an older version unless `allow_downgrade`).
    """
    reporter = reporter or SilentProgress()
    cache = Cache(settings.cache_dir)
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
        fetched = run_all(storage, lambda e: download_blob(cache, storage, e, reporter, version_ref), missing)
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


def download_blob(cache: Cache, storage: Storage, entry: FileEntry, reporter: ProgressReporter,
                  ref: Ref | None = None) -> bool:
    """Bring one blob into the cache, verified; returns False when another process already did.

    `ref` (the version being pulled) is named in the repair advice of errors."""
    repair_advice = repair_command(ref or "NAME:VERSION")
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
                    f"replaced or damaged: repair it from a good copy with '{repair_advice}'.",
                    path=entry.path, expected=entry.sha256, actual="(oversized)",
                    source="remote") from exc
            except NotFound as exc:
                raise NotFound(f"The blob of {entry.path} ({blob_key(entry.sha256)}) is missing on "
                               f"{storage.url}. Repair the remote from a good copy with "
                               f"'{repair_advice}'.") from exc
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
