"""Push, pull, tag and verify through the real CLI, against every backend (file, S3, SSH).

The bundles here are arbitrary files (no model machinery), so these tests are
about transport guarantees: dedupe, manifests last and create-only, verification
while streaming, nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from modelreg.config import Settings
from modelreg.layout import blob_key, version_key
from modelreg.storage import open_storage
from tests.helpers import make_bundle, run_cli

EXIT_VERIFY = 3


@pytest.fixture
def bundle(settings: Settings, tmp_path: Path):
    return make_bundle(settings, "v9", {"weights.h5": os.urandom(300_000), "labels.npy": b"labels",
                                        "mean.npy": b"mean" * 100}, tmp_path)


def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str) -> Path:
    """Pretend to be another machine: a new empty cache (same config and remotes)."""
    cache = tmp_path / f"cache-{label}"
    monkeypatch.setenv("MODELREG_CACHE", str(cache))
    return cache


def leftovers(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and
                  (".incoming" in p.name or p.name.endswith((".partial", ".tmp"))))


def test_push_then_pull_round_trips_every_file(bundle, target, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target)
    cache = fresh_cache(tmp_path, monkeypatch, "other-machine")
    dest = tmp_path / "models"
    out = run_cli("pull", "v9", "--remote", target, "--dest", str(dest))
    assert "all verified" in out.stdout
    for entry in bundle.files:
        assert hashlib.sha256((dest / entry.path).read_bytes()).hexdigest() == entry.sha256
    assert (dest / "manifest.json").read_bytes() == bundle.to_bytes()
    assert (dest / "SHA256SUMS").read_text() == bundle.sha256sums()
    assert leftovers(cache) == [] and leftovers(dest) == []
    run_cli("verify", str(dest))
    run_cli("verify", "v9")


def test_second_push_of_identical_bundle_is_a_noop(bundle, target):
    run_cli("push", "v9", "--remote", target)
    again = run_cli("push", "v9", "--remote", target)
    assert "nothing to do" in again.stdout


def test_push_uploads_only_blobs_the_remote_lacks(bundle, settings, target, tmp_path):
    run_cli("push", "v9", "--remote", target)
    shared = {"labels.npy": b"labels", "mean.npy": b"mean" * 100}
    make_bundle(settings, "v10", {"weights.h5": os.urandom(1000), **shared}, tmp_path)
    out = run_cli("push", "v10", "--remote", target)
    assert "1 blob(s) uploaded" in out.stdout and "2 already there" in out.stdout


def test_push_refuses_different_content_under_an_existing_version(bundle, settings, target, tmp_path,
                                                                   monkeypatch):
    run_cli("push", "v9", "--remote", target)
    other_home = tmp_path / "other-home"
    monkeypatch.setenv("MODELREG_CACHE", str(other_home / "cache"))
    other_workspace = tmp_path / "other-workspace"
    other_workspace.mkdir()
    monkeypatch.chdir(other_workspace)
    make_bundle(Settings.resolve(), "v9", {"weights.h5": b"different"}, tmp_path / "other")
    out = run_cli("push", "v9", "--remote", target, expect=1)
    assert "already exists" in out.stderr and "new version name" in out.stderr
    assert "Traceback" not in out.stderr


def test_pull_refuses_tampered_blob_and_materializes_nothing(bundle, target, remote, tmp_path,
                                                              monkeypatch):
    run_cli("push", "v9", "--remote", target)
    weights = next(e for e in bundle.files if e.path == "weights.h5")
    storage = open_storage(remote)
    tampered = bytearray(os.urandom(weights.size))
    storage.write(blob_key(weights.sha256), bytes(tampered))
    storage.close()
    cache = fresh_cache(tmp_path, monkeypatch, "victim")
    dest = tmp_path / "dest"
    out = run_cli("pull", "v9", "--remote", target, "--dest", str(dest), expect=EXIT_VERIFY)
    assert "weights.h5" in out.stderr and weights.sha256 in out.stderr
    assert "Traceback" not in out.stderr
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not cache.joinpath(*blob_key(weights.sha256).split("/")).exists()
    assert leftovers(cache) == []


def test_pull_refuses_blob_larger_than_declared(bundle, target, remote, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target)
    labels = next(e for e in bundle.files if e.path == "labels.npy")
    storage = open_storage(remote)
    storage.write(blob_key(labels.sha256), b"labels" + os.urandom(5_000_000))
    storage.close()
    cache = fresh_cache(tmp_path, monkeypatch, "victim")
    out = run_cli("pull", "v9", "--remote", target, expect=EXIT_VERIFY)
    assert "larger than" in out.stderr
    assert leftovers(cache) == []


def test_pull_refuses_remote_manifest_that_differs_from_the_pin(bundle, settings, target, remote,
                                                               tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target)
    storage = open_storage(remote)
    raw = json.loads(bundle.to_bytes())
    raw["metrics"] = {"val_accuracy": 0.99}
    from modelreg.manifest import canonical_json

    storage.write(version_key("emotion", "v9"), canonical_json(raw))
    storage.close()
    fresh_cache(tmp_path, monkeypatch, "victim")
    out = run_cli("pull", "v9", "--remote", target, expect=EXIT_VERIFY)
    assert "pinned" in out.stderr and bundle.digest in out.stderr


def test_pull_of_unknown_version_says_what_exists(target):
    out = run_cli("pull", "v404", "--remote", target, expect=1)
    assert "neither a version nor a tag" in out.stderr


def test_pull_by_tag_after_tagging(bundle, target, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target)
    run_cli("tag", "v9", "production", "--remote", target)
    fresh_cache(tmp_path, monkeypatch, "consumer")
    dest = tmp_path / "prod"
    run_cli("pull", "production", "--remote", target, "--dest", str(dest))
    assert (dest / "manifest.json").read_bytes() == bundle.to_bytes()
    listing = json.loads(run_cli("list", "--remote", target, "--json").stdout)
    assert [(v["version"], v["tags"]) for v in listing["versions"]] == [("v9", ["production"])]


def test_cached_pull_transfers_nothing(bundle, target, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target)
    fresh_cache(tmp_path, monkeypatch, "second")
    run_cli("pull", "v9", "--remote", target)
    again = run_cli("pull", "v9", "--remote", target)
    assert "0 blob(s) downloaded" in again.stdout and "3 already cached" in again.stdout


def test_concurrent_pulls_both_succeed_with_one_copy(settings, target, tmp_path, monkeypatch):
    make_bundle(settings, "v9", {"big.bin": os.urandom(40_000_000)}, tmp_path)
    run_cli("push", "v9", "--remote", target)
    cache = fresh_cache(tmp_path, monkeypatch, "shared")
    results = []

    def pull_into(dest: str) -> None:
        results.append(run_cli("pull", "v9", "--remote", target, "--dest", dest, expect=None))

    threads = [threading.Thread(target=pull_into, args=(str(tmp_path / f"d{i}"),)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    downloaded = sorted(int(r.stdout.split(": ")[1].split(" blob")[0]) for r in results)
    assert downloaded == [0, 1]
    blobs = [p for p in (cache / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1 and leftovers(cache) == []


def test_verify_detects_a_corrupted_cache_blob(bundle):
    from modelreg.local.cache import Cache

    settings = Settings.resolve()
    weights = next(e for e in bundle.files if e.path == "weights.h5")
    path = Cache(settings.cache_dir).blob_path(weights.sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    out = run_cli("verify", "v9", expect=EXIT_VERIFY)
    assert "weights.h5" in out.stderr and weights.sha256 in out.stderr
    assert "modelreg pull" in out.stderr
    assert not path.exists()


def test_verify_directory_reports_an_edited_file(bundle, target, tmp_path):
    run_cli("push", "v9", "--remote", target)
    dest = tmp_path / "dest"
    run_cli("pull", "v9", "--remote", target, "--dest", str(dest))
    (dest / "labels.npy").write_bytes(b"edited")
    out = run_cli("verify", str(dest), expect=EXIT_VERIFY)
    assert "labels.npy" in out.stderr


def test_show_prints_files_digests_and_tags(bundle, target):
    run_cli("push", "v9", "--remote", target)
    run_cli("tag", "v9", "staging", "--remote", target)
    shown = json.loads(run_cli("show", "v9", "--remote", target, "--json").stdout)
    assert shown["digest"] == bundle.digest and shown["tags"] == ["staging"]
    text = run_cli("show", "v9", "--remote", target).stdout
    assert "weights.h5" in text and "staging" in text


def test_pull_refuses_a_manifest_copied_under_another_version(bundle, settings, target, remote, tmp_path,
                                                              monkeypatch):
    run_cli("push", "v9", "--remote", target)
    with open_storage(remote) as storage:
        storage.write(version_key("emotion", "v10"), bundle.to_bytes())
    fresh_cache(tmp_path, monkeypatch, "victim")
    out = run_cli("pull", "v10", "--remote", target, expect=3)
    assert "stored as emotion:v10" in out.stderr and "describes emotion:v9" in out.stderr
    assert "Traceback" not in out.stderr
