"""`modelreg push REF --repair`: a remote copy that was damaged or lost is mended from the verified cache.

Without it a push answers "nothing to do" (or counts a same-size damaged blob as
there) and the pull keeps failing. Runs on every backend.
"""

from __future__ import annotations

import io
import json
import os

import pytest

from modelreg.layout import SIGNATURE_NAME, SUMS_NAME, blob_key, version_key
from modelreg.local.cache import Cache
from modelreg.manifest import canonical_json
from modelreg.refs import Ref
from modelreg.storage import open_storage
from tests.helpers import make_bundle, run_cli


@pytest.fixture
def bundle(settings, tmp_path, target):
    manifest = make_bundle(settings, "v9", {"a.bin": os.urandom(200_000), "b.bin": os.urandom(3000)},
                           tmp_path)
    run_cli("push", "v9", "--remote", target)
    return manifest


@pytest.fixture
def fresh_cache(tmp_path):
    """Environment for a second machine (an empty cache) that pulls what the remote holds."""
    return {"MODELREG_CACHE": str(tmp_path / "other-cache")}


def damage(remote, key: str, data: bytes | None) -> None:
    with open_storage(remote) as storage:
        if data is None:
            storage.delete(key)
        else:
            storage.write(key, data)


def test_repair_replaces_a_blob_damaged_in_place_that_push_counts_as_there(bundle, remote, target,
                                                                           fresh_cache):
    entry = next(e for e in bundle.files if e.path == "a.bin")
    damage(remote, blob_key(entry.sha256), os.urandom(entry.size))  # same size: a plain push trusts it
    run_cli("pull", "v9", "--remote", target, env=fresh_cache, expect=3)
    assert "nothing to do" in run_cli("push", "v9", "--remote", target).stdout

    out = run_cli("push", "v9", "--repair", "--remote", target)

    assert f"REPAIRED  a.bin  {entry.sha256}" in out.stdout
    assert "2 blob(s) checked" in out.stdout and "1 replaced" in out.stdout and "1 good" in out.stdout
    run_cli("pull", "v9", "--remote", target, env=fresh_cache)


def test_repair_replaces_a_deleted_blob(bundle, remote, target, fresh_cache):
    entry = next(e for e in bundle.files if e.path == "b.bin")
    damage(remote, blob_key(entry.sha256), None)
    failed = run_cli("pull", "v9", "--remote", target, env=fresh_cache, expect=1)
    assert "modelreg push emotion:v9 --repair" in failed.stderr

    out = run_cli("push", "v9", "--repair", "--remote", target)

    assert "REPAIRED  b.bin" in out.stdout and "(missing)" in out.stdout
    run_cli("pull", "v9", "--remote", target, env=fresh_cache)


def test_repair_restores_a_deleted_manifest_and_sha256sums(bundle, remote, target, fresh_cache):
    damage(remote, version_key("emotion", "v9"), None)
    damage(remote, version_key("emotion", "v9", SUMS_NAME), None)
    run_cli("pull", "v9", "--remote", target, env=fresh_cache, expect=1)

    out = run_cli("push", "v9", "--repair", "--remote", target)

    assert "manifest.json restored" in out.stdout and f"{SUMS_NAME} restored" in out.stdout
    assert "0 replaced" in out.stdout and "2 good" in out.stdout
    run_cli("pull", "v9", "--remote", target, env=fresh_cache)
    with open_storage(remote) as storage:
        assert storage.stat(version_key("emotion", "v9", SUMS_NAME)) == len(bundle.sha256sums())


def test_repair_rewrites_a_damaged_sha256sums(bundle, remote, target):
    damage(remote, version_key("emotion", "v9", SUMS_NAME), b"0" * 64 + b"  a.bin\n")

    out = run_cli("push", "v9", "--repair", "--remote", target)

    assert f"{SUMS_NAME} rewritten" in out.stdout
    buffer = io.BytesIO()
    with open_storage(remote) as storage:
        storage.read(version_key("emotion", "v9", SUMS_NAME), buffer)
    assert buffer.getvalue().decode() == bundle.sha256sums()


def test_repair_refuses_a_different_manifest_under_the_version_and_changes_nothing(bundle, remote, target):
    entry = next(e for e in bundle.files if e.path == "b.bin")
    other = canonical_json({**json.loads(bundle.to_bytes()), "metrics": {"acc": 0.1}})
    damage(remote, version_key("emotion", "v9"), other)
    damage(remote, blob_key(entry.sha256), None)

    out = run_cli("push", "v9", "--repair", "--remote", target, expect=1)

    assert "different content" in out.stderr and "immutable" in out.stderr
    with open_storage(remote) as storage:
        assert storage.stat(blob_key(entry.sha256)) is None


def test_repair_restores_a_missing_signature_from_the_cache(settings, bundle, remote, target, tmp_path):
    key = tmp_path / "release.key"
    run_cli("keygen", str(key))
    damage(remote, version_key("emotion", "v9"), None)  # so that the signed push publishes again
    run_cli("push", "v9", "--sign", str(key), "--remote", target)
    signature = Cache(settings.cache_dir).read_signature(Ref("emotion", "v9"))
    assert signature is not None
    damage(remote, version_key("emotion", "v9", SIGNATURE_NAME), None)

    out = run_cli("push", "v9", "--repair", "--remote", target)

    assert f"{SIGNATURE_NAME} restored" in out.stdout
    with open_storage(remote) as storage:
        assert storage.stat(version_key("emotion", "v9", SIGNATURE_NAME)) == len(signature)


def test_repair_of_an_intact_version_checks_everything_and_changes_nothing(bundle, target):
    out = run_cli("push", "v9", "--repair", "--remote", target)

    assert "REPAIRED" not in out.stdout
    assert "2 blob(s) checked by reading them back, 0 replaced from the verified cache, 2 good" in out.stdout
    assert "manifest.json good" in out.stdout and f"{SUMS_NAME} good" in out.stdout
