"""Import an archive made by `export` (or any tar of a registry root): verified, all or nothing.

Guarantees:
- the tar is read once, as a stream (gzip/bz2/xz too); each member must be a regular
  file (or directory) under a registry-layout name: `..`, absolute names, links,
  devices, FIFOs, duplicate names, names outside the layout and oversized metadata are
  refused, naming the member;
- every blob is hashed while it is written into a private staging directory (0700,
  under the cache's tmp/) and refused unless it matches the digest in its name;
- then every manifest passes the trust gate (pin, schema, identity, signature with the
  trusted keys), its SHA256SUMS must agree with it, every blob it names must be in the
  archive, and every tag must point at a manifest in the archive with its digest;
- only after every check passed is anything published: into the cache (blobs, then
  manifests and signatures, like a pull; tags are remembered as last seen, so an
  offline pull of a tag resolves) or into a remote through `copy_version` (blobs
  hashed as sent, manifest last, create-only). Nothing partial is visible on failure,
  and the staging directory is always removed.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import (
    AlreadyExists,
    DigestMismatch,
    IntegrityError,
    InvalidArtifact,
    LocalIOError,
    MissingFile,
    NotFound,
    RegistryError,
    UntrustedError,
    UsageError,
)
from modelreg.hashing import CHUNK_SIZE, HashingSink, hash_bytes
from modelreg.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME, check_name, tag_key, version_key
from modelreg.local.atomic import atomic_write
from modelreg.local.cache import Cache, open_new
from modelreg.manifest import MAX_MANIFEST_BYTES
from modelreg.moving.copy import (
    CopyResult,
    check_same_manifest,
    copy_version,
    gate_source_version,
    set_tag,
    staging_cache,
)
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref
from modelreg.remote.index import Tag, read_small, read_tag
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.transfer import require_online, unique_blobs
from modelreg.trust.gate import VerifiedManifest
from modelreg.trust.policy import check_tag_not_downgraded, remember_tag

TAG_LIMIT = 64 * 1024
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{2})/([0-9a-f]{64})")
_VERSION_FILE = re.compile(rf"models/([^/]+)/([^/]+)/({MANIFEST_NAME}|{SUMS_NAME}|{re.escape(SIGNATURE_NAME)})")
_TAG = re.compile(r"tags/([^/]+)/([^/]+)\.json")


@dataclass
class ImportResult:
    archive: Path
    dest: str
    versions: list[VerifiedManifest] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    blobs: int = 0
    """Blobs in the archive (each verified)."""
    unreferenced: int = 0
    """Blobs in the archive that no manifest names (verified, then not imported)."""
    copies: list[CopyResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"archive": str(self.archive), "to": self.dest, "blobs": self.blobs,
                "unreferenced_blobs": self.unreferenced,
                "versions": [{"ref": str(v.ref), "manifest_sha256": hash_bytes(v.data),
                              "signature": v.status.describe()} for v in self.versions],
                "tags": [f"{t.name}:{t.tag}" for t in self.tags], "notes": self.notes}


def member_key(name: str, archive: Path) -> str:
    """The registry key a tar member name stands for; InvalidArtifact for anything unsafe or foreign.

    A leading `./` (as `tar -C dir -c .` writes) is dropped; any other `.`, `..`, empty or
    absolute component is refused.
    """
    key = name[2:] if name.startswith("./") else name
    parts = key.rstrip("/").split("/") if key not in ("", ".", "./") else []
    if name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in parts):
        raise InvalidArtifact(f"Member {name!r} of {archive} has an unsafe name (absolute, '..', '.' or "
                              f"empty parts); nothing was imported. Only archives written by "
                              f"'modelreg export' (or a tar of a registry root) can be imported.")
    return "/".join(parts)


def import_archive(settings: Settings, archive: Path, spec: RemoteSpec | None = None, *,
                   reporter: ProgressReporter | None = None) -> ImportResult:
    """Import `archive` into the cache, or with `spec` into that remote (see the module docstring)."""
    reporter = reporter or SilentProgress()
    if spec is not None:
        require_online(settings, "import into", spec)
    result = ImportResult(archive=archive, dest=spec.label if spec else f"the local cache {settings.cache_dir}")
    with staging_cache(settings, "import") as staging:
        keys = _unpack(archive, staging, reporter)
        with open_storage(RemoteSpec(url=staging.root.as_uri())) as staged:
            result.versions, result.tags = _check(settings, archive, staged, keys)
            referenced = {e.sha256 for v in result.versions for e in v.manifest.files}
            result.blobs = sum(1 for key in keys if _BLOB.fullmatch(key))
            result.unreferenced = result.blobs - len(referenced)
            if spec is None:
                _publish_to_cache(Cache(settings.cache_dir), staging, result)
            else:
                with open_storage(spec) as dest:
                    _publish_to_remote(settings, staged, staging, dest, result, reporter)
    return result


def _unpack(archive: Path, staging: Cache, reporter: ProgressReporter) -> set[str]:
    """Stream every member into `staging` under its key, verifying blobs; returns the keys."""
    try:
        handle = open(archive, "rb")
    except OSError as exc:
        raise NotFound(f"Cannot open the archive {archive} ({exc.strerror or exc}); check the path.") from exc
    keys: set[str] = set()
    try:
        with handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
            for member in tar:
                key = member_key(member.name, archive)
                if member.isdir():
                    continue
                if not member.isreg():
                    raise InvalidArtifact(f"Member {member.name!r} of {archive} is not a regular file "
                                          f"(a link, device or FIFO); nothing was imported. Archives may "
                                          f"hold regular files only.")
                if key in keys:
                    raise InvalidArtifact(f"Member {member.name!r} appears twice in {archive}; nothing was "
                                          f"imported (a later copy could silently replace a checked one).")
                keys.add(key)
                _stage_member(tar, member, key, archive, staging, reporter)
    except tarfile.TarError as exc:
        raise InvalidArtifact(f"{archive} is not a readable tar archive ({exc}); nothing was imported. "
                              f"Export it again with 'modelreg export'.") from exc
    except OSError as exc:
        if isinstance(exc, RegistryError):
            raise
        raise LocalIOError(f"Importing {archive} failed ({exc.strerror or exc}); nothing was imported. "
                           f"Free disk space under {staging.root.parent} and try again.") from exc
    return keys


def _stage_member(tar: tarfile.TarFile, member: tarfile.TarInfo, key: str, archive: Path,
                  staging: Cache, reporter: ProgressReporter) -> None:
    source = tar.extractfile(member)
    assert source is not None, "a regular member has content"
    blob = _BLOB.fullmatch(key)
    if blob is not None and blob.group(1) == blob.group(2)[:2]:
        _stage_blob(source, member, blob.group(2), archive, staging, reporter)
        return
    limit = TAG_LIMIT if _TAG.fullmatch(key) else MAX_MANIFEST_BYTES
    if blob is not None or not (_VERSION_FILE.fullmatch(key) or _TAG.fullmatch(key)):
        raise InvalidArtifact(f"Member {member.name!r} of {archive} is not part of a registry layout "
                              f"(blobs/sha256/xx/<sha256>, models/<name>/<version>/{MANIFEST_NAME}, "
                              f"{SUMS_NAME} or {SIGNATURE_NAME}, tags/<name>/<tag>.json); nothing was "
                              f"imported.")
    if member.size > limit:
        raise InvalidArtifact(f"Member {member.name!r} of {archive} is {member.size} bytes, more than the "
                              f"{limit} a modelreg metadata file may have; nothing was imported.")
    _check_names(member, key, archive)
    atomic_write(staging.root.joinpath(*key.split("/")), source.read(limit))


def _check_names(member: tarfile.TarInfo, key: str, archive: Path) -> None:
    """The model name, version or tag in a metadata member's name must be valid names."""
    parts = key.split("/")
    names = parts[1:-1] + ([parts[-1].removesuffix(".json")] if parts[0] == "tags" else [])
    try:
        for part in names:
            check_name(part, "name")
    except UsageError as exc:
        raise InvalidArtifact(f"Member {member.name!r} of {archive}: {exc} Nothing was imported.") from None


def _stage_blob(source, member: tarfile.TarInfo, sha256: str, archive: Path, staging: Cache,
                reporter: ProgressReporter) -> None:
    path = staging.blob_path(sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_new(path) as out:
        sink = HashingSink(out, progress=reporter.task(f"import {sha256[:12]}", member.size))
        while chunk := source.read(CHUNK_SIZE):
            sink.write(chunk)
    if sink.hexdigest() != sha256:
        raise DigestMismatch(path=member.name, expected=sha256, actual=sink.hexdigest(),
                             expected_size=member.size, actual_size=sink.size,
                             where=f"member {member.name} of {archive}",
                             outcome="Nothing was imported.",
                             fix="The archive was altered or damaged: export it again from a good copy.",
                             source=str(archive))


def _check(settings: Settings, archive: Path, staged: Storage,
           keys: set[str]) -> tuple[list[VerifiedManifest], list[Tag]]:
    """Gate every staged manifest and check its SHA256SUMS, blobs and tags (nothing published yet)."""
    label = f"the archive {archive}"
    versions = []
    for key in sorted(keys):
        found = _VERSION_FILE.fullmatch(key)
        if found is None:
            continue
        ref = Ref(found.group(1), found.group(2))
        if version_key(ref.name, ref.version) not in keys:
            raise InvalidArtifact(f"{key} in {archive} has no {MANIFEST_NAME} beside it; nothing was imported.")
        if found.group(3) != MANIFEST_NAME:
            continue
        verified = gate_source_version(settings, staged, ref, label)
        sums = version_key(ref.name, ref.version, SUMS_NAME)
        if sums in keys and read_small(staged, sums) != verified.manifest.sha256sums().encode():
            raise IntegrityError(f"{sums} in {archive} disagrees with the manifest beside it: one of them "
                                 f"was edited. Nothing was imported; export it again from a good copy.",
                                 path=sums, source=str(archive))
        for entry in unique_blobs(verified.manifest):
            if staged.stat(f"blobs/sha256/{entry.sha256[:2]}/{entry.sha256}") != entry.size:
                raise MissingFile(path=entry.path, expected=entry.sha256, where=f"{label} (for {ref})",
                                  fix="Nothing was imported; export the version again.", source=str(archive))
        versions.append(verified)
    if not versions:
        raise InvalidArtifact(f"{archive} holds no version (no models/<name>/<version>/{MANIFEST_NAME}); "
                              f"nothing was imported.")
    digests = {(v.ref.name, v.ref.version): hash_bytes(v.data) for v in versions}
    tags = []
    for key in sorted(keys):
        found = _TAG.fullmatch(key)
        if found is None:
            continue
        tag = read_tag(staged, found.group(1), found.group(2))
        assert tag is not None, "the tag file was staged"
        if digests.get((tag.name, tag.version)) != tag.manifest_sha256:
            raise InvalidArtifact(f"{tag_key(tag.name, tag.tag)} in {archive} points at {tag.name}:"
                                  f"{tag.version} with manifest {tag.manifest_sha256[:12]}, which the "
                                  f"archive does not hold; nothing was imported.")
        tags.append(tag)
    return versions, tags


def _publish_to_cache(cache: Cache, staging: Cache, result: ImportResult) -> None:
    """Blobs first (renamed from staging, same filesystem), then each manifest and its signature."""
    for verified in result.versions:
        existing = cache.read_manifest_bytes(verified.ref)
        if existing is not None and existing != verified.data:
            raise AlreadyExists(f"{verified.ref} is already in the local cache {cache.root} with a different "
                                f"manifest ({hash_bytes(existing)[:12]}, the archive's is "
                                f"{hash_bytes(verified.data)[:12]}). Versions are immutable: nothing was "
                                f"imported.")
    moved: set[str] = set()
    for verified in result.versions:
        for entry in unique_blobs(verified.manifest):
            if entry.sha256 not in moved:  # replaces a cached copy with the one just verified
                cache.publish_download(staging.blob_path(entry.sha256), entry, entry.sha256, entry.size,
                                       str(result.archive))
                moved.add(entry.sha256)
    for verified in result.versions:
        cache.save_signature(verified.ref, verified.signature)
        cache.save_manifest_bytes(verified.ref, verified.data)
    by_ref = {v.ref: v for v in result.versions}
    for tag in result.tags:
        verified = by_ref[Ref(tag.name, tag.version)]
        tag_ref = Ref(tag.name, tag.tag)
        try:
            check_tag_not_downgraded(cache, tag_ref, verified.manifest, allow=False)
        except UntrustedError:
            result.notes.append(f"tag {tag_ref} -> {tag.version} was not recorded: this machine last saw "
                                f"it on a newer version")
            continue
        remember_tag(cache, tag_ref, verified.manifest, verified.data)


def _publish_to_remote(settings: Settings, staged: Storage, staging: Cache, dest: Storage,
                       result: ImportResult, reporter: ProgressReporter) -> None:
    """Each version through the copy core (blobs uploaded from staging, hashed as sent), then tags.

    A version the remote holds with a different manifest is refused before anything is sent.
    """
    for verified in result.versions:
        existing = read_small(dest, version_key(verified.ref.name, verified.ref.version))
        if existing is not None:
            check_same_manifest(existing, verified.data, verified.ref, dest)
    for verified in result.versions:
        result.copies.append(copy_version(settings, verified.ref, staged, dest, reporter=reporter,
                                          local_blobs=staging, source_label=f"the archive {result.archive}"))
    for tag in result.tags:
        set_tag(dest, tag)
