"""What modelreg does when things go wrong mid-way, on every backend.

Each case ends with a clear error and exit code, and with the cache and
destination unchanged or complete, never half-written.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess

import pytest

from modelreg.config import Settings
from modelreg.download import download_blob
from modelreg.layout import blob_key, version_key
from modelreg.local.cache import Cache
from modelreg.manifest import canonical_json
from modelreg.progress import SilentProgress
from modelreg.storage import open_storage
from tests.helpers import MODELREG, make_bundle, run_cli, wait_until

BIG = 24_000_000


def test_killed_push_leaves_version_invisible_and_repush_skips_finished_blobs(settings, target, remote,
                                                                             tmp_path):
    # 12 parts, 4 sent at once: when the first has landed, the push is still far from its manifest
    # (with 4 parts a fast S3 push finished all of them before the kill arrived)
    manifest = make_bundle(settings, "v9", {f"part{i}.bin": os.urandom(BIG) for i in range(12)}, tmp_path)
    storage = open_storage(remote)
    process = subprocess.Popen([str(MODELREG), "push", "v9", "--remote", target],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: any(storage.stat(blob_key(e.sha256)) == e.size for e in manifest.files))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert storage.stat(version_key("emotion", "v9")) is None
    out = run_cli("pull", "v9", "--remote", target, expect=1)
    assert "neither a version nor a tag" in out.stderr
    finished = sum(storage.stat(blob_key(e.sha256)) == e.size for e in manifest.files)
    out = run_cli("push", "v9", "--remote", target)
    assert f"{finished} already there" in out.stdout and finished >= 1
    assert storage.stat(version_key("emotion", "v9")) is not None
    storage.close()


def test_interrupted_pull_resumes_from_the_bytes_already_received(settings, target, remote, tmp_path,
                                                                  monkeypatch):
    manifest = make_bundle(settings, "v9", {"big.bin": os.urandom(BIG * 2)}, tmp_path)
    run_cli("push", "v9", "--remote", target)
    cache_dir = tmp_path / "victim-cache"
    monkeypatch.setenv("MODELREG_CACHE", str(cache_dir))
    entry = manifest.files[0]
    cache = Cache(cache_dir)
    partial = cache.blob_path(entry.sha256).with_name(f"{entry.sha256}.partial")
    process = subprocess.Popen([str(MODELREG), "pull", "v9", "--remote", target],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: partial.exists() and partial.stat().st_size > 1_000_000)
    process.send_signal(signal.SIGKILL)
    process.wait()
    received = partial.stat().st_size
    assert received < entry.size and not cache.blob_path(entry.sha256).exists()

    offsets = []
    storage = open_storage(remote)
    original_read = storage.read

    def recording_read(key, sink, *, offset=0):
        offsets.append(offset)
        return original_read(key, sink, offset=offset)

    storage.read = recording_read
    assert download_blob(cache, storage, entry, SilentProgress()) is True
    storage.close()
    assert offsets == [received]
    assert cache.verify_blob(entry) and not partial.exists()


def test_pull_with_a_full_disk_fails_clearly_and_leaves_no_blob(settings, target, tmp_path,
                                                               monkeypatch):
    manifest = make_bundle(settings, "v9", {"big.bin": os.urandom(BIG)}, tmp_path)
    run_cli("push", "v9", "--remote", target)
    cache_dir = tmp_path / "small-disk-cache"
    monkeypatch.setenv("MODELREG_CACHE", str(cache_dir))

    def small_disk():  # every file this process writes is capped at 4 MB: writes fail like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000_000, 4_000_000))

    result = subprocess.run([str(MODELREG), "pull", "v9", "--remote", target, "--dest",
                             str(tmp_path / "dest")], capture_output=True, text=True,
                            preexec_fn=small_disk, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "Cannot write the download of big.bin" in result.stderr and "Traceback" not in result.stderr
    assert not Cache(cache_dir).blob_path(manifest.files[0].sha256).exists()
    assert not (tmp_path / "dest").exists()


def test_pull_names_a_blob_missing_on_the_remote(settings, target, remote, tmp_path, monkeypatch):
    manifest = make_bundle(settings, "v9", {"a.bin": b"a" * 1000, "b.bin": b"b" * 1000}, tmp_path)
    run_cli("push", "v9", "--remote", target)
    storage = open_storage(remote)
    storage.delete(blob_key(manifest.files[1].sha256))
    storage.close()
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "victim-cache"))
    out = run_cli("pull", "v9", "--remote", target, expect=1)
    assert "b.bin" in out.stderr and "missing" in out.stderr and "modelreg push" in out.stderr


def test_pull_refuses_a_truncated_blob(settings, target, remote, tmp_path, monkeypatch):
    manifest = make_bundle(settings, "v9", {"a.bin": os.urandom(100_000)}, tmp_path)
    run_cli("push", "v9", "--remote", target)
    storage = open_storage(remote)
    storage.write(blob_key(manifest.files[0].sha256), b"short")
    storage.close()
    cache_dir = tmp_path / "victim-cache"
    monkeypatch.setenv("MODELREG_CACHE", str(cache_dir))
    out = run_cli("pull", "v9", "--remote", target, expect=3)
    assert "a.bin" in out.stderr and manifest.files[0].sha256 in out.stderr
    assert not any(cache_dir.rglob("*.partial"))


@pytest.mark.parametrize("hostile", ["../../evil.sh", "/etc/cron.d/evil", "a\\b", "a\x00b"])
def test_pull_refuses_a_manifest_with_a_hostile_path(settings, target, remote, tmp_path, monkeypatch,
                                                     hostile):
    manifest = make_bundle(settings, "v9", {"a.bin": b"payload"}, tmp_path)
    run_cli("push", "v9", "--remote", target)
    raw = json.loads(manifest.to_bytes())
    raw["files"][0]["path"] = hostile
    storage = open_storage(remote)
    storage.write(version_key("emotion", "v10"), canonical_json({**raw, "version": "v10"}))
    storage.close()
    dest = tmp_path / "dest"
    out = run_cli("pull", "v10", "--remote", target, "--dest", str(dest), expect=1)
    assert "Refusing bundle file path" in out.stderr and "Traceback" not in out.stderr
    assert not dest.exists()


def test_pull_refuses_a_manifest_listing_a_path_twice(settings, target, remote, tmp_path):
    manifest = make_bundle(settings, "v9", {"a.bin": b"1", "b.bin": b"2"}, tmp_path)
    run_cli("push", "v9", "--remote", target)
    raw = json.loads(manifest.to_bytes())
    raw["files"][1]["path"] = raw["files"][0]["path"]
    storage = open_storage(remote)
    storage.write(version_key("emotion", "v11"), canonical_json({**raw, "version": "v11"}))
    storage.close()
    out = run_cli("pull", "v11", "--remote", target, expect=1)
    assert "twice" in out.stderr


def test_two_concurrent_pushes_of_different_content_one_wins(target, tmp_path, monkeypatch):
    processes = []
    for index in range(2):
        workspace = tmp_path / f"team{index}"
        workspace.mkdir()
        env = {**os.environ, "MODELREG_CACHE": str(tmp_path / f"cache{index}")}
        monkeypatch.setenv("MODELREG_CACHE", env["MODELREG_CACHE"])
        monkeypatch.chdir(workspace)
        make_bundle(Settings.resolve(), "v9", {"w.bin": os.urandom(BIG)}, tmp_path / f"src{index}")
        processes.append((workspace, env))
    running = [subprocess.Popen([str(MODELREG), "push", "v9", "--remote", target], cwd=workspace, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for workspace, env in processes]
    outcomes = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in running]
    codes = sorted(code for code, _out, _err in outcomes)
    assert codes == [0, 1], outcomes
    loser = next(err for code, _out, err in outcomes if code == 1)
    assert "already exists" in loser and "Traceback" not in loser
