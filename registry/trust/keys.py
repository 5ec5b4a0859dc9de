"""Signing keys: make an ECDSA key pair, load keys from PEM files, name a key by fingerprint.

OpenSSF Model Signing's `key` method (what `model_signing sign key` and `verify key`
use) accepts ECDSA keys on P-256, P-384 or P-521 only, so these are the only keys
modelreg signs or verifies with; Ed25519 and RSA key files are refused with a
message saying so. A key is named by `key_fingerprint`: `sha256:` + the hex sha256
of its DER SubjectPublicKeyInfo, the same value whichever file it was read from.

Key files are PEM: the private key PKCS8 (encrypted when a passphrase is given),
the public key SubjectPublicKeyInfo in `<private key path>.pub`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelreg.errors import AlreadyExists, InvalidArtifact, NotFound, UsageError
from modelreg.local.atomic import atomic_write

SUPPORTED_CURVES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}
"""The curves OMS key signing accepts, each with the hash its ECDSA signatures use."""

_KEY_TYPE_HELP = ("OpenSSF model signing with keys needs an ECDSA key on P-256, P-384 or P-521; "
                  "Ed25519 and RSA keys are not supported. Make one with 'modelreg keygen'.")


def public_key_path(private_key_path: Path) -> Path:
    """Where `generate_keypair` puts the public half of `private_key_path`: the same name plus `.pub`."""
    return private_key_path.with_name(private_key_path.name + ".pub")


def generate_keypair(path: Path, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Create an ECDSA P-256 key pair and return (private key path, public key path).

    The private key is written as PKCS8 PEM, encrypted with `passphrase` when one is
    given, with mode 0600, and appears complete or not at all (temp file + hard link).
    Nothing is ever overwritten: AlreadyExists when `path` or `path.pub` exists.
    UsageError for an empty passphrase (pass None for an unencrypted key).
    """
    path = Path(path)
    pub_path = public_key_path(path)
    for existing in (path, pub_path):
        if existing.exists():
            raise AlreadyExists(f"{existing} already exists; modelreg never overwrites a key. Choose "
                                f"another path, or move the old key away first if you mean to replace it.")
    if passphrase is not None and not passphrase:
        raise UsageError("The passphrase is empty. Give a non-empty passphrase, or none for an "
                         "unencrypted key.")
    private_key = ec.generate_private_key(ec.SECP256R1())
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    private_pem = private_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8, encryption)
    public_pem = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(path, private_pem, create_only=True, mode=0o600, fsync=True)
    atomic_write(pub_path, public_pem, create_only=True, mode=0o644, fsync=True)
    return path, pub_path


def load_private_key(path: Path, passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Read a PEM private key for signing.

    Raises NotFound when the file is missing, UsageError when the passphrase is
    wrong, missing or not needed, and InvalidArtifact when the file is not a PEM
    private key or not an ECDSA key on a supported curve.
    """
    data = _read_key_file(Path(path), "private")
    encrypted = b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and not passphrase:
        raise UsageError(f"The private key {path} is encrypted; give its passphrase.")
    if not encrypted and passphrase:
        raise UsageError(f"A passphrase was given but the private key {path} is not encrypted; "
                         f"omit the passphrase.")
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise InvalidArtifact(f"{path} holds a public key; signing needs the private key (the file "
                              f"without .pub).")
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise UsageError(f"Wrong passphrase for the private key {path} (or the file is "
                             f"damaged): it could not be decrypted.") from exc
        raise InvalidArtifact(f"{path} is not a PEM private key ({exc}).") from exc
    except TypeError as exc:
        raise UsageError(f"The private key {path} cannot be opened with the passphrase given "
                         f"({exc}).") from exc
    except UnsupportedAlgorithm as exc:
        raise InvalidArtifact(f"{path} is not a usable private key ({exc}). {_KEY_TYPE_HELP}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArtifact(f"{path} is {_describe(key)}. {_KEY_TYPE_HELP}")
    check_supported_curve(key.public_key(), str(path))
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """Read a PEM SubjectPublicKeyInfo public key to verify signatures with.

    Raises NotFound when the file is missing and InvalidArtifact when it holds a
    private key, is not PEM, or is not an ECDSA key on a supported curve.
    """
    data = _read_key_file(Path(path), "public")
    if b"PRIVATE KEY-----" in data:
        raise InvalidArtifact(f"{path} holds a private key; trust the public key instead (the "
                              f"matching .pub file). Never hand out or configure the private key.")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InvalidArtifact(f"{path} is not a PEM public key ({exc}).") from exc
    except UnsupportedAlgorithm as exc:
        raise InvalidArtifact(f"{path} is not a usable public key ({exc}). {_KEY_TYPE_HELP}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidArtifact(f"{path} is {_describe(key)}. {_KEY_TYPE_HELP}")
    check_supported_curve(key, str(path))
    return key


def _read_key_file(path: Path, kind: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"The {kind} key file {path} does not exist. Check the path, or create a key "
                       f"pair with 'modelreg keygen'.") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{path} is a directory, not a {kind} key file.") from exc


def _describe(key) -> str:
    """`an Ed25519 key`, `an RSA key`, ... for a key of a type OMS cannot use."""
    name = type(key).__name__.lstrip("_")
    for kind in ("Ed25519", "Ed448", "RSA", "DSA", "X25519", "X448"):
        if name.startswith(kind):
            return f"{'a' if kind == 'DSA' else 'an'} {kind} key"
    return f"a {name} key"


def check_supported_curve(public_key: ec.EllipticCurvePublicKey, source: str) -> None:
    """InvalidArtifact unless the key's curve is one OMS key signing accepts."""
    if public_key.curve.name not in SUPPORTED_CURVES:
        raise InvalidArtifact(f"{source} is an ECDSA key on curve {public_key.curve.name}. "
                              f"{_KEY_TYPE_HELP}")


def signature_hash(public_key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The hash OMS pairs with the key's curve: SHA-256, SHA-384 or SHA-512."""
    return SUPPORTED_CURVES[public_key.curve.name]()


def key_fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """`sha256:` + hex sha256 of the key's DER SubjectPublicKeyInfo; stable across file formats."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def pem_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key hint `model_signing` writes and checks: hex sha256 of the PEM SubjectPublicKeyInfo."""
    pem = public_key.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()
