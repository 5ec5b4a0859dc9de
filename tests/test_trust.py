"""Signatures, trusted keys and rollback protection, on every backend.

Checksums stop accidents; these tests are about someone who can write to the
remote and replaces blobs, manifests, signatures or tags.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelreg.config import Settings
from modelreg.errors import UntrustedError
from modelreg.hashing import hash_bytes
from modelreg.layout import SIGNATURE_NAME, blob_key, version_key
from modelreg.manifest import canonical_json
from modelreg.storage import open_storage
from modelreg.trust.keys import generate_keypair, key_fingerprint, load_public_key
from tests.helpers import make_bundle, run_cli

EXIT_UNTRUSTED = 4
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / "release")


@pytest.fixture
def bundle(settings: Settings, tmp_path: Path):
    return make_bundle(settings, "v9", {"best_model_v9.h5": b"weights" * 1000, "labels.npy": b"labels"},
                       tmp_path)


def trust(public_key: Path, workspace: Path | None = None) -> Path:
    """Trust a key the way a team would: commit it under manifests/trusted_keys/."""
    keys = (workspace or Path.cwd()) / "manifests" / "trusted_keys"
    keys.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(public_key, keys / public_key.name))


def new_consumer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str) -> Path:
    """Another machine: empty cache, its own workspace (no pins)."""
    workspace = tmp_path / f"consumer-{label}"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / f"cache-{label}"))
    return workspace


def test_signed_pull_is_checkable_by_openssf_model_signing(bundle, signer, target, tmp_path,
                                                           monkeypatch):
    private, public = signer
    out = run_cli("push", "v9", "--remote", target, "--sign", str(private))
    assert "Signed" in out.stdout
    workspace = new_consumer(tmp_path, monkeypatch, "a")
    trust(public, workspace)
    dest = tmp_path / "dest"
    out = run_cli("pull", "v9", "--remote", target, "--dest", str(dest))
    assert key_fingerprint(load_public_key(public)) in out.stdout
    assert (dest / SIGNATURE_NAME).is_file()
    check = subprocess.run([str(MODEL_SIGNING), "verify", "key", str(dest), "--signature",
                            str(dest / SIGNATURE_NAME), "--public_key", str(public)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "signed by" in run_cli("verify", str(dest), "--trusted-key", str(public)).stdout


def test_unsigned_bundle_is_refused_when_keys_are_trusted(bundle, signer, target, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target)
    workspace = new_consumer(tmp_path, monkeypatch, "a")
    trust(signer[1], workspace)
    out = run_cli("pull", "v9", "--remote", target, expect=EXIT_UNTRUSTED)
    assert "not signed" in out.stderr and "trusted_keys" in out.stderr


def test_bundle_signed_by_another_key_is_refused_naming_fingerprints(bundle, signer, target, tmp_path,
                                                                      monkeypatch):
    mallory_private, _ = generate_keypair(tmp_path / "keys" / "mallory")
    run_cli("push", "v9", "--remote", target, "--sign", str(mallory_private))
    workspace = new_consumer(tmp_path, monkeypatch, "a")
    trust(signer[1], workspace)
    out = run_cli("pull", "v9", "--remote", target, expect=EXIT_UNTRUSTED)
    assert key_fingerprint(load_public_key(signer[1])) in out.stderr
    assert "not from any trusted key" in out.stderr


def test_replaced_manifest_and_blob_are_refused_despite_matching_digests(bundle, signer, target, remote,
                                                                         tmp_path, monkeypatch):
    private, public = signer
    run_cli("push", "v9", "--remote", target, "--sign", str(private))
    evil = b"evil weights" * 1000
    raw = json.loads(bundle.to_bytes())
    raw["files"] = [dict(f, sha256=hash_bytes(evil), size=len(evil)) if f["path"] == "best_model_v9.h5"
                    else f for f in raw["files"]]
    storage = open_storage(remote)
    storage.write(blob_key(hash_bytes(evil)), evil)
    storage.write(version_key("emotion", "v9"), canonical_json(raw))
    storage.close()
    workspace = new_consumer(tmp_path, monkeypatch, "a")
    trust(public, workspace)
    dest = tmp_path / "dest"
    out = run_cli("pull", "v9", "--remote", target, "--dest", str(dest), expect=EXIT_UNTRUSTED)
    assert "changed after it was signed" in out.stderr
    assert not dest.exists()


def test_tampered_signature_is_refused(bundle, signer, target, remote, tmp_path, monkeypatch):
    private, public = signer
    run_cli("push", "v9", "--remote", target, "--sign", str(private))
    storage = open_storage(remote)
    key = version_key("emotion", "v9", SIGNATURE_NAME)
    sig = json.loads(storage_bytes(storage, key))
    envelope = sig["dsseEnvelope"]["signatures"][0]
    envelope["sig"] = envelope["sig"][:-8] + ("A" * 8 if not envelope["sig"].endswith("A" * 8) else "B" * 8)
    storage.write(key, json.dumps(sig).encode())
    storage.close()
    workspace = new_consumer(tmp_path, monkeypatch, "a")
    trust(public, workspace)
    out = run_cli("pull", "v9", "--remote", target, expect=None)
    assert out.returncode in (1, EXIT_UNTRUSTED) and "Traceback" not in out.stderr
    assert out.returncode != 0


def test_signature_swapped_in_from_another_version_is_refused(bundle, settings, signer, target, remote,
                                                              tmp_path, monkeypatch):
    private, public = signer
    run_cli("push", "v9", "--remote", target, "--sign", str(private))
    make_bundle(settings, "v10", {"best_model_v9.h5": b"other"}, tmp_path)
    run_cli("push", "v10", "--remote", target)
    storage = open_storage(remote)
    storage.write(version_key("emotion", "v10", SIGNATURE_NAME),
                  storage_bytes(storage, version_key("emotion", "v9", SIGNATURE_NAME)))
    storage.close()
    workspace = new_consumer(tmp_path, monkeypatch, "a")
    trust(public, workspace)
    out = run_cli("pull", "v10", "--remote", target, expect=EXIT_UNTRUSTED)
    assert "changed after it was signed" in out.stderr


def test_load_refuses_an_unsigned_cached_bundle_when_keys_are_trusted(bundle, signer):
    import modelreg

    trust(signer[1])
    with pytest.raises(UntrustedError, match="not signed"):
        modelreg.load("v9")


def test_directory_signed_by_openssf_tool_is_accepted_by_verify(bundle, signer, target, tmp_path):
    private, public = signer
    run_cli("push", "v9", "--remote", target)
    dest = tmp_path / "dest"
    run_cli("pull", "v9", "--remote", target, "--dest", str(dest))
    signed = subprocess.run([str(MODEL_SIGNING), "sign", "key", str(dest), "--private_key", str(private),
                             "--signature", str(dest / SIGNATURE_NAME)], capture_output=True, text=True,
                            timeout=120)
    assert signed.returncode == 0, signed.stderr
    out = run_cli("verify", str(dest), "--trusted-key", str(public))
    assert key_fingerprint(load_public_key(public)) in out.stdout
    (dest / "labels.npy").write_bytes(b"changed")
    run_cli("verify", str(dest), "--trusted-key", str(public), expect=3)


def test_tag_moved_back_to_an_older_version_is_reported(settings, target, tmp_path, monkeypatch):
    make_bundle(settings, "v1", {"w.bin": b"one"}, tmp_path)
    time.sleep(1.1)  # manifests record creation time to the second
    make_bundle(settings, "v2", {"w.bin": b"two"}, tmp_path)
    run_cli("push", "v1", "--remote", target)
    run_cli("push", "v2", "--remote", target)
    run_cli("tag", "v2", "production", "--remote", target)
    new_consumer(tmp_path, monkeypatch, "a")
    run_cli("pull", "production", "--remote", target)
    run_cli("tag", "v1", "production", "--remote", target)
    out = run_cli("pull", "production", "--remote", target, expect=EXIT_UNTRUSTED)
    assert "moved back from v2" in out.stderr and "--allow-downgrade" in out.stderr
    allowed = run_cli("pull", "production", "--remote", target, "--allow-downgrade")
    assert "emotion:v1" in allowed.stdout and "moved back" in allowed.stderr


def test_show_reports_who_signed(bundle, signer, target):
    private, public = signer
    run_cli("push", "v9", "--remote", target, "--sign", str(private))
    fingerprint = key_fingerprint(load_public_key(public))
    assert f"signed by {fingerprint}" in run_cli("show", "v9", "--remote", target).stdout
    trust(public)
    shown = json.loads(run_cli("show", "v9", "--remote", target, "--json").stdout)
    assert shown["signature"].startswith(f"signed by {fingerprint} (verified")


def test_keygen_writes_a_private_key_only_the_owner_can_read(tmp_path):
    out = run_cli("keygen", str(tmp_path / "team"))
    assert (tmp_path / "team").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "team.pub").is_file() and "sha256:" in out.stdout
    again = run_cli("keygen", str(tmp_path / "team"), expect=1)
    assert "exists" in again.stderr


def storage_bytes(storage, key: str) -> bytes:
    from modelreg.remote.index import read_small

    data = read_small(storage, key)
    assert data is not None
    return data
