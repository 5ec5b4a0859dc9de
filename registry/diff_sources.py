"""The two sides of `modelreg diff`: a ref (from the cache or the remote) or a directory.

- A directory: its files are hashed (symlinks are not followed, modelreg's own
  manifest.json, SHA256SUMS and model.sig are not bundle files); its manifest.json,
  when there is one (`pull --dest` writes it), gives labels, hyper-parameters,
  metrics and provenance. Files that differ from that manifest are noted.
- A version cached from this remote (pulled or pushed there) is read from the cache
  without contacting it; versions are immutable. Anything else asks the remote
  (`fetch_manifest`: a tag is checked against its manifest's digest); a version the
  remote does not have but the cache does (ingested, not pushed) comes from the cache.
- `--offline`: the cache only; a tag resolves to the version it named when last pulled.
Every manifest goes through `Manifest.from_bytes`.
"""

from __future__ import annotations

from pathlib import Path

from modelreg.config import RemoteSpec, Settings
from modelreg.diff import BundleDiff, DiffSide, FileMap, compare, manifest_files
from modelreg.errors import NotFound
from modelreg.hashing import hash_bytes, hash_file
from modelreg.layout import MANIFEST_NAME
from modelreg.local.cache import Cache
from modelreg.manifest import RESERVED_NAMES, Manifest
from modelreg.refs import Ref, parse_ref
from modelreg.remote.index import fetch_manifest
from modelreg.storage import open_storage


def diff_targets(settings: Settings, a: str, b: str, spec: RemoteSpec) -> BundleDiff:
    """Compare two targets, each a `[NAME:]VERSION`, a tag or a directory."""
    return compare(load_side(settings, a, spec), load_side(settings, b, spec))


def load_side(settings: Settings, target: str, spec: RemoteSpec) -> DiffSide:
    path = Path(target)
    if path.is_dir():
        return directory_side(path)
    if "/" in target or path.exists():
        raise NotFound(f"{target} is not a directory (nor a model reference). Give a directory made by "
                       f"'modelreg pull --dest', any directory of model files, or a version such as v9.")
    return ref_side(settings, parse_ref(target, settings.default_model), spec)


def directory_side(directory: Path) -> DiffSide:
    files: FileMap = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and not path.is_symlink() and relative not in RESERVED_NAMES:
            files[relative] = hash_file(path)
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        return DiffSide(label=str(directory), files=files)
    data = manifest_path.read_bytes()
    manifest = Manifest.from_bytes(data, source=str(manifest_path))
    expected = manifest_files(manifest)
    differing = sorted(p for p in expected.keys() | files.keys() if expected.get(p) != files.get(p))
    notes = (f"{len(differing)} file(s) differ from its {MANIFEST_NAME} ({', '.join(differing[:5])}); the "
             f"files as they are were compared",) if differing else ()
    return DiffSide(label=f"{directory} ({manifest.ref})", files=files, manifest=manifest,
                    digest=hash_bytes(data), notes=notes)


def _manifest_side(label: str, manifest: Manifest, data: bytes, notes: tuple[str, ...] = ()) -> DiffSide:
    return DiffSide(label=label, files=manifest_files(manifest), manifest=manifest, digest=hash_bytes(data),
                    notes=notes)


def ref_side(settings: Settings, ref: Ref, spec: RemoteSpec) -> DiffSide:
    cache = Cache(settings.cache_dir)
    cached = cache.read_manifest_bytes(ref)
    if cached is not None and (settings.offline or spec.url in cache.published_on(ref)):
        return _cached_side(cache, ref, cached)
    if settings.offline:
        return _offline_tag_side(cache, ref, spec)
    with open_storage(spec) as storage:
        try:
            manifest, data = fetch_manifest(storage, ref)
        except NotFound:
            if cached is None:
                raise
            return _cached_side(cache, ref, cached, "local cache only, not pushed")
    return _manifest_side(f"{ref} ({spec.label})" if manifest.ref == str(ref) else
                          f"{ref} -> {manifest.version} ({spec.label})", manifest, data)


def _cached_side(cache: Cache, ref: Ref, data: bytes, where: str = "local cache") -> DiffSide:
    manifest = Manifest.from_bytes(data, source=f"the local cache ({cache.manifest_path(ref)})")
    return _manifest_side(f"{ref} ({where})", manifest, data)


def _offline_tag_side(cache: Cache, ref: Ref, spec: RemoteSpec) -> DiffSide:
    seen = cache.read_tag_seen(ref)
    data = cache.read_manifest_bytes(Ref(ref.name, seen["version"])) if seen else None
    if seen is None or data is None or hash_bytes(data) != seen["manifest_sha256"]:
        raise NotFound(f"{ref} is not in the local cache {cache.root}, and --offline (or MODELREG_OFFLINE) "
                       f"forbids asking {spec.label}. Pull it once online, or drop --offline.")
    version = Ref(ref.name, seen["version"])
    manifest = Manifest.from_bytes(data, source=f"the local cache ({cache.manifest_path(version)})")
    return _manifest_side(f"{ref} -> {version.version} (local cache)", manifest, data,
                          (f"--offline: tag {ref} as last pulled ({seen['created']}); the remote was not "
                           f"asked whether it moved since",))
