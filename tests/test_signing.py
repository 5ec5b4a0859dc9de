"""Signing keys and `model.sig` in the OpenSSF Model Signing format.

The interop tests run the real `model_signing` CLI (model-signing 1.1.1, a test
dependency) both ways: it must accept what `sign_files` writes, and
`verify_signature` must accept what it writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from modelreg.errors import AlreadyExists, InvalidArtifact, NotFound, UntrustedError, UsageError
from modelreg.trust.signing import (
    PAYLOAD_TYPE,
    SignatureCheck,
    check_signed_files,
    generate_keypair,
    key_fingerprint,
    load_private_key,
    load_public_key,
    pae,
    sign_files,
    signer_of,
    verify_signature,
)

MODEL_SIGNING = Path(sys.executable).with_name("model_signing")
FILES = {
    "best_model_v9.h5": "a" * 64,
    "labels.json": "b" * 64,
    "manifest.json": "c" * 64,
    "SHA256SUMS": "d" * 64,
}


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / "signing.key")


@pytest.fixture
def private_key(keypair):
    return load_private_key(keypair[0])


@pytest.fixture
def trusted(keypair) -> list:
    return [(str(keypair[1]), load_public_key(keypair[1]))]


def write_model_dir(directory: Path) -> dict[str, str]:
    """A small bundle directory (nested path included); returns {relative path: sha256}."""
    contents = {
        "best_model_v9.h5": os.urandom(4096),
        "extra/notes.txt": b"trained on wav2vec features\n",
        "extra.bin": b"\x00\x01",
        "manifest.json": b'{"name":"emotion","version":"v9"}',
    }
    contents["SHA256SUMS"] = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                     for name, data in sorted(contents.items())).encode()
    for name, data in contents.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return digests_of(directory)


def digests_of(directory: Path) -> dict[str, str]:
    return {path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in directory.rglob("*") if path.is_file() and path.name != "model.sig"}


def model_signing(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODEL_SIGNING), *args], capture_output=True, text=True, timeout=120)


def statement_of(signature: bytes) -> tuple[dict, bytes]:
    payload = base64.b64decode(json.loads(signature)["dsseEnvelope"]["payload"])
    return json.loads(payload), payload


def resign(signature: bytes, key, change) -> bytes:
    """A validly signed bundle whose statement `change(statement)` altered."""
    bundle = json.loads(signature)
    statement, _payload = statement_of(signature)
    change(statement)
    payload = json.dumps(statement).encode()
    sig = key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(sig).decode()
    return json.dumps(bundle).encode()


# --- keys -----------------------------------------------------------------------------------

def test_generate_keypair_writes_private_key_0600_and_public_key(tmp_path):
    key_dir = tmp_path / "keys"
    private_path, public_path = generate_keypair(key_dir / "signing.key")

    assert public_path == key_dir / "signing.key.pub"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_private_key(private_path).curve.name == "secp256r1"
    assert key_fingerprint(load_private_key(private_path).public_key()) == \
        key_fingerprint(load_public_key(public_path))
    assert sorted(p.name for p in key_dir.iterdir()) == ["signing.key", "signing.key.pub"]


def test_generate_keypair_refuses_to_overwrite_an_existing_key(tmp_path, keypair):
    before = keypair[0].read_bytes()

    with pytest.raises(AlreadyExists, match="never overwrites"):
        generate_keypair(keypair[0])

    assert keypair[0].read_bytes() == before


def test_generate_keypair_refuses_when_only_the_public_key_exists(tmp_path):
    (tmp_path / "signing.key.pub").write_text("old")

    with pytest.raises(AlreadyExists):
        generate_keypair(tmp_path / "signing.key")

    assert not (tmp_path / "signing.key").exists()


def test_encrypted_key_round_trips_with_its_passphrase(tmp_path):
    private_path, public_path = generate_keypair(tmp_path / "k", passphrase=b"correct horse")

    assert b"ENCRYPTED PRIVATE KEY" in private_path.read_bytes()
    key = load_private_key(private_path, b"correct horse")
    assert key_fingerprint(key.public_key()) == key_fingerprint(load_public_key(public_path))


def test_wrong_passphrase_is_a_clear_usage_error(tmp_path):
    private_path, _ = generate_keypair(tmp_path / "k", passphrase=b"correct horse")

    with pytest.raises(UsageError, match="Wrong passphrase"):
        load_private_key(private_path, b"battery staple")


def test_encrypted_key_without_passphrase_asks_for_it(tmp_path):
    private_path, _ = generate_keypair(tmp_path / "k", passphrase=b"correct horse")

    with pytest.raises(UsageError, match="encrypted; give its passphrase"):
        load_private_key(private_path)


def test_missing_key_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        load_private_key(tmp_path / "nope.key")
    with pytest.raises(NotFound, match="does not exist"):
        load_public_key(tmp_path / "nope.pub")


@pytest.mark.parametrize("make_key, kind", [
    (ed25519.Ed25519PrivateKey.generate, "Ed25519"),
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA"),
    (lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1"),
])
def test_keys_oms_cannot_use_are_refused_with_the_reason(tmp_path, make_key, kind):
    key = make_key()
    private_path, public_path = tmp_path / "k", tmp_path / "k.pub"
    private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    for load in (load_private_key, load_public_key):
        path = private_path if load is load_private_key else public_path
        with pytest.raises(InvalidArtifact, match=f"{kind}.*needs an ECDSA key on P-256, P-384 or P-521"):
            load(path)


def test_public_key_loader_refuses_a_private_key(keypair):
    with pytest.raises(InvalidArtifact, match="holds a private key"):
        load_public_key(keypair[0])


def test_fingerprint_is_sha256_of_der_subject_public_key_info(private_key):
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)

    assert key_fingerprint(private_key.public_key()) == "sha256:" + hashlib.sha256(der).hexdigest()


# --- sign and verify ------------------------------------------------------------------------

def test_signed_files_verify_with_the_signing_key(private_key, trusted):
    check = verify_signature(sign_files(FILES, private_key), trusted)

    assert check == SignatureCheck(key_fingerprint(private_key.public_key()), trusted[0][0], FILES)


def test_p384_keys_sign_and_verify():
    key = ec.generate_private_key(ec.SECP384R1())

    check = verify_signature(sign_files(FILES, key), [("p384", key.public_key())])

    assert check.files == FILES


def test_signature_from_another_key_is_untrusted_and_names_trusted_fingerprints(trusted):
    other = ec.generate_private_key(ec.SECP256R1())
    signature = sign_files(FILES, other)

    with pytest.raises(UntrustedError) as caught:
        verify_signature(signature, trusted)

    message = str(caught.value)
    assert "not from any trusted key" in message
    assert key_fingerprint(other.public_key()) in message
    assert f"{key_fingerprint(trusted[0][1])} (from {trusted[0][0]})" in message
    assert "trusted_keys" in message


def test_no_trusted_keys_is_untrusted(private_key):
    with pytest.raises(UntrustedError, match="no trusted keys configured"):
        verify_signature(sign_files(FILES, private_key), [])


def test_tampered_signature_bytes_are_untrusted(private_key, trusted):
    bundle = json.loads(sign_files(FILES, private_key))
    sig = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

    with pytest.raises(UntrustedError, match="altered"):
        verify_signature(json.dumps(bundle).encode(), trusted)


def test_payload_swapped_from_another_signature_is_untrusted(private_key, trusted):
    bundle = json.loads(sign_files(FILES, private_key))
    other = json.loads(sign_files({**FILES, "labels.json": "e" * 64}, private_key))
    bundle["dsseEnvelope"]["payload"] = other["dsseEnvelope"]["payload"]

    with pytest.raises(UntrustedError):
        verify_signature(json.dumps(bundle).encode(), trusted)


def _set(path: list, value):
    def change(bundle: dict) -> None:
        target = bundle
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


@pytest.mark.parametrize("corrupt, message", [
    (lambda sig: b"not json", "not valid UTF-8 JSON"),
    (lambda sig: b"[1, 2]", "not an object"),
    (_set(["mediaType"], "application/json"), "mediaType"),
    (_set(["dsseEnvelope", "payloadType"], "text/plain"), "payloadType"),
    (_set(["dsseEnvelope", "payload"], "%%% not base64 %%%"), "payload is not valid base64"),
    (_set(["dsseEnvelope", "signatures"], []), "holds no signatures"),
    (_set(["dsseEnvelope"], None), "no dsseEnvelope"),
])
def test_malformed_bundles_are_invalid_artifacts(private_key, trusted, corrupt, message):
    bundle = json.loads(sign_files(FILES, private_key))
    result = corrupt(bundle)
    data = result if isinstance(result, bytes) else json.dumps(bundle).encode()

    with pytest.raises(InvalidArtifact, match=message):
        verify_signature(data, trusted)


@pytest.mark.parametrize("change, message", [
    (_set(["predicateType"], "https://model_signing/Digests/v0.1"), "predicateType"),
    (_set(["_type"], "https://in-toto.io/Statement/v0.1"), "_type"),
    (_set(["subject", 0, "digest", "sha256"], "0" * 64), "inconsistent"),
    (_set(["predicate", "serialization", "hash_type"], "blake3"), "'blake3'"),
    (_set(["predicate", "resources", 0, "name"], "../escape"), "Refusing bundle file path"),
    (_set(["predicate", "resources"], "everything"), "not an OpenSSF model signature"),
])
def test_signed_statements_modelreg_cannot_use_are_invalid_artifacts(private_key, trusted, change,
                                                                     message):
    signature = resign(sign_files(FILES, private_key), private_key, change)

    with pytest.raises(InvalidArtifact, match=message):
        verify_signature(signature, trusted)


@pytest.mark.parametrize("files, message", [
    ({"../escape": "a" * 64}, "Refusing bundle file path"),
    ({"model.sig": "a" * 64}, "reserved"),
    ({".git/config": "a" * 64}, "model_signing ignores '.git'"),
    ({"weights.h5": "A" * 64}, "not a lowercase sha256"),
])
def test_sign_files_refuses_paths_and_digests_it_cannot_sign(private_key, files, message):
    with pytest.raises(InvalidArtifact, match=message):
        sign_files(files, private_key)


def test_signer_of_reads_the_fingerprint_hint_without_verifying(private_key):
    assert signer_of(sign_files(FILES, private_key)) == key_fingerprint(private_key.public_key())


# --- signed file set vs the bundle ---------------------------------------------------------

@pytest.fixture
def check(private_key, trusted) -> SignatureCheck:
    return verify_signature(sign_files(FILES, private_key), trusted)


def test_check_signed_files_accepts_exactly_the_signed_files(check):
    check_signed_files(check, dict(FILES), "emotion:v9")


def test_check_signed_files_catches_a_changed_digest(check):
    with pytest.raises(UntrustedError, match=f"covers 'labels.json' with sha256 {'b' * 64}, but "
                                             f"emotion:v9 has sha256 {'f' * 64}"):
        check_signed_files(check, {**FILES, "labels.json": "f" * 64}, "emotion:v9")


def test_check_signed_files_catches_an_extra_file(check):
    with pytest.raises(UntrustedError, match="has 'backdoor.py' .* which its signature does not cover"):
        check_signed_files(check, {**FILES, "backdoor.py": "e" * 64}, "emotion:v9")


def test_check_signed_files_catches_a_missing_file(check):
    expected = {path: digest for path, digest in FILES.items() if path != "labels.json"}

    with pytest.raises(UntrustedError, match="covers 'labels.json' .* which emotion:v9 lacks"):
        check_signed_files(check, expected, "emotion:v9")


# --- interop with the model_signing CLI ----------------------------------------------------

def test_model_signing_verifies_our_signature_and_rejects_a_modified_file(tmp_path, keypair,
                                                                          private_key):
    model_dir = tmp_path / "emotion"
    model_dir.mkdir()
    files = write_model_dir(model_dir)
    (model_dir / "model.sig").write_bytes(sign_files(files, private_key, model_name="emotion"))
    verify = ("verify", "key", str(model_dir), "--signature", str(model_dir / "model.sig"),
              "--public_key", str(keypair[1]))

    accepted = model_signing(*verify)
    (model_dir / "extra" / "notes.txt").write_bytes(b"trained on something else\n")
    rejected = model_signing(*verify)

    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert rejected.returncode != 0
    assert "extra/notes.txt" in rejected.stdout + rejected.stderr


def test_we_verify_a_model_signing_signature_and_write_the_same_statement(tmp_path, keypair,
                                                                          private_key, trusted):
    model_dir = tmp_path / "emotion"
    model_dir.mkdir()
    write_model_dir(model_dir)
    signed = model_signing("sign", "key", str(model_dir), "--private_key", str(keypair[0]),
                           "--signature", str(model_dir / "model.sig"))
    assert signed.returncode == 0, signed.stdout + signed.stderr
    theirs = (model_dir / "model.sig").read_bytes()

    check = verify_signature(theirs, trusted)
    check_signed_files(check, digests_of(model_dir), str(model_dir))

    assert check.signer_fingerprint == key_fingerprint(trusted[0][1])
    assert signer_of(theirs) is None
    their_statement, their_payload = statement_of(theirs)
    our_statement, _ = statement_of(sign_files(check.files, private_key, model_name="emotion"))
    assert json.dumps(their_statement, indent=2).encode() == their_payload
    assert sorted(their_statement["predicate"]["serialization"]["ignore_paths"]) == \
        sorted(our_statement["predicate"]["serialization"]["ignore_paths"])
    their_statement["predicate"]["serialization"]["ignore_paths"] = \
        our_statement["predicate"]["serialization"]["ignore_paths"]
    assert our_statement == their_statement
    their_bundle, our_bundle = json.loads(theirs), json.loads(sign_files(check.files, private_key))
    assert our_bundle["verificationMaterial"] == their_bundle["verificationMaterial"]
    assert list(our_bundle) == list(their_bundle)
