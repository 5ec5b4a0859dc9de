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
from modelreg.errors import InvalidArtifact, UntrustedError
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
    """What can be said about a bundle's signature: verified signer, claimed signer, or none.

    Without trusted keys nothing is verified: `describe` says "signed by X (claimed,
    not verified)" only when the statement covers every file (`covers == total`),
    else that a signature is present, whom it claims, and how many of the files
    it lists with their current digests, or that it is unreadable (and why).
    """

    signed: bool
    verified_by: str | None = None
    key_source: str | None = None
    claimed_by: str | None = None
    covers: int | None = None
    total: int | None = None
    unreadable: str | None = None

    def describe(self) -> str:
        if self.verified_by:
            return f"signed by {self.verified_by} (verified with {self.key_source})"
        if self.unreadable:
            return (f"signature present but unreadable ({self.unreadable}); not verified (no trusted "
                    f"keys configured)")
        if self.signed:
            coverage = (f", its statement covers {self.covers} of {self.total} files"
                        if self.total is not None else "")
            if self.claimed_by and self.total is not None and self.covers == self.total:
                return (f"signed by {self.claimed_by} (claimed, not verified: no trusted keys "
                        f"configured){coverage}")
            claim = f", claims key {self.claimed_by}" if self.claimed_by else ""
            return f"signature present, not verified (no trusted keys configured){claim}{coverage}"
        return "unsigned"


def unverified_status(signature: bytes | None, files: dict[str, str]) -> SignatureStatus:
    """What an unverified signature claims about `files` ({path: sha256}); never raises for a bad one."""
    if signature is None:
        return SignatureStatus(signed=False)
    from modelreg.trust.signing import claimed_files, signer_of

    try:
        claimed = claimed_files(signature)
        claimed_by = signer_of(signature)
    except InvalidArtifact as exc:
        return SignatureStatus(signed=True, unreadable=str(exc))
    covers = sum(1 for path, digest in files.items() if claimed.get(path) == digest)
    return SignatureStatus(signed=True, claimed_by=claimed_by, covers=covers, total=len(files))


def verify_trusted(signature: bytes, keys: list, expected: dict[str, str], subject: str):
    """Verify `signature` with `keys` and that it covers exactly `expected`; any failure is UntrustedError."""
    from modelreg.trust.signing import check_signed_files, verify_signature

    try:
        check = verify_signature(signature, keys)
    except InvalidArtifact as exc:
        raise UntrustedError(f"The model.sig of {subject} is unreadable ({exc}). Trusted keys are "
                             f"configured, so only bundles with a valid signature from one of them are "
                             f"accepted: ask the publisher to re-sign it.") from exc
    check_signed_files(check, expected, subject)
    return check


def check_bundle_signature(settings: Settings, manifest: Manifest, manifest_bytes: bytes,
                           signature: bytes | None, subject: str) -> SignatureStatus:
    """Enforce the trust policy; raises UntrustedError when trusted keys exist and the signature fails.

    With no trusted keys, a missing or unreadable signature is reported, not refused; an
    unsigned bundle with no trusted keys configured imports no crypto code at all.
    """
    keys = load_trusted_keys(settings)
    if not keys:
        return unverified_status(signature, signed_file_map(manifest, manifest_bytes))
    if signature is None:
        raise UntrustedError(
            f"{subject} is not signed, but trusted keys are configured ({len(keys)} in "
            f"{trust_locations(settings)}), so only signed bundles are accepted. Ask the publisher "
            f"to push it with --sign, or remove the trusted keys to accept unsigned bundles.")
    check = verify_trusted(signature, keys, signed_file_map(manifest, manifest_bytes), subject)
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
