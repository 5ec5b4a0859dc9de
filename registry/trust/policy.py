"""Who vouches for a bundle: trusted keys, signatures over bundles, and tag rollback checks.

Policy: when any trusted public key is configured (the workspace's
`manifests/trusted_keys/*.pub`, or `trusted_keys` in the config), every pull and
`modelreg.load` requires a `model.sig` made by one of them that covers exactly the
bundle's files, `manifest.json` and `SHA256SUMS`. With no trusted keys, signatures
are carried along and reported but not required.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelreg.config import Settings
from modelreg.errors import UntrustedError
from modelreg.hashing import hash_bytes
from modelreg.layout import MANIFEST_NAME, SUMS_NAME
from modelreg.local.cache import Cache
from modelreg.manifest import Manifest
from modelreg.refs import Ref

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey


def trusted_key_files(settings: Settings) -> list[Path]:
    """Every trusted public key file: the workspace's manifests/trusted_keys/*.pub, then the config's."""
    workspace_keys = sorted((settings.workspace / "manifests" / "trusted_keys").glob("*.pub"))
    return workspace_keys + [Path(p).expanduser() for p in settings.trusted_keys]


def trust_locations(settings: Settings) -> str:
    return (f"{settings.workspace / 'manifests' / 'trusted_keys'}/*.pub and trusted_keys in "
            f"{settings.config_path}")


def load_trusted_keys(settings: Settings, extra: Sequence[Path] = ()) -> list[tuple[str, EllipticCurvePublicKey]]:
    """The trusted public keys, loaded; `cryptography` is imported only when there are some."""
    paths = [*extra, *trusted_key_files(settings)]
    if not paths:
        return []
    from modelreg.trust.keys import load_public_key

    return [(str(path), load_public_key(path)) for path in paths]


def signed_file_map(manifest: Manifest, manifest_bytes: bytes) -> dict[str, str]:
    """What a bundle signature covers: {path: sha256} of the files, manifest.json and SHA256SUMS."""
    files = {entry.path: entry.sha256 for entry in manifest.files}
    files[MANIFEST_NAME] = hash_bytes(manifest_bytes)
    files[SUMS_NAME] = hash_bytes(manifest.sha256sums().encode())
    return files


def sign_bundle(manifest: Manifest, manifest_bytes: bytes, key_path: Path,
                passphrase: bytes | None = None) -> bytes:
    """The `model.sig` bytes for a bundle, signed with the private key at `key_path`."""
    from modelreg.trust.keys import load_private_key
    from modelreg.trust.signing import sign_files

    key = load_private_key(key_path, passphrase)
    return sign_files(signed_file_map(manifest, manifest_bytes), key, model_name=manifest.ref)


@dataclass(frozen=True)
class SignatureStatus:
    """What can be said about a bundle's signature: verified signer, claimed signer, or none."""

    signed: bool
    verified_by: str | None = None
    key_source: str | None = None
    claimed_by: str | None = None

    def describe(self) -> str:
        if self.verified_by:
            return f"signed by {self.verified_by} (verified with {self.key_source})"
        if self.signed:
            return (f"signed{f' by {self.claimed_by}' if self.claimed_by else ''} (not verified: "
                    f"no trusted keys configured)")
        return "unsigned"


def check_bundle_signature(settings: Settings, manifest: Manifest, manifest_bytes: bytes,
                           signature: bytes | None, subject: str) -> SignatureStatus:
    """Enforce the trust policy; raises UntrustedError when trusted keys exist and the signature fails.

    An unsigned bundle with no trusted keys configured imports no crypto code at all.
    """
    keys = load_trusted_keys(settings)
    if not keys:
        if signature is None:
            return SignatureStatus(signed=False)
        from modelreg.trust.signing import signer_of

        return SignatureStatus(signed=True, claimed_by=signer_of(signature))
    if signature is None:
        raise UntrustedError(
            f"{subject} is not signed, but trusted keys are configured ({len(keys)} in "
            f"{trust_locations(settings)}), so only signed bundles are accepted. Ask the publisher "
            f"to push it with --sign, or remove the trusted keys to accept unsigned bundles.")
    from modelreg.trust.signing import check_signed_files, verify_signature

    check = verify_signature(signature, keys)
    check_signed_files(check, signed_file_map(manifest, manifest_bytes), subject)
    return SignatureStatus(signed=True, verified_by=check.signer_fingerprint,
                           key_source=check.signer_source)


def check_tag_not_downgraded(cache: Cache, tag_ref: Ref, manifest: Manifest, allow: bool) -> str | None:
    """Refuse (or with `allow`, report) a tag that now points at an older version than last seen.

    Versions are ordered by their manifests' `created` time. Returns a note when a
    downgrade was allowed, else None.
    """
    seen = cache.read_tag_seen(tag_ref)
    if seen is None or seen["version"] == manifest.version or manifest.created >= seen["created"]:
        return None
    message = (f"Tag {tag_ref} moved back from {seen['version']} (created {seen['created']}) to "
               f"{manifest.version} (created {manifest.created}), an older version. This is how a "
               f"rollback attack looks; if the rollback is intended, pull again with --allow-downgrade.")
    if not allow:
        raise UntrustedError(message)
    return message


def remember_tag(cache: Cache, tag_ref: Ref, manifest: Manifest, manifest_bytes: bytes) -> None:
    """Record the version a tag resolved to, for the next pull's downgrade check."""
    cache.remember_tag_seen(tag_ref, {"version": manifest.version, "created": manifest.created,
                                      "manifest_sha256": hash_bytes(manifest_bytes)})
