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
- pull of a *version* that is already cached whole and passes the gate (pin,
  signature policy) is served from the cache without opening the remote: versions
  are immutable. A tag always asks the remote, except with `settings.offline`,
  where it resolves through the version it pointed at when last pulled (with a
  note saying so). Offline, nothing else ever opens a remote.
- pull, push and load hold the version they use against `modelreg cache prune`
  (`modelreg.local.usage`); a successful pull then enforces `cache_max_size`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import (
    AlreadyExists,
    IntegrityError,
    NotFound,
    RegistryError,
    UsageError,
)
from modelreg.hashing import hash_bytes
from modelreg.layout import SIGNATURE_NAME, SUMS_NAME, blob_key, tag_key, version_key
from modelreg.local.cache import Cache
from modelreg.local.materialize import DestStaging, materialize
from modelreg.local.usage import hold_version, holds_released
from modelreg.local.workspace import pin
from modelreg.manifest import FileEntry, Manifest
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref
from modelreg.remote.index import Tag, read_small
from modelreg.repair import GOOD, RepairResult, check_remote_blob, repair_metadata
from modelreg.selection import select_files
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.trust.gate import open_cached_manifest, require_cached_manifest, verify_manifest
from modelreg.trust.policy import SignatureStatus, remember_tag, sign_bundle
from modelreg.upload import upload_blob
from modelreg.yanking import check_cached_yank, enforce_yank, remember_yank

if TYPE_CHECKING:  # imported by the functions that contact a remote: a cached pull does without them
    from modelreg.fallback import Places


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
    restored: list[FileEntry] = field(default_factory=list)
    """Of `skipped`, the blobs gone from the remote by the time the manifest was published, sent again."""


@dataclass
class PullResult:
    manifest: Manifest
    remote: str
    downloaded: list[FileEntry] = field(default_factory=list)
    cached: list[FileEntry] = field(default_factory=list)
    """Blobs already in the cache whose stat fingerprint is unchanged since they were verified."""
    verified_at: dict[str, str] = field(default_factory=dict)
    """For each of `cached`, by sha256: when it was last verified."""
    reverified: list[FileEntry] = field(default_factory=list)
    """Blobs already in the cache that were re-hashed by this pull (changed or no fingerprint)."""
    repaired: list[FileEntry] = field(default_factory=list)
    """Cached blobs found corrupt (deleted and downloaded again by this pull)."""
    dest: Path | None = None
    signature: SignatureStatus | None = None
    notes: list[str] = field(default_factory=list)
    from_cache: bool = False
    """True when the remote was not contacted: the version was cached (see `pull`)."""
    manifest_from: str | None = None
    """The place (of a remote with fallbacks) the manifest was read from; None when from the cache."""
    served_by: dict[str, str] = field(default_factory=dict)
    """{path: place label} for every file whose blob this pull downloaded (`modelreg.fallback`)."""
    selected: list[str] | None = None
    """With --include/--exclude: the paths pulled (None: the whole bundle)."""
    complete: bool = True
    """False after a partial pull that left blobs of the bundle uncached (its manifest is then not
    recorded in the cache, so `load` and the cache-only path never take it for a whole bundle)."""

    def cache_summary(self) -> str:
        """What was said about the blobs already cached, claiming only what was checked and when."""
        since = sorted(self.verified_at.values())
        parts = [f"{len(self.cached)} already cached" + (
            f" (fingerprint unchanged since verified at {since[0]}"
            f"{'' if since[0] == since[-1] else f' to {since[-1]}'})" if since else "")]
        if self.reverified:
            parts.append(f"{len(self.reverified)} cached blob(s) re-verified")
        if self.repaired:
            parts.append(f"{len(self.repaired)} corrupt cached blob(s) replaced")
        return ", ".join(parts)


def unique_blobs(manifest: Manifest) -> list[FileEntry]:
    """One entry per distinct digest (two paths with the same content share a blob)."""
    seen: dict[str, FileEntry] = {}
    for entry in manifest.files:
        seen.setdefault(entry.sha256, entry)
    return list(seen.values())


WAIT_SLICE = 0.2
"""Seconds the calling thread waits on a transfer at a time, so Ctrl-C reaches it promptly."""


def run_all(storage: Storage | Places, func, items: list) -> list:
    """Apply `func` to every item (in parallel when the backend allows) and report every failure.

    The first failure is raised after all items ran, with the others attached as notes.
    An interruption of the calling thread (KeyboardInterrupt, or any exception other than
    a RegistryError) cancels the storage, so transfers in flight stop at their next
    chunk, drops the items not started yet and propagates at once: it does not wait for
    the workers (each cleans up after itself).
    """
    from concurrent.futures import ThreadPoolExecutor, wait

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


@holds_released
def push(settings: Settings, ref: Ref, spec: RemoteSpec, *, sign_key: Path | None = None,
         passphrase: bytes | None = None, reporter: ProgressReporter | None = None,
         repair: bool = False, signature: bytes | None = None) -> PushResult:
    """Publish a locally cached version to `spec` (see module docstring for guarantees).

    With `sign_key`, the bundle is signed (OpenSSF model-signing format) and `model.sig`
    is stored beside the manifest, create-only like it (without a key, `signature` is stored
    instead: an existing model.sig of this manifest). With `repair`, the remote copy is
    verified and mended from the cache instead (`modelreg.repair`; `result.repair`).
    """
    reporter = reporter or SilentProgress()
    require_online(settings, "push to", spec)
    cache = Cache(settings.cache_dir)
    verified = require_cached_manifest(
        settings, cache, ref, fix=f"Create it with 'modelreg ingest {ref.version} --from DIR' or "
                                  f"'modelreg train {ref.version}', or pull it first.")
    manifest, manifest_bytes = verified.manifest, verified.data
    hold_version(cache, manifest, "push")
    signature = sign_bundle(manifest, manifest_bytes, sign_key, passphrase) if sign_key else signature
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
            _check_not_a_tag(storage, ref, spec)
            blobs = unique_blobs(manifest)
            remote_sizes = run_all(storage, lambda e: storage.stat(blob_key(e.sha256)), blobs)
            for entry, size in zip(blobs, remote_sizes):
                (result.skipped if size == entry.size else result.uploaded).append(entry)
            if result.skipped:
                reporter.message(f"{len(result.skipped)} blob(s) already on {spec.label}: not sent again")
            run_all(storage, lambda e: upload_blob(cache, storage, e, reporter), result.uploaded)
            try:
                storage.write(manifest_key, manifest_bytes, create_only=True)
            except AlreadyExists:
                _check_same_version(read_small(storage, manifest_key) or b"", manifest_bytes, ref, spec)
            result.restored = _restore_vanished(cache, storage, result.skipped, reporter)
            remember_yank(cache, ref, spec.url, None)  # just published: nobody has yanked it yet
        if not repair:
            sums_key = version_key(ref.name, ref.version, SUMS_NAME)
            if storage.stat(sums_key) is None:
                storage.write(sums_key, manifest.sha256sums().encode())
            if signature is not None:
                result.signed = publish_signature(storage, ref, signature)
                cache.save_signature(ref, signature)
        pin(settings.workspace, manifest)
        cache.remember_published(ref, spec.url)
        return result
    finally:
        storage.close()


def _restore_vanished(cache: Cache, storage: Storage, reused: list[FileEntry],
                      reporter: ProgressReporter) -> list[FileEntry]:
    """Blobs this push found on the remote and did not send, checked again once its manifest is
    published; any that vanished meanwhile (a `modelreg gc` sweeping an old unreferenced blob while
    this push ran) is uploaded again from the cache, so the new version is whole."""
    sizes = run_all(storage, lambda e: storage.stat(blob_key(e.sha256)), reused)
    vanished = [entry for entry, size in zip(reused, sizes) if size != entry.size]
    for entry in vanished:
        reporter.message(f"{entry.path} ({blob_key(entry.sha256)}) vanished from {storage.url} while this "
                         f"push ran (a gc?); uploading it again")
    run_all(storage, lambda e: upload_blob(cache, storage, e, reporter), vanished)
    return vanished


def _repair(cache: Cache, storage: Storage, ref: Ref, manifest: Manifest, manifest_bytes: bytes,
            signature: bytes | None, manifest_present: bool, reporter: ProgressReporter) -> RepairResult:
    """Verify every blob on the remote, replace the bad ones from the cache, then mend the metadata."""
    blobs = unique_blobs(manifest)
    result = RepairResult(blobs=run_all(storage, lambda e: check_remote_blob(storage, e, reporter), blobs))
    for check in result.repaired:
        reporter.message(f"{check.entry.path} ({blob_key(check.entry.sha256)}) on {storage.url}: "
                         f"{check.detail}; replacing it from the local cache")
    run_all(storage, lambda c: upload_blob(cache, storage, c.entry, reporter), result.repaired)
    repair_metadata(storage, ref, manifest, manifest_bytes, signature, manifest_present, result)
    return result


def publish_signature(storage: Storage, ref: Ref, signature: bytes) -> bool:
    """Store model.sig create-only; False when the version already carries a signature (kept)."""
    try:
        storage.write(version_key(ref.name, ref.version, SIGNATURE_NAME), signature, create_only=True)
        return True
    except AlreadyExists:
        return False


def _check_not_a_tag(storage: Storage, ref: Ref, spec: RemoteSpec) -> None:
    """Versions and tags share one namespace per model: a version may not take a tag's name."""
    if storage.stat(tag_key(ref.name, ref.version)) is not None:
        raise AlreadyExists(
            f"{ref} is a tag on {spec.label}; a version cannot share its name (a pull of {ref} "
            f"would no longer be checked as a tag). Nothing was pushed: re-create the bundle under "
            f"a version name that is not a tag (e.g. 'modelreg ingest v10 --from DIR').")


def _check_same_version(remote_bytes: bytes, manifest_bytes: bytes, ref: Ref, spec: RemoteSpec) -> None:
    remote_digest, ours = hash_bytes(remote_bytes), hash_bytes(manifest_bytes)
    if remote_digest != ours:
        raise AlreadyExists(
            f"{ref} already exists on {spec.label} with different content (manifest "
            f"{remote_digest[:12]}, yours {ours[:12]}). Versions are immutable: push "
            f"under a new version name.")


@holds_released
def pull(settings: Settings, ref: Ref, spec: RemoteSpec, *, dest: Path | None = None,
         allow_downgrade: bool = False, allow_yanked: bool = False,
         reporter: ProgressReporter | None = None,
         include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> PullResult:
    """Fetch a version (or tag) into the verified cache, and optionally into `dest`.

    Before any blob is transferred, the manifest is checked against the workspace pin,
    its signature against the trusted keys, and a tag against the version it last
    pointed at (refusing a move back to an older version unless `allow_downgrade`, or a
    trusted-signed rollback: `modelreg.tag_moves`), and a yanked version is refused unless
    `allow_yanked` (`modelreg.yanking`). A remote with fallbacks is read place by place
    (`modelreg.fallback`). With `include`/`exclude` (`modelreg.selection`) only the
    matching files are fetched and written to `dest`; the manifest is recorded in the
    cache only once every blob is.
    """
    reporter = reporter or SilentProgress()
    cache = Cache(settings.cache_dir)
    cached = pull_from_cache(settings, cache, ref, spec, dest=dest, reporter=reporter, allow_yanked=allow_yanked,
                             include=include, exclude=exclude)
    if cached is not None:
        return cached
    from modelreg.download import Tee
    from modelreg.fallback import Places, download_from_places, fetch_manifest_from, report_sources
    from modelreg.tag_moves import check_tag_downgrade

    places = Places(spec)
    staging: DestStaging | None = None
    materialized = False
    try:
        sourced = fetch_manifest_from(settings, places, ref)
        manifest, manifest_bytes, signature = sourced.manifest, sourced.data, sourced.signature
        version_ref = Ref(manifest.name, manifest.version)
        source = places.specs[sourced.index]
        verified = verify_manifest(settings, version_ref, manifest_bytes, signature, source.label)
        hold_version(cache, manifest, "pull")
        result = PullResult(manifest=manifest, remote=spec.label, signature=verified.status,
                            manifest_from=source.label, notes=sourced.notes)
        selected = select_files(manifest, include, exclude)
        is_tag = ref.version != manifest.version
        result.notes += enforce_yank(cache, version_ref, source, sourced.yank, allow_yanked, ref if is_tag else None)
        if is_tag:
            note = check_tag_downgrade(settings, cache, places.open(sourced.index), ref, manifest, manifest_bytes,
                                       allow_downgrade)
            result.notes += [note] if note else []
        wanted = {entry.sha256 for entry in selected or manifest.files}
        missing = [entry for entry in unique_blobs(manifest)
                   if entry.sha256 in wanted and not _check_cached(cache, entry, result, reporter)]
        staging = DestStaging(manifest, dest).open() if dest is not None and missing else None
        tees = {entry.sha256: Tee(staging.tee_path(entry.sha256)) for entry in missing} if staging else {}
        outcomes = run_all(places, lambda e: download_from_places(places, cache, e, reporter, version_ref,
                                                                  tees.get(e.sha256)), missing)
        if staging is not None:
            staging.prestaged.update((sha, tee.path) for sha, tee in tees.items() if tee.verified)
        for entry, outcome in zip(missing, outcomes):
            (result.downloaded if outcome.downloaded else result.reverified).append(entry)
        result.served_by, notes = report_sources(places, ref, sourced, dict(zip(missing, outcomes)))
        result.notes += notes
        places.close()
        result.selected = None if selected is None else [entry.path for entry in selected]
        result.complete = selected is None or _all_blobs_verified(cache, manifest)
        if result.complete:
            cache.save_signature(version_ref, signature)
            cache.save_manifest_bytes(version_ref, manifest_bytes)
            cache.remember_published(version_ref, source.url)
        if is_tag:
            remember_tag(cache, ref, manifest, manifest_bytes)
        if dest is not None:
            result.dest = materialize(cache, manifest, manifest_bytes, dest, signature, files=selected,
                                      staging=staging)
            materialized = True
    finally:
        places.close()
        if staging is not None:
            staging.close(kept=materialized)
    result.notes += _enforce_cache_limit(settings, manifest)
    return result


@holds_released
def pull_from_cache(settings: Settings, cache: Cache, ref: Ref, spec: RemoteSpec, *,
                    dest: Path | None = None, reporter: ProgressReporter | None = None,
                    allow_yanked: bool = False,
                    include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> PullResult | None:
    """A pull served by the cache alone, or None when the remote must be asked.

    `ref` is served when it names a version whose manifest and every blob are cached
    and which passes the gate now (pin, signature policy); offline, a tag is served
    through the version it resolved to when last pulled. Offline, anything else is
    NotFound listing what the cache holds. Each blob counts as cached only when its
    stat fingerprint is unchanged since it was verified, or it re-hashes correctly
    now (`_check_cached`); a corrupt one is deleted and the remote is asked after all.
    A yanked version is refused (`modelreg.yanking.check_cached_yank`: at most one small
    read of the remote, once per `yank_check_interval`). `dest` gets bytes re-hashed
    while they are copied (only the files `include`/`exclude` select).
    """
    reporter = reporter or SilentProgress()
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
    if not settings.offline and (verified is None or not _servable(cache, verified, spec)):
        return None
    if verified is None:
        raise NotFound(f"{ref} is not in the local cache {cache.root}, and --offline (or "
                       f"MODELREG_OFFLINE) forbids asking {spec.label}. Cached: "
                       f"{', '.join(cached_versions(cache)) or 'nothing'}. Pull it once online.")
    hold_version(cache, verified.manifest, "pull")
    notes += check_cached_yank(settings, cache, verified.ref, spec, allow_yanked,
                               ref if ref != verified.ref else None)
    selected = select_files(verified.manifest, include, exclude)
    result = PullResult(manifest=verified.manifest, remote=spec.label, signature=verified.status,
                        notes=notes, from_cache=True,
                        selected=None if selected is None else [entry.path for entry in selected])
    damaged = [entry for entry in unique_blobs(verified.manifest)
               if not _check_cached(cache, entry, result, reporter)]
    if damaged:
        raise NotFound(f"{', '.join(entry.path for entry in damaged)} of {verified.ref} is missing from "
                       f"or was damaged in the local cache {cache.root} (a damaged copy was removed), "
                       f"and --offline (or MODELREG_OFFLINE) forbids fetching it from {spec.label}. "
                       f"Pull it again online.")
    if dest is not None:
        result.dest = materialize(cache, verified.manifest, verified.data, dest, verified.signature,
                                  files=selected)
    result.notes += _enforce_cache_limit(settings, verified.manifest)
    return result


def _enforce_cache_limit(settings: Settings, manifest: Manifest) -> list[str]:
    """`modelreg.local.prune.enforce_cache_limit`, imported only when a limit is configured."""
    if settings.cache_max_size is None:
        return []
    from modelreg.local.prune import enforce_cache_limit

    return enforce_cache_limit(settings, manifest)


def _servable(cache: Cache, verified, spec: RemoteSpec) -> bool:
    """Online, a cached version is served without the remote only when that remote is known to
    hold it (a local, unpublished version may share its name with a tag there) and every blob's
    fingerprint is unchanged since it was verified (anything else goes through a full pull,
    which re-verifies and repairs)."""
    if not {place.url for place in spec.places} & cache.published_on(verified.ref):
        return False
    return _all_blobs_verified(cache, verified.manifest)


def _all_blobs_verified(cache: Cache, manifest: Manifest) -> bool:
    """Every blob of `manifest` is cached and unchanged since it was verified (not re-hashed)."""
    return all(cache.has_blob(entry) and cache.verified_fingerprint(entry) is not None
               for entry in unique_blobs(manifest))


def cached_versions(cache: Cache) -> list[str]:
    """`name:version` of every manifest in the cache, sorted (for messages)."""
    root = cache.root / "manifests"
    return sorted(f"{path.parent.name}:{path.stem}" for path in root.glob("*/*.json"))


def require_online(settings: Settings, action: str, spec: RemoteSpec) -> None:
    """UsageError when `settings.offline` forbids the connection `action` needs."""
    if settings.offline:
        raise UsageError(f"Cannot {action} {spec.label} with --offline (or MODELREG_OFFLINE=1): it "
                         f"needs the remote. Drop --offline or unset MODELREG_OFFLINE.")


def _check_cached(cache: Cache, entry: FileEntry, result: PullResult, reporter: ProgressReporter) -> bool:
    """True when the cached blob of `entry` is good: unchanged since verified, or re-hashed now.

    A corrupt cached blob is deleted (by `Cache.verify_blob`) and recorded in
    `result.repaired`, so the same pull downloads it again.
    """
    if not cache.has_blob(entry):
        return False
    verified_at = cache.verified_fingerprint(entry)
    if verified_at is not None:
        result.cached.append(entry)
        result.verified_at[entry.sha256] = verified_at
        return True
    try:
        cache.verify_blob(entry, reporter.task(f"re-verify {entry.path}", entry.size))
    except IntegrityError:
        result.repaired.append(entry)
        result.notes.append(f"the cached copy of {entry.path} was corrupt: deleted and downloaded again")
        return False
    result.reverified.append(entry)
    return True


def tag(settings: Settings, ref: Ref, tag_name: str, spec: RemoteSpec) -> Tag:
    """Point `tag_name` at the version `ref` names (a version or another tag) on the remote.

    The move is recorded in the tag's history first (`modelreg.tag_moves.move_tag`).
    """
    from modelreg.tag_moves import move_tag

    return move_tag(settings, ref, tag_name, spec).tag
