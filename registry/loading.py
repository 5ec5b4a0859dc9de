"""Verified loading for downstream code: `modelreg.load("v9")`.

Nothing unverified is ever deserialized. The cache is treated as untrusted: the
manifest's bytes pass the gate (workspace pin, format, identity, signature when
trusted keys are configured), and every file the family reads is re-hashed
against that one manifest while it is read into memory or copied into a private
file (e.g. a correctly named `.h5` handed to Keras). What a file means is the
family's business (`modelreg.families`): modelreg never runs code from a bundle.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelreg.config import Settings
from modelreg.errors import NotFound, RemoteError, RemoteUnreachableWarning
from modelreg.families import family_for
from modelreg.local.cache import Cache
from modelreg.local.materialize import materialize
from modelreg.local.usage import hold_version
from modelreg.manifest import FileEntry, Manifest
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref, parse_ref
from modelreg.trust.gate import VerifiedManifest, open_cached_manifest, require_cached_manifest


@dataclass(frozen=True)
class CachedBundle:
    """A gated manifest plus verified reads from the cache (`modelreg.families.VerifiedBundle`)."""

    cache: Cache
    verified: VerifiedManifest

    @property
    def manifest(self) -> Manifest:
        return self.verified.manifest

    def read_bytes(self, entry: FileEntry) -> bytes:
        return self.cache.read_bytes(entry)

    def private_copy(self, entry: FileEntry, directory: Path, name: str) -> Path:
        target = directory / name
        self.cache.copy_verified(entry, target)
        return target

    def materialize(self, directory: Path) -> Path:
        return materialize(self.cache, self.manifest, self.verified.data, directory, self.verified.signature)


def load(ref: str = "v9", remote: str | None = None, *, settings: Settings | None = None,
         workspace: Path | None = None, reporter: ProgressReporter | None = None,
         allow_yanked: bool = False) -> Any:
    """Pull `ref` if it is not cached, verify everything, and return what its family loads.

    A v9 bundle loads as a `LoadedModel` (`.predict(features)`); a `files` bundle as
    the path of a verified directory. `workspace` overrides where pins and trusted
    keys are found (see `modelreg.config.find_workspace`). Raises IntegrityError
    when any byte differs from the manifest (the damaged cache entry is removed, so
    pulling again repairs it), InvalidArtifact when the files do not fit together or
    their family is not installed, Yanked when the version was withdrawn on the remote
    (unless `allow_yanked`; see `modelreg.yanking` for when a cached version is re-checked).
    """
    settings = settings or Settings.resolve(workspace=workspace)
    if workspace is not None:
        settings = settings.with_workspace(Path(workspace))
    parsed = parse_ref(ref, settings.default_model)
    cache = Cache(settings.cache_dir)
    verified = open_cached_manifest(settings, cache, parsed)
    if verified is not None:
        from modelreg.yanking import check_cached_yank

        for note in check_cached_yank(settings, cache, parsed, settings.remote(remote), allow_yanked):
            (reporter or SilentProgress()).message(f"Warning: {note}")
    else:
        loaded = pull_or_use_cache(settings, cache, parsed, remote, reporter, allow_yanked)
        verified = require_cached_manifest(settings, cache, loaded,
                                           fix="It was removed while being pulled; pull it again.")
    return load_verified(cache, verified)


def pull_or_use_cache(settings: Settings, cache: Cache, ref: Ref, remote: str | None,
                      reporter: ProgressReporter | None, allow_yanked: bool = False) -> Ref:
    """Pull `ref`; when the remote cannot be reached, fall back to what the cache holds for it.

    The fallback is what `--offline` would serve (a cached version, or a tag through the
    version it pointed at when last pulled), with a `RemoteUnreachableWarning` saying the
    remote was not asked. When the cache has nothing for `ref`, the RemoteError is raised.
    """
    from modelreg.transfer import pull, pull_from_cache

    spec = settings.remote(remote)
    try:
        result = pull(settings, ref, spec, reporter=reporter, allow_yanked=allow_yanked)
    except RemoteError as exc:
        try:
            cached = pull_from_cache(replace(settings, offline=True), cache, ref, spec, allow_yanked=allow_yanked)
        except NotFound:
            raise exc from None
        assert cached is not None  # offline, pull_from_cache serves or raises
        result = cached
        message = (f"{spec.label} could not be reached, so {ref} was loaded as "
                   f"{result.manifest.ref} from the local cache (verified, but the remote was not "
                   f"asked whether it changed): {exc}")
        for note in result.notes:
            message += f" Note: {note}"
        warnings.warn(message, RemoteUnreachableWarning, stacklevel=3)
    return Ref(result.manifest.name, result.manifest.version)


def load_verified(cache: Cache, verified: VerifiedManifest) -> Any:
    """Hand a gated manifest to its family; private copies are deleted when it returns.

    The version is held against prune until this process exits (`modelreg.local.usage`).
    """
    hold_version(cache, verified.manifest, "load")
    family = family_for(str(verified.manifest.model.get("family")))
    with tempfile.TemporaryDirectory(prefix="modelreg-load-") as private:
        return family.load(CachedBundle(cache, verified), private_dir=Path(private),
                           snapshot_dir=cache.snapshot_dir(verified.ref))
