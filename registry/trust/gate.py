"""The one gate a manifest passes before anything it names is used: pin, format, identity, signature.

Pull (on the remote's bytes), push, load and verify (on the cached bytes) all call
`verify_manifest`, so none of them can skip a check the others make:
1. the workspace pin, when there is one, must have the same digest (freeze);
2. the bytes must be a canonical, schema-valid manifest of exactly `ref`;
3. the signature must satisfy the trust policy (see `modelreg.trust.policy`).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelreg.config import Settings
from modelreg.errors import MisplacedManifest, NotFound
from modelreg.local.cache import Cache
from modelreg.local.workspace import check_against_pin
from modelreg.manifest import Manifest
from modelreg.refs import Ref
from modelreg.trust.policy import SignatureStatus, check_bundle_signature


@dataclass(frozen=True)
class VerifiedManifest:
    """A manifest that passed the gate, with its exact bytes and the signature that came with it."""

    manifest: Manifest
    data: bytes
    signature: bytes | None
    status: SignatureStatus

    @property
    def ref(self) -> Ref:
        return Ref(self.manifest.name, self.manifest.version)


def verify_manifest(settings: Settings, ref: Ref, data: bytes, signature: bytes | None,
                    source: str) -> VerifiedManifest:
    """Run the gate on manifest bytes claimed to be version `ref`, read from `source`."""
    check_against_pin(settings.workspace, data, ref, source)
    manifest = Manifest.from_bytes(data, source=source)
    if (manifest.name, manifest.version) != (ref.name, ref.version):
        raise MisplacedManifest(stored_as=str(ref), describes=manifest.ref, where=source, key=str(ref),
                                source=source)
    status = check_bundle_signature(settings, manifest, data, signature, f"{manifest.ref} in {source}")
    return VerifiedManifest(manifest=manifest, data=data, signature=signature, status=status)


def open_cached_manifest(settings: Settings, cache: Cache, ref: Ref) -> VerifiedManifest | None:
    """The cached manifest of version `ref` after the gate, or None when it is not cached."""
    data = cache.read_manifest_bytes(ref)
    if data is None:
        return None
    return verify_manifest(settings, ref, data, cache.read_signature(ref), "the local cache")


def require_cached_manifest(settings: Settings, cache: Cache, ref: Ref, fix: str) -> VerifiedManifest:
    """Like `open_cached_manifest`, but a version that is not cached is NotFound with `fix`."""
    verified = open_cached_manifest(settings, cache, ref)
    if verified is None:
        raise NotFound(f"{ref} is not in the local cache {cache.root}. {fix}")
    return verified
