"""`modelreg copy` and `modelreg mirror`: versions move between two real registries, verified.

Pairs of backends run at once (file -> s3, s3 -> ssh, ssh -> file), each on its real server.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modelreg.config import RemoteSpec, Settings
from modelreg.hashing import hash_bytes
from modelreg.layout import SIGNATURE_NAME, blob_key
from modelreg.storage import open_storage
from modelreg.trust.keys import generate_keypair
from tests.helpers import make_bundle, register_remote, run_cli
from tests.test_trust import MODEL_SIGNING, new_consumer, trust

WEIGHTS = b"weights" * 5000
EXIT_USAGE, EXIT_INTEGRITY, EXIT_UNTRUSTED = 2, 3, 4
PAIRS = [("file", "s3"), ("s3", "ssh"), ("ssh", "file")]


@pytest.fixture(params=PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def pair(request: pytest.FixtureRequest, settings: Settings) -> tuple[RemoteSpec, RemoteSpec]:
    """Two fresh registries on two backends, registered as the remotes 'a' and 'b'."""
    source, dest = (request.getfixturevalue(f"{kind}_remote") for kind in request.param)
    register_remote(settings, source, "a")
    register_remote(settings, dest, "b")
    return source, dest


@pytest.fixture
def file_pair(settings: Settings, file_remote: RemoteSpec, tmp_path: Path) -> tuple[RemoteSpec, RemoteSpec]:
    dest = RemoteSpec(url=(tmp_path / "registry-b").as_uri())
    register_remote(settings, file_remote, "a")
    register_remote(settings, dest, "b")
    return file_remote, dest


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys" / "release")


@pytest.fixture
def bundle(settings: Settings, tmp_path: Path):
    return make_bundle(settings, "v9", {"best_model_v9.h5": WEIGHTS, "labels.npy": b"labels"}, tmp_path)


def keys_on(spec: RemoteSpec, prefix: str = "") -> list[str]:
    with open_storage(spec) as storage:
        return storage.list(prefix)


def test_copy_keeps_the_signature_valid_for_model_signing(bundle, signer, pair, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", "a", "--sign", str(signer[0]))
    run_cli("tag", "v9", "production", "--remote", "a")
    workspace = new_consumer(tmp_path, monkeypatch, "copier")
    trust(signer[1], workspace)

    out = json.loads(run_cli("copy", "production", "--from", "a", "--to", "b", "--tags", "--json").stdout)

    assert out["ref"] == "emotion:v9" and out["tags"] == ["emotion:production"]
    assert out["bytes_copied"] == len(WEIGHTS) + len(b"labels") and out["signature_copied"]
    assert not (tmp_path / "cache-copier" / "manifests").exists()
    new_consumer(tmp_path, monkeypatch, "reader")
    dest = tmp_path / "dest"
    run_cli("pull", "production", "--remote", "b", "--dest", str(dest), "--workspace", str(workspace))
    assert (dest / "best_model_v9.h5").read_bytes() == WEIGHTS
    check = subprocess.run([str(MODEL_SIGNING), "verify", "key", str(dest), "--signature",
                            str(dest / SIGNATURE_NAME), "--public_key", str(signer[1])],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_copy_refuses_a_tampered_blob_and_publishes_nothing(bundle, pair, tmp_path, monkeypatch):
    source, dest = pair
    run_cli("push", "v9", "--remote", "a")
    with open_storage(source) as storage:
        storage.write(blob_key(hash_bytes(WEIGHTS)), b"Z" * len(WEIGHTS))
    new_consumer(tmp_path, monkeypatch, "copier")

    out = run_cli("copy", "v9", "--from", "a", "--to", "b", expect=EXIT_INTEGRITY)

    assert "failed verification" in out.stderr and "Traceback" not in out.stderr
    assert keys_on(dest, "models/") == [] and keys_on(dest, blob_key(hash_bytes(WEIGHTS))) == []


def test_copy_refuses_an_unsigned_version_when_keys_are_trusted(bundle, signer, file_pair, tmp_path,
                                                                monkeypatch):
    run_cli("push", "v9", "--remote", "a")
    workspace = new_consumer(tmp_path, monkeypatch, "copier")
    trust(signer[1], workspace)

    out = run_cli("copy", "v9", "--from", "a", "--to", "b", expect=EXIT_UNTRUSTED)

    assert "not signed" in out.stderr
    assert keys_on(file_pair[1]) == []


def test_copy_again_is_a_no_op(bundle, file_pair):
    run_cli("push", "v9", "--remote", "a")
    first = json.loads(run_cli("copy", "v9", "--from", "a", "--to", "b", "--json").stdout)

    again = json.loads(run_cli("copy", "v9", "--from", "a", "--to", "b", "--json").stdout)

    assert not first["already_there"] and len(first["copied"]) == 2
    assert again["already_there"] and again["copied"] == [] and len(again["present"]) == 2


def test_copy_refuses_a_different_version_on_the_destination(bundle, file_pair, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", "a")
    new_consumer(tmp_path, monkeypatch, "other-team")
    make_bundle(Settings.resolve(), "v9", {"best_model_v9.h5": b"another model"}, tmp_path / "other")
    run_cli("push", "v9", "--remote", "b")
    theirs = keys_on(file_pair[1])
    new_consumer(tmp_path, monkeypatch, "copier")

    out = run_cli("copy", "v9", "--from", "a", "--to", "b", expect=1)

    assert "different manifest" in out.stderr and "nothing was replaced" in out.stderr
    assert keys_on(file_pair[1]) == theirs


def test_copy_with_offline_is_refused(bundle, file_pair):
    run_cli("push", "v9", "--remote", "a")
    out = run_cli("copy", "v9", "--from", "a", "--to", "b", "--offline", expect=EXIT_USAGE)
    assert "--offline" in out.stderr
    assert keys_on(file_pair[1]) == []


def test_mirror_copies_what_the_destination_lacks(bundle, settings, pair, tmp_path, monkeypatch):
    make_bundle(settings, "v10", {"best_model_v9.h5": b"v10 weights"}, tmp_path)
    run_cli("push", "v9", "--remote", "a")
    run_cli("push", "v10", "--remote", "a")
    run_cli("tag", "v10", "production", "--remote", "a")
    run_cli("copy", "v9", "--from", "a", "--to", "b")
    new_consumer(tmp_path, monkeypatch, "mirror")

    planned = json.loads(run_cli("mirror", "--from", "a", "--to", "b", "--dry-run", "--json").stdout)
    assert planned["missing"] == ["emotion:v10"] and planned["copied"] == []
    assert keys_on(pair[1], "models/emotion/v10/") == []

    done = json.loads(run_cli("mirror", "--from", "a", "--to", "b", "--tags", "--json").stdout)
    assert [c["ref"] for c in done["copied"]] == ["emotion:v10"] and done["tags"] == ["emotion:production"]
    again = run_cli("mirror", "--from", "a", "--to", "b")
    assert "0 version(s)" in again.stdout
    dest = tmp_path / "dest"
    run_cli("pull", "production", "--remote", "b", "--dest", str(dest))
    assert (dest / "best_model_v9.h5").read_bytes() == b"v10 weights"


def test_copy_carries_a_yank_so_the_version_stays_withdrawn(bundle, pair, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", "a")
    run_cli("tag", "v9", "production", "--remote", "a")
    run_cli("yank", "v9", "--reason", "labels shifted by one", "--remote", "a")
    new_consumer(tmp_path, monkeypatch, "copier")

    out = json.loads(run_cli("copy", "v9", "--from", "a", "--to", "b", "--tags", "--json").stdout)

    assert out["yank_copied"] and out["tags"] == ["emotion:production"]
    new_consumer(tmp_path, monkeypatch, "reader")
    refused = run_cli("pull", "v9", "--remote", "b", expect=EXIT_UNTRUSTED)
    assert "labels shifted by one" in refused.stderr
    history = json.loads(run_cli("tag-history", "production", "--remote", "b", "--json").stdout)
    assert [move["new"]["version"] for move in history["moves"]] == ["v9"]
