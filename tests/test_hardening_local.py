"""Hardening of everything on this machine's disk: links, transactional --dest, fingerprints, locks, errors.

modelreg never follows a symlink it did not create (in the cache or inside
--dest), a failed pull leaves --dest exactly as it was, a cached blob is called
verified only when it was, and the cache stays correct when file locks do not lock.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from modelreg.config import Settings
from modelreg.download import download_blob
from modelreg.errors import LocalIOError, RemoteError
from modelreg.layout import version_key
from modelreg.local import materialize as materialize_module
from modelreg.local.cache import Cache
from modelreg.manifest import canonical_json
from modelreg.progress import SilentProgress
from modelreg.storage import open_storage
from modelreg.transfer import pull
from tests.helpers import MODELREG, make_bundle, run_cli

WEIGHTS, LABELS = "best_model_v9.h5", "label_classes_v9.npy"


def bundle(settings, tmp_path, version="v9", **extra):
    contents = {WEIGHTS: os.urandom(50_000), LABELS: b"labels-" + version.encode(), **extra}
    for name in contents:
        (tmp_path / f"source-emotion-{version}" / name).parent.mkdir(parents=True, exist_ok=True)
    return make_bundle(settings, version, contents, tmp_path)


def fresh_cache(tmp_path: Path, monkeypatch, label: str) -> Path:
    cache = tmp_path / f"cache-{label}"
    monkeypatch.setenv("MODELREG_CACHE", str(cache))
    return cache


def snapshot(root: Path) -> dict[str, tuple]:
    """Every name under `root` with what it is: link target, file bytes, or directory."""
    result = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            result[relative] = ("link", os.readlink(path))
        elif path.is_dir():
            result[relative] = ("dir",)
        else:
            result[relative] = ("file", path.read_bytes())
    return result


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 1. symlinks ---------------------------------------------------------------

def test_pull_dest_replaces_symlinks_instead_of_writing_through_them(settings, target, tmp_path):
    manifest = bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", target)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / LABELS).symlink_to(WEIGHTS)
    (dest / WEIGHTS).symlink_to(notes)
    run_cli("pull", "v9", "--remote", target, "--dest", str(dest))
    assert notes.read_text() == "my notes"
    for entry in manifest.files:
        assert not (dest / entry.path).is_symlink() and digest(dest / entry.path) == entry.sha256
    run_cli("verify", str(dest))


def test_pull_dest_refuses_a_bundle_path_through_a_symlinked_directory(settings, file_target, tmp_path):
    bundle(settings, tmp_path, **{"extra/notes.txt": b"bundle notes"})
    run_cli("push", "v9", "--remote", file_target)
    victim = tmp_path / "etc"
    victim.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "extra").symlink_to(victim)
    before = snapshot(dest)
    out = run_cli("pull", "v9", "--remote", file_target, "--dest", str(dest), expect=1)
    assert "symlink" in out.stderr and "Traceback" not in out.stderr
    assert list(victim.iterdir()) == [] and snapshot(dest) == before


def test_pull_dest_may_itself_sit_under_a_symlinked_parent(settings, file_target, tmp_path):
    manifest = bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", file_target)
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "chosen").symlink_to(real)
    run_cli("pull", "v9", "--remote", file_target, "--dest", str(tmp_path / "chosen" / "out"))
    assert digest(real / "out" / WEIGHTS) == next(e.sha256 for e in manifest.files if e.path == WEIGHTS)


def test_cache_blob_that_is_a_symlink_is_never_chmodded_or_read_and_pull_refetches(
        settings, target, tmp_path, monkeypatch):
    manifest = bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", target)
    cache = Cache(fresh_cache(tmp_path, monkeypatch, "victim"))
    run_cli("pull", "v9", "--remote", target)
    secret = tmp_path / "secret"
    secret.write_bytes(b"private")
    secret.chmod(0o600)
    blob = cache.blob_path(manifest.files[0].sha256)
    blob.unlink()
    blob.symlink_to(secret)
    out = run_cli("verify", "v9", expect=3)
    assert "missing" in out.stderr
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_bytes() == b"private"
    assert not os.path.lexists(blob)
    blob.symlink_to(secret)
    run_cli("pull", "v9", "--remote", target)
    assert not blob.is_symlink() and digest(blob) == manifest.files[0].sha256
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_bytes() == b"private"


def test_a_partial_that_is_a_symlink_is_not_appended_through(settings, target, tmp_path, monkeypatch):
    manifest = bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", target)
    cache = Cache(fresh_cache(tmp_path, monkeypatch, "victim"))
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    for entry in manifest.files:
        cache.partial_path(entry).symlink_to(victim)
    run_cli("pull", "v9", "--remote", target)
    assert victim.read_bytes() == b"keep me"
    for entry in manifest.files:
        assert digest(cache.blob_path(entry.sha256)) == entry.sha256
        assert not os.path.lexists(cache.partial_path(entry))


def test_a_fifo_in_the_cache_is_a_damaged_entry_that_pull_replaces(settings, file_target, tmp_path,
                                                                   monkeypatch):
    manifest = bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", file_target)
    cache = Cache(fresh_cache(tmp_path, monkeypatch, "fifo"))
    run_cli("pull", "v9", "--remote", file_target)
    blob = cache.blob_path(manifest.files[0].sha256)
    blob.unlink()
    os.mkfifo(blob)
    run_cli("verify", "v9", expect=3, timeout=30)
    os.mkfifo(blob)
    run_cli("pull", "v9", "--remote", file_target, timeout=30)
    assert stat.S_ISREG(os.lstat(blob).st_mode) and digest(blob) == manifest.files[0].sha256


# -- 2. transactional --dest -----------------------------------------------------

def test_manifest_with_a_path_that_is_a_directory_of_another_is_refused_and_dest_kept(
        settings, target, remote, tmp_path):
    manifest = bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", target)
    dest = tmp_path / "out"
    run_cli("pull", "v9", "--remote", target, "--dest", str(dest))
    before = snapshot(dest)
    raw = json.loads(manifest.to_bytes())
    raw["files"][0]["path"], raw["files"][1]["path"] = "zz", "zz/x"
    storage = open_storage(remote)
    storage.write(version_key("emotion", "v10"), canonical_json({**raw, "version": "v10"}))
    storage.close()
    out = run_cli("pull", "v10", "--remote", target, "--dest", str(dest), expect=1)
    assert "'zz'" in out.stderr and "'zz/x'" in out.stderr and "Traceback" not in out.stderr
    assert snapshot(dest) == before


def test_a_failure_during_the_swap_puts_dest_back_exactly(settings, file_remote, tmp_path, monkeypatch):
    bundle(settings, tmp_path, **{"old-only.txt": b"from v9"})
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_text("user file")
    (dest / LABELS).symlink_to("mine.txt")
    from modelreg.transfer import push
    push(settings, __import__("modelreg.refs", fromlist=["Ref"]).Ref("emotion", "v9"), file_remote)
    bundle(settings, tmp_path, "v10", **{"new/deep.txt": b"from v10"})
    push(settings, __import__("modelreg.refs", fromlist=["Ref"]).Ref("emotion", "v10"), file_remote)
    from modelreg.refs import Ref
    pull(settings, Ref("emotion", "v9"), file_remote, dest=dest)
    before = snapshot(dest)
    real_rename, calls = os.rename, []

    def failing_rename(src, dst):
        calls.append(dst)
        if len(calls) == 5:
            raise OSError(errno.EIO, "simulated failure mid-swap")
        return real_rename(src, dst)

    monkeypatch.setattr(materialize_module.os, "rename", failing_rename)
    with pytest.raises(LocalIOError, match="left as it was"):
        pull(settings, Ref("emotion", "v10"), file_remote, dest=dest)
    monkeypatch.setattr(materialize_module.os, "rename", real_rename)
    assert len(calls) >= 5 and snapshot(dest) == before
    pull(settings, Ref("emotion", "v10"), file_remote, dest=dest)
    assert (dest / "new" / "deep.txt").read_bytes() == b"from v10"
    assert not (dest / "old-only.txt").exists() and (dest / "mine.txt").read_text() == "user file"
    assert not any(p.name.startswith(".modelreg-staging-") for p in dest.iterdir())


def test_pull_removes_only_files_the_previous_manifest_listed(settings, file_target, tmp_path):
    bundle(settings, tmp_path, **{"dropped.txt": b"old"})
    run_cli("push", "v9", "--remote", file_target)
    bundle(settings, tmp_path, "v10")
    run_cli("push", "v10", "--remote", file_target)
    dest = tmp_path / "out"
    run_cli("pull", "v9", "--remote", file_target, "--dest", str(dest))
    (dest / "mine.txt").write_text("user file")
    run_cli("pull", "v10", "--remote", file_target, "--dest", str(dest))
    assert not (dest / "dropped.txt").exists() and (dest / "mine.txt").read_text() == "user file"
    assert (dest / LABELS).read_bytes() == b"labels-v10"
    run_cli("verify", str(dest))


# -- 4. fingerprints ---------------------------------------------------------------

def test_pull_repairs_a_corrupt_cached_blob_of_the_right_size(settings, target, tmp_path, monkeypatch):
    manifest = bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", target)
    cache = Cache(fresh_cache(tmp_path, monkeypatch, "flipped"))
    run_cli("pull", "v9", "--remote", target)
    again = run_cli("pull", "v9", "--remote", target)
    assert "2 already cached (fingerprint unchanged since verified at" in again.stdout
    entry = next(e for e in manifest.files if e.path == WEIGHTS)
    blob = cache.blob_path(entry.sha256)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    out = run_cli("pull", "v9", "--remote", target)
    assert "1 blob(s) downloaded" in out.stdout and "1 corrupt cached blob(s) replaced" in out.stdout
    assert "1 already cached" in out.stdout
    assert digest(blob) == entry.sha256


def test_a_garbage_fingerprint_store_means_re_verify(settings, file_target, tmp_path, monkeypatch):
    manifest = bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", file_target)
    cache_dir = fresh_cache(tmp_path, monkeypatch, "garbage")
    run_cli("pull", "v9", "--remote", file_target)
    for record in (cache_dir / "fingerprints").rglob("*.json"):
        record.write_bytes(b"[" * 100_000)
    out = run_cli("pull", "v9", "--remote", file_target)
    assert "0 already cached" in out.stdout and "2 cached blob(s) re-verified" in out.stdout
    assert "already cached (fingerprint" in run_cli("pull", "v9", "--remote", file_target).stdout
    assert len(manifest.files) == 2


# -- 7. where it failed --------------------------------------------------------------

def test_a_full_disk_on_a_small_blob_is_a_local_error_naming_the_cache(settings, file_target, tmp_path,
                                                                       monkeypatch):
    make_bundle(settings, "v9", {"small.bin": os.urandom(7_000)}, tmp_path)
    run_cli("push", "v9", "--remote", file_target)
    cache_dir = fresh_cache(tmp_path, monkeypatch, "small")

    def small_disk():  # the 7,000 bytes sit in the write buffer: the error comes when it is flushed
        resource.setrlimit(resource.RLIMIT_FSIZE, (6_000, 6_000))

    result = subprocess.run([str(MODELREG), "pull", "v9", "--remote", file_target], capture_output=True,
                            text=True, preexec_fn=small_disk, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Cannot write the download of" in result.stderr and str(cache_dir) in result.stderr
    assert "Internal error" not in result.stderr and "Free disk space" in result.stderr


def test_a_remote_read_failing_mid_way_is_a_remote_error(settings, remote, tmp_path, monkeypatch):
    manifest = bundle(settings, tmp_path)
    from modelreg.refs import Ref
    from modelreg.transfer import push
    push(settings, Ref("emotion", "v9"), remote)
    cache = Cache(tmp_path / "cache-remote-fails")
    entry = next(e for e in manifest.files if e.path == WEIGHTS)
    storage = open_storage(remote)
    original = storage.read

    def failing_read(key, sink, *, offset=0):
        class Half:
            def write(self, data):
                sink.write(bytes(data)[:1000])
                raise OSError(errno.EIO, "connection reset by the remote")
        return original(key, Half(), offset=offset)

    storage.read = failing_read
    with pytest.raises(RemoteError) as caught:
        download_blob(cache, storage, entry, SilentProgress())
    storage.close()
    message = str(caught.value)
    assert storage.url in message and "Free disk space" not in message and WEIGHTS in message
    assert cache.partial_path(entry).stat().st_size == 1000
    assert not cache.blob_path(entry.sha256).exists()


# -- lock-free correctness -----------------------------------------------------------

class NoLock:
    def acquire(self, blocking=True):
        return self

    def release(self):
        pass


class BrokenLock(NoLock):
    def acquire(self, blocking=True):
        raise OSError(errno.ENOLCK, "No locks available")


def slow_storage(remote):
    storage = open_storage(remote)
    original = storage.read

    def read(key, sink, *, offset=0):
        class Slow:
            def write(self, data):
                view = bytes(data)
                for start in range(0, len(view), 4096):
                    sink.write(view[start:start + 4096])
                    time.sleep(0.001)
                return len(view)
        return original(key, Slow(), offset=offset)

    storage.read = read
    return storage


def test_two_pulls_with_a_lock_that_does_not_lock_produce_one_correct_blob(settings, file_remote, tmp_path,
                                                                          monkeypatch):
    manifest = make_bundle(settings, "v9", {"big.bin": os.urandom(400_000)}, tmp_path)
    from modelreg.refs import Ref
    from modelreg.transfer import push
    push(settings, Ref("emotion", "v9"), file_remote)
    monkeypatch.setattr(Cache, "blob_lock", lambda self, sha256: NoLock())
    cache = Cache(tmp_path / "cache-nolock")
    entry = manifest.files[0]
    errors = []

    def one_pull():
        storage = slow_storage(file_remote)
        try:
            download_blob(cache, storage, entry, SilentProgress())
        except BaseException as exc:
            errors.append(exc)
        finally:
            storage.close()

    threads = [threading.Thread(target=one_pull) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert digest(cache.blob_path(entry.sha256)) == entry.sha256
    assert [p.name for p in cache.blob_path(entry.sha256).parent.iterdir()
            if not p.name.endswith(entry.sha256)] == []


def test_a_lock_that_raises_on_acquire_still_pulls(settings, file_remote, tmp_path, monkeypatch):
    manifest = bundle(settings, tmp_path)
    from modelreg.refs import Ref
    from modelreg.transfer import push
    push(settings, Ref("emotion", "v9"), file_remote)
    monkeypatch.setattr(Cache, "blob_lock", lambda self, sha256: BrokenLock())
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "cache-broken-lock"))
    result = pull(Settings.resolve(), Ref("emotion", "v9"), file_remote)
    assert len(result.downloaded) == 2
    cache = Cache(tmp_path / "cache-broken-lock")
    for entry in manifest.files:
        assert digest(cache.blob_path(entry.sha256)) == entry.sha256


# -- 8. versions and tags share one namespace --------------------------------------------

def test_push_refuses_a_version_named_like_an_existing_tag(settings, target, tmp_path):
    bundle(settings, tmp_path)
    run_cli("push", "v9", "--remote", target)
    run_cli("tag", "v9", "production", "--remote", target)
    bundle(settings, tmp_path, "production")
    out = run_cli("push", "production", "--remote", target, expect=1)
    assert "is a tag" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("tag", "v9", "v9", "--remote", target, expect=1)
    assert "is a version" in out.stderr
    pulled = run_cli("pull", "production", "--remote", target)
    assert "emotion:v9" in pulled.stdout


def test_read_regular_treats_an_oversized_cache_file_as_absent(tmp_path):
    """A planted huge record or index is never read into memory whole: it counts as absent."""
    from modelreg.local.cache import read_regular

    path = tmp_path / "record.json"
    path.write_bytes(b"x" * 2049)
    assert read_regular(path, limit=2048) is None
    path.write_bytes(b"x" * 2048)
    assert read_regular(path, limit=2048) == b"x" * 2048


def test_read_regular_refuses_links_and_fifos_and_reads_files_whole(tmp_path):
    """Only a regular file itself is read: a symlink or FIFO in its place is removed (never its target)."""
    from modelreg.local.cache import read_regular

    target = tmp_path / "target"
    target.write_bytes(b"secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert read_regular(link) is None
    assert not link.is_symlink() and target.read_bytes() == b"secret"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert read_regular(str(fifo)) is None  # does not block on the FIFO
    assert not fifo.exists()
    assert read_regular(tmp_path / "absent") is None
    big = os.urandom(3 * 64 * 1024 + 17)  # more than one read
    (tmp_path / "big").write_bytes(big)
    assert read_regular(tmp_path / "big") == big
    (tmp_path / "empty").write_bytes(b"")
    assert read_regular(tmp_path / "empty") == b""
