"""Bundle signatures (`model.sig`) in the OpenSSF Model Signing (OMS) v1.0 format.

A signature is what `model_signing sign key DIR` writes for the bundle directory: a
Sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`, no transparency log)
holding a DSSE envelope whose payload is an in-toto Statement v1 with predicate
`https://model_signing/signature/v1.0`. The predicate lists every file of the
directory (model files, `manifest.json`, `SHA256SUMS`) by relative path and sha256;
the statement's single subject carries the sha256 over those digests. A signature
made here is accepted by `model_signing verify key DIR --signature DIR/model.sig
--public_key KEY.pub`, and one made by `model_signing sign key` is accepted here
(tests/test_signing.py proves both directions).

Why modelreg writes and checks the format itself with `cryptography` instead of
calling the `model_signing` library: the cache stores blobs by digest, not as a
directory, and every file's sha256 is already known from the verified manifest.
Signing and checking from those digests needs no re-hash of the model and no
materialized directory, and a pull does not pay for importing sigstore.

Two details beyond what `model_signing` writes: the DSSE signature's `keyid` is the
signer's `key_fingerprint` (an unauthenticated hint that `show` can display without
verifying; `model_signing` writes "" and ignores it), and pre-1.0 OMS signatures
(`https://model_signing/Digests/v0.1`) are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from modelreg.errors import InvalidArtifact, UntrustedError, UsageError
from modelreg.hashing import is_sha256_hex
from modelreg.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME
from modelreg.manifest import check_bundle_path
from modelreg.trust.keys import (
    check_supported_curve,
    generate_keypair,
    key_fingerprint,
    load_private_key,
    load_public_key,
    pem_hint,
    signature_hash,
)

__all__ = ["SignatureCheck", "check_signed_files", "claimed_files", "generate_keypair", "key_fingerprint",
           "load_private_key", "load_public_key", "sign_files", "signer_of", "verify_signature"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_ACCEPTED_MEDIA_TYPES = {BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"}
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
IGNORE_PATHS = (".git", ".gitattributes", ".github", ".gitignore", SIGNATURE_NAME)
"""What `model_signing sign key DIR --signature DIR/model.sig` records as ignored by default."""
MAX_SIGNATURE_BYTES = 64 * 1024 * 1024
DEFAULT_MODEL_NAME = "model"


@dataclass(frozen=True)
class SignatureCheck:
    """A verified signature: which trusted key made it and the files it vouches for."""

    signer_fingerprint: str
    signer_source: str
    files: dict[str, str]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes an envelope's signature is over."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_files(files: dict[str, str], private_key: ec.EllipticCurvePrivateKey, *,
               model_name: str = DEFAULT_MODEL_NAME) -> bytes:
    """Sign a bundle directory described by {relative path: sha256 hex}; return the `model.sig` bytes.

    `files` must list every file the directory will hold except `model.sig` itself
    (the model files plus `manifest.json` and `SHA256SUMS`), or `model_signing verify`
    reports the difference. `model_name` is the informational subject name (OMS
    uses the directory name). InvalidArtifact for a path that is not a plain
    relative name or that `model_signing` ignores (`.git*`, `model.sig`), or a
    digest that is not sha256 hex; UsageError for an empty map or unsupported key.
    """
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise UsageError("Signing needs an ECDSA private key (see modelreg.trust.keys.load_private_key).")
    public_key = private_key.public_key()
    check_supported_curve(public_key, "the signing key")
    if not files:
        raise UsageError("There are no files to sign; pass every file of the bundle, including "
                         f"{MANIFEST_NAME} and {SUMS_NAME}.")
    for path, digest in files.items():
        _check_signed_path(path)
        if path.split("/")[0] in IGNORE_PATHS:
            raise InvalidArtifact(f"Cannot sign {path!r}: model_signing ignores {path.split('/')[0]!r} "
                                  f"when it verifies a directory, so the signature could never match.")
        if not isinstance(digest, str) or not is_sha256_hex(digest):
            raise InvalidArtifact(f"Cannot sign {path!r}: {digest!r} is not a lowercase sha256 hex digest.")
    payload = json.dumps(_statement(files, model_name), indent=2).encode("utf-8")
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(signature_hash(public_key)))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": pem_hint(public_key)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"),
                            "keyid": key_fingerprint(public_key)}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode("utf-8")


def _statement(files: dict[str, str], model_name: str) -> dict:
    """The in-toto statement `model_signing` builds, with its key order.

    Resources are sorted as `model_signing` sorts paths (component by component, so
    `a/b` comes before `a.bin`); the subject digest is the sha256 over the raw
    32-byte digests in that order.
    """
    ordered = sorted(files, key=lambda path: path.split("/"))
    resources = [{"algorithm": "sha256", "digest": files[path], "name": path} for path in ordered]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": _root_digest(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "allow_symlinks": False, "hash_type": "sha256",
                              "ignore_paths": list(IGNORE_PATHS)},
            "resources": resources,
        },
    }


def _root_digest(resources: list[dict]) -> str:
    hasher = hashlib.sha256()
    for resource in resources:
        hasher.update(bytes.fromhex(resource["digest"]))
    return hasher.hexdigest()


def _check_signed_path(path) -> str:
    if path in (MANIFEST_NAME, SUMS_NAME):
        return path
    return check_bundle_path(path)


def verify_signature(signature: bytes, trusted_keys: list[tuple[str, ec.EllipticCurvePublicKey]]
                     ) -> SignatureCheck:
    """Check that a trusted key signed `signature`; return the signer and the files it covers.

    `trusted_keys` pairs each key with where it came from (e.g. its file path), used
    in messages and returned as `signer_source`. Only a statement whose signature
    verifies is read, and its subject digest must match its resources, as in
    `model_signing`. Raises UntrustedError when no trusted key verifies the
    signature (listing the trusted fingerprints), InvalidArtifact for a malformed
    bundle or a statement modelreg cannot use (not sha256 files serialization).
    """
    for source, key in trusted_keys:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise UsageError(f"The trusted key from {source} is not an ECDSA public key "
                             f"(see modelreg.trust.keys.load_public_key).")
        check_supported_curve(key, source)
    envelope = _envelope(signature)
    signed_bytes = pae(envelope["payloadType"], envelope["payload"])
    for sig in envelope["signatures"]:
        for source, key in trusted_keys:
            try:
                key.verify(sig, signed_bytes, ec.ECDSA(signature_hash(key)))
            except InvalidSignature:
                continue
            files = _signed_files(envelope["payload"])
            return SignatureCheck(signer_fingerprint=key_fingerprint(key), signer_source=source,
                                  files=files)
    raise UntrustedError(_untrusted_message(envelope, trusted_keys))


def _untrusted_message(envelope: dict, trusted_keys: list) -> str:
    claimed = next(iter(envelope["keyids"]), None)
    for _source, key in trusted_keys:
        if envelope["hint"] == pem_hint(key):
            claimed = key_fingerprint(key)
    if not trusted_keys:
        trusted = "there are no trusted keys configured"
    else:
        trusted = "the trusted keys are " + "; ".join(f"{key_fingerprint(key)} (from {source})"
                                                      for source, key in trusted_keys)
    if claimed and any(key_fingerprint(key) == claimed for _source, key in trusted_keys):
        what = (f"The signature names trusted key {claimed} but does not verify with it: the "
                f"signature or the statement it signs was altered. Do not use this bundle.")
    else:
        what = (f"The signature is not from any trusted key (it names "
                f"{claimed or 'no key fingerprint'}).")
    return (f"{what} {trusted[0].upper()}{trusted[1:]}. If you trust the signer, add their public "
            f"key (.pub PEM file) to trusted_keys in the modelreg configuration.")


def _envelope(signature: bytes) -> dict:
    """Parse a bundle without verifying: payloadType, payload, signatures, keyids, key hint."""
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise InvalidArtifact(f"The signature is {len(signature)} bytes, over the "
                              f"{MAX_SIGNATURE_BYTES} byte limit; it is not an OMS signature.")
    bundle = _json_object(signature, "The signature")
    media_type = bundle.get("mediaType")
    if media_type not in _ACCEPTED_MEDIA_TYPES:
        raise InvalidArtifact(f"The signature has mediaType {media_type!r}, not {BUNDLE_MEDIA_TYPE!r}; "
                              f"it is not an OpenSSF model signing bundle.")
    material = bundle.get("verificationMaterial")
    public_key = material.get("publicKey") if isinstance(material, dict) else None
    hint = public_key.get("hint") if isinstance(public_key, dict) else None
    dsse = bundle.get("dsseEnvelope")
    if not isinstance(dsse, dict):
        raise InvalidArtifact("The signature bundle has no dsseEnvelope; modelreg only reads "
                              "DSSE-signed OpenSSF model signing bundles.")
    if dsse.get("payloadType") != PAYLOAD_TYPE:
        raise InvalidArtifact(f"The signature's payloadType is {dsse.get('payloadType')!r}, not "
                              f"{PAYLOAD_TYPE!r}.")
    signatures = dsse.get("signatures")
    if not isinstance(signatures, list) or not signatures or \
            not all(isinstance(entry, dict) for entry in signatures):
        raise InvalidArtifact("The signature's DSSE envelope holds no signatures.")
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": _b64decode(dsse.get("payload"), "payload"),
        "signatures": [_b64decode(entry.get("sig"), "signature") for entry in signatures],
        "keyids": [entry["keyid"] for entry in signatures if _is_fingerprint(entry.get("keyid"))],
        "hint": hint,
    }


def _is_fingerprint(value) -> bool:
    return isinstance(value, str) and value.startswith("sha256:") and is_sha256_hex(value[7:])


def _b64decode(value, what: str) -> bytes:
    """Standard or URL-safe base64, padded or not (both are valid in DSSE and protobuf JSON)."""
    if not isinstance(value, str) or not value:
        raise InvalidArtifact(f"The signature's {what} is missing or not a base64 string.")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArtifact(f"The signature's {what} is not valid base64 ({exc}).") from exc


def _json_object(data: bytes, what: str) -> dict:
    try:
        value = json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArtifact(f"{what} is not valid UTF-8 JSON ({exc}).") from exc
    except RecursionError:
        raise InvalidArtifact(f"{what} is JSON nested too deeply to be an OpenSSF model signature.") from None
    if not isinstance(value, dict):
        raise InvalidArtifact(f"{what} is JSON but not an object.")
    return value


def _signed_files(payload: bytes) -> dict[str, str]:
    """The {path: sha256} of a verified OMS v1.0 statement, after checking its subject digest."""
    statement = _json_object(payload, "The signed statement")
    if statement.get("_type") != STATEMENT_TYPE:
        raise InvalidArtifact(f"The signed statement has _type {statement.get('_type')!r}, not "
                              f"{STATEMENT_TYPE!r}.")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise InvalidArtifact(f"The signed statement has predicateType "
                              f"{statement.get('predicateType')!r}, not {PREDICATE_TYPE!r}. Re-sign "
                              f"the bundle with model_signing 1.0 or later, or with modelreg.")
    try:
        subjects = statement["subject"]
        root = subjects[0]["digest"]["sha256"]
        predicate = statement["predicate"]
        serialization = predicate["serialization"]
        resources = predicate["resources"]
        if len(subjects) != 1 or not isinstance(resources, list):
            raise TypeError("expected one subject and a list of resources")
        method, hash_type = serialization["method"], serialization["hash_type"]
        entries = [(entry["name"], entry["algorithm"], entry["digest"]) for entry in resources]
    except (KeyError, IndexError, TypeError) as exc:
        raise InvalidArtifact(f"The signed statement is not an OpenSSF model signature "
                              f"({type(exc).__name__}: {exc}).") from exc
    if method != "files" or hash_type != "sha256":
        raise InvalidArtifact(f"The signature uses {method!r} serialization with {hash_type!r}; "
                              f"modelreg checks whole files by sha256. Re-sign with the defaults "
                              f"('model_signing sign key' without --hash/shard options) or modelreg.")
    files: dict[str, str] = {}
    for name, algorithm, digest in entries:
        if not isinstance(name, str):
            raise InvalidArtifact(f"The signature lists a file name {name!r} that is not a string.")
        if algorithm != "sha256" or not isinstance(digest, str) or not is_sha256_hex(digest):
            raise InvalidArtifact(f"The signature lists {name!r} with {algorithm!r} digest {digest!r}; "
                                  f"expected a sha256 hex digest.")
        if name in files:
            raise InvalidArtifact(f"The signature lists {name!r} twice.")
        files[_check_signed_path(name)] = digest
    actual_root = _root_digest([{"digest": digest} for _name, _algorithm, digest in entries])
    if actual_root != root:
        raise InvalidArtifact(f"The signed statement is inconsistent: its subject digest is {root}, "
                              f"but its resources hash to {actual_root}.")
    return files


def check_signed_files(check: SignatureCheck, expected: dict[str, str], subject: str) -> None:
    """UntrustedError unless the signature covers exactly `expected` ({path: sha256}).

    UntrustedError rather than IntegrityError: the signature itself is valid, but it
    vouches for different bytes than the ones about to be used (a manifest or file
    changed after signing), so the bundle is not one the signer approved. The
    message names the first differing path (by path order) with both digests.
    """
    differing = sorted(path for path in set(check.files) | set(expected)
                       if check.files.get(path) != expected.get(path))
    if not differing:
        return
    path = differing[0]
    signed, actual = check.files.get(path), expected.get(path)
    if signed is None:
        what = f"{subject} has {path!r} (sha256 {actual}), which its signature does not cover"
    elif actual is None:
        what = f"the signature of {subject} covers {path!r} (sha256 {signed}), which {subject} lacks"
    else:
        what = (f"the signature of {subject} covers {path!r} with sha256 {signed}, but {subject} "
                f"has sha256 {actual}")
    more = f" ({len(differing)} paths differ in all)" if len(differing) > 1 else ""
    raise UntrustedError(f"Signed by {check.signer_fingerprint} (from {check.signer_source}), but "
                         f"{what}{more}. The bundle changed after it was signed; do not use it "
                         f"unless the signer re-signs it.")


def claimed_files(signature: bytes) -> dict[str, str]:
    """The {path: sha256} a signature's statement lists, WITHOUT verifying the signature.

    Only for saying what an unverified signature would cover; InvalidArtifact for
    a malformed bundle or statement.
    """
    return _signed_files(_envelope(signature)["payload"])


def signer_of(signature: bytes) -> str | None:
    """The key fingerprint a signature claims to be from, WITHOUT verifying it.

    Only for display ("signed (unverified)"): anyone can write any fingerprint here.
    None when the bundle names none (e.g. one made by `model_signing`, which names
    keys only by a hash of their PEM); InvalidArtifact for a malformed bundle.
    """
    return next(iter(_envelope(signature)["keyids"]), None)
