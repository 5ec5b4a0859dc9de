"""What a registry holds: versions with their tags, sizes and digests (for `list` and `show`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import NotFound, RegistryError, UsageError
from modelreg.hashing import hash_bytes
from modelreg.layout import SIGNATURE_NAME, version_key
from modelreg.local.cache import Cache
from modelreg.manifest import Manifest
from modelreg.refs import Ref
from modelreg.remote.index import fetch_manifest, list_tags, read_small
from modelreg.remote.scan import scan_remote
from modelreg.remote.yanks import Yank, read_yank
from modelreg.storage import open_storage
from modelreg.trust.policy import check_bundle_signature


@dataclass
class VersionInfo:
    manifest: Manifest
    digest: str
    tags: list[str] = field(default_factory=list)
    location: str = ""
    cached: bool = False
    signature: str = "unsigned"
    yanked: Yank | None = None

    def to_dict(self) -> dict:
        return {"name": self.manifest.name, "version": self.manifest.version, "digest": self.digest,
                "tags": self.tags, "location": self.location, "cached": self.cached,
                "signature": self.signature, "yanked": self.yanked.to_dict() if self.yanked else None,
                "manifest": self.manifest.to_dict()}


@dataclass(frozen=True)
class BrokenEntry:
    """A tag or version `list` could not read: its key on the remote and why (one paragraph)."""

    key: str
    error: str

    def to_dict(self) -> dict:
        return {"key": self.key, "error": self.error}


@dataclass
class Listing:
    """What `list` found: every readable version, and every entry it had to skip."""

    versions: list[VersionInfo] = field(default_factory=list)
    broken: list[BrokenEntry] = field(default_factory=list)


def list_remote(settings: Settings, spec: RemoteSpec, name: str | None = None) -> Listing:
    """Every version on the remote (of one model name, or all), with its tags.

    One malformed tag or manifest does not hide the rest: it is reported in
    `Listing.broken` and the listing goes on. Failures to reach the remote still raise.
    Manifests and tags read before are reused while the remote's listing shows them
    unchanged; the others are read in parallel (`modelreg.remote.scan`).
    """
    if settings.offline:
        raise UsageError(f"'modelreg list' reads {spec.label}, which --offline (or MODELREG_OFFLINE=1) "
                         f"forbids. 'modelreg cache list' shows what the local cache holds; 'modelreg "
                         f"show REF --offline' shows one cached version.")
    cache = Cache(settings.cache_dir)
    with open_storage(spec) as storage:
        scan = scan_remote(storage, settings.cache_dir, name)
        yanks = {ref: read_yank(settings, storage, ref) for ref in scan.yanked}
    cached_files: dict[str, frozenset[str]] = {}

    def cached(ref: Ref, data: bytes) -> bool:
        """The local cache holds this very manifest (a listing of each model's directory first: of 10,000
        versions, most are usually not cached, and opening each missing file took ~0.2 s of a 2 s list)."""
        if ref.name not in cached_files:
            cached_files[ref.name] = cache.manifest_file_names(ref.name)
        return f"{ref.version}.json" in cached_files[ref.name] and cache.read_manifest_bytes(ref) == data

    versions = []
    for found in scan.versions:
        ref = Ref(found.manifest.name, found.manifest.version)
        versions.append(VersionInfo(manifest=found.manifest, digest=found.digest, location=spec.label,
                                    tags=found.tags, cached=cached(ref, found.data), yanked=yanks.get(ref)))
    return Listing(versions=versions, broken=[BrokenEntry(key, error) for key, error in scan.broken])


def describe(settings: Settings, ref: Ref, spec: RemoteSpec) -> VersionInfo:
    """One version (or tag) from the remote; a version only in the local cache is shown from there."""
    cache = Cache(settings.cache_dir)
    if settings.offline:
        return describe_cached(settings, cache, ref, spec)
    storage = open_storage(spec)
    try:
        try:
            manifest, data = fetch_manifest(storage, ref)
        except NotFound:
            if cache.read_manifest_bytes(ref) is None:
                raise
            return describe_cached(settings, cache, ref, spec)
        digest = hashlib.sha256(data).hexdigest()
        tags = sorted(t.tag for t in list_tags(storage, manifest.name, broken=[])
                      if t.version == manifest.version and t.manifest_sha256 == digest)
        cached = cache.read_manifest_bytes(Ref(manifest.name, manifest.version)) == data
        signature = read_small(storage, version_key(manifest.name, manifest.version, SIGNATURE_NAME))
        return VersionInfo(manifest=manifest, digest=digest, tags=tags, location=spec.label, cached=cached,
                           signature=signature_summary(settings, manifest, data, signature),
                           yanked=read_yank(settings, storage, Ref(manifest.name, manifest.version)))
    finally:
        storage.close()


def describe_cached(settings: Settings, cache: Cache, ref: Ref, spec: RemoteSpec) -> VersionInfo:
    """A version (or, offline, a tag through the version it last pointed at) from the cache alone."""
    version_ref, data = ref, cache.read_manifest_bytes(ref)
    location = "local cache only (not pushed)"
    if settings.offline:
        location = f"local cache (--offline: {spec.label} not asked)"
        seen = cache.read_tag_seen(ref) if data is None else None
        if seen is not None:
            version_ref = Ref(ref.name, seen["version"])
            location += f"; tag {ref.version} as last seen {seen['created']}"
            data = cache.read_manifest_bytes(version_ref)
            if data is not None and hash_bytes(data) != seen["manifest_sha256"]:
                data = None  # the cached manifest is not the one the tag pointed at
    if data is None:
        raise NotFound(f"{ref} is not in the local cache {cache.root}, and --offline (or MODELREG_OFFLINE) "
                       f"forbids asking {spec.label}. Pull it once online, or see 'modelreg cache list'.")
    manifest = Manifest.from_bytes(data, source=f"the local cache ({version_ref})")
    return VersionInfo(manifest=manifest, digest=hash_bytes(data), location=location, cached=True,
                       signature=signature_summary(settings, manifest, data, cache.read_signature(version_ref)))


def signature_summary(settings: Settings, manifest: Manifest, manifest_bytes: bytes,
                      signature: bytes | None) -> str:
    """Who signed, checked against the trusted keys when there are any; never raises for display."""
    try:
        return check_bundle_signature(settings, manifest, manifest_bytes, signature, manifest.ref).describe()
    except RegistryError as exc:
        return f"NOT TRUSTED: {exc}"
