"""Signatures over small registry records (yanked.json, tag move records), with the bundle keys.

A record signature is an OpenSSF model-signing bundle (`modelreg.trust.signing`) whose
statement covers one file: the record under its own name, by the sha256 of its exact
bytes. The same keys sign bundles and records, so `manifests/trusted_keys/*.pub`
decides both. How a record's signature counts is up to the caller: a yank is honoured
whatever its signature (it can only make things stricter); a rollback record lets a
downgrade through only when a trusted key signed it (`modelreg.tag_moves`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelreg.config import Settings
from modelreg.errors import UntrustedError
from modelreg.hashing import hash_bytes
from modelreg.trust.policy import load_trusted_keys, unverified_status, verify_trusted


def sign_record(data: bytes, filename: str, key_path: Path, passphrase: bytes | None = None) -> bytes:
    """The signature bytes over record `data` stored as `filename`, made with the key at `key_path`."""
    from modelreg.trust.keys import load_private_key
    from modelreg.trust.signing import sign_files

    key = load_private_key(key_path, passphrase)
    return sign_files({filename: hash_bytes(data)}, key, model_name=filename)


@dataclass(frozen=True)
class RecordSignature:
    """What can be said about a record's signature; `verified_by` only when a trusted key made it."""

    description: str
    verified_by: str | None = None


def check_record_signature(settings: Settings, data: bytes, filename: str, signature: bytes | None,
                           subject: str) -> RecordSignature:
    """Check `signature` over record `data` against the trusted keys; never raises for a bad one."""
    expected = {filename: hash_bytes(data)}
    keys = load_trusted_keys(settings)
    if not keys:
        status = unverified_status(signature, expected)
        return RecordSignature(status.describe())
    if signature is None:
        return RecordSignature("unsigned (trusted keys are configured, none signed it)")
    try:
        check = verify_trusted(signature, keys, expected, subject)
    except UntrustedError as exc:
        return RecordSignature(f"NOT TRUSTED: {exc}")
    return RecordSignature(f"signed by {check.signer_fingerprint} (verified with {check.signer_source})",
                           verified_by=check.signer_fingerprint)
