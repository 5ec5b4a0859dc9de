"""`pull --dest` writes each downloaded file once more while it streams, instead of re-reading the cache.

The second copy (`modelreg.download.Tee`) is kept only when the cache accepted the very
bytes it holds; any failure to write it falls back to the verified copy from the cache,
and a failed pull leaves `--dest` as it was (not even created when it did not exist).
Meanwhile the cache's copy leaves the page cache behind the writer (`modelreg.local.dropbehind`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelreg.config import Settings
from modelreg.download import Tee
from modelreg.errors import IntegrityError, LocalIOError
from modelreg.layout import blob_key
from modelreg.local import dropbehind
from modelreg.local import materialize as materialize_module
from modelreg.local.cache import Cache
from modelreg.refs import Ref
from modelreg.transfer import pull, push
from tests.helpers import make_bundle

SHARED = os.urandom(30_000)
CONTENTS = {"weights.h5": os.urandom(300_000), "labels.npy": b"labels", "copy-a.bin": SHARED,
            "copy-b.bin": SHARED}


@pytest.fixture
def pushed(settings, tmp_path):
    def push_to(spec):
        manifest = make_bundle(settings, "v9", CONTENTS, tmp_path)
        push(settings, Ref("emotion", "v9"), spec)
        return manifest
    return push_to


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch, settings):
    """Another machine's empty cache: the next pull downloads everything."""
    root = tmp_path / "fresh-cache"
    monkeypatch.setenv("MODELREG_CACHE", str(root))
    return type(settings).resolve()


@pytest.fixture
def copies(monkeypatch):
    """The entries `materialize` copied from the cache (not renamed from the download)."""
    seen: list[str] = []
    original = materialize_module.stage_verified_copy

    def counting(cache, entry, target):
        seen.append(entry.path)
        return original(cache, entry, target)

    monkeypatch.setattr(materialize_module, "stage_verified_copy", counting)
    return seen


def assert_dest_holds_the_bundle(dest: Path) -> None:
    for name, data in CONTENTS.items():
        assert (dest / name).read_bytes() == data
    assert not [p for p in dest.iterdir() if p.name.startswith(".modelreg-staging-")]


def test_a_downloaded_file_reaches_dest_without_a_copy_from_the_cache(pushed, remote, fresh_cache,
                                                                      tmp_path, copies):
    pushed(remote)
    dest = tmp_path / "out"
    result = pull(fresh_cache, Ref("emotion", "v9"), remote, dest=dest)
    assert len(result.downloaded) == 3
    assert_dest_holds_the_bundle(dest)
    # one blob serves two files: the download's copy goes to the first, the cache's to the other
    assert copies == ["copy-b.bin"]
    cache = Cache(fresh_cache.cache_dir)
    for entry in result.manifest.files:
        blob = cache.blob_path(entry.sha256)
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == entry.sha256
        assert os.stat(blob).st_ino != os.stat(dest / entry.path).st_ino  # separate files

    copies.clear()
    again = tmp_path / "again"
    pull(fresh_cache, Ref("emotion", "v9"), remote, dest=again)  # all cached: copied and verified
    assert sorted(copies) == sorted(CONTENTS)
    assert_dest_holds_the_bundle(again)


def test_a_dest_copy_that_cannot_be_written_falls_back_to_the_cache(pushed, file_remote, fresh_cache,
                                                                    tmp_path, copies, monkeypatch):
    pushed(file_remote)

    def full_disk(self):  # every write of the second copy fails as on a full disk
        self._handle = open("/dev/full", "wb", buffering=0)

    monkeypatch.setattr(Tee, "open", full_disk)
    dest = tmp_path / "out"
    result = pull(fresh_cache, Ref("emotion", "v9"), file_remote, dest=dest)
    assert len(result.downloaded) == 3
    assert sorted(copies) == sorted(CONTENTS)
    assert_dest_holds_the_bundle(dest)


def test_a_corrupt_remote_blob_leaves_no_dest_and_no_copy(pushed, file_remote, fresh_cache, tmp_path):
    manifest = pushed(file_remote)
    entry = next(e for e in manifest.files if e.path == "weights.h5")
    blob = Path(file_remote.url.removeprefix("file://")) / blob_key(entry.sha256)
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    dest = tmp_path / "new" / "out"
    with pytest.raises(IntegrityError):
        pull(fresh_cache, Ref("emotion", "v9"), file_remote, dest=dest)
    assert not (tmp_path / "new").exists()
    assert not Cache(fresh_cache.cache_dir).has_blob(entry)


def test_a_failed_pull_leaves_an_existing_dest_as_it_was(pushed, file_remote, fresh_cache, tmp_path):
    manifest = pushed(file_remote)
    entry = next(e for e in manifest.files if e.path == "weights.h5")
    (Path(file_remote.url.removeprefix("file://")) / blob_key(entry.sha256)).unlink()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_text("user file")
    with pytest.raises(Exception, match="missing"):
        pull(fresh_cache, Ref("emotion", "v9"), file_remote, dest=dest)
    assert sorted(p.name for p in dest.iterdir()) == ["mine.txt"]


def test_dead_staging_is_removed_but_files_a_killed_swap_moved_aside_are_kept(
        pushed, file_remote, fresh_cache, tmp_path):
    pushed(file_remote)
    dest = tmp_path / "out"
    dest.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    host = os.uname().nodename
    killed_download = dest / f".modelreg-staging-{host}.{dead}.abc"
    (killed_download / "tee").mkdir(parents=True)
    (killed_download / "tee" / ("0" * 64)).write_bytes(b"half a download")
    killed_swap = dest / f".modelreg-staging-{host}.{dead}.def"
    (killed_swap / "previous").mkdir(parents=True)
    (killed_swap / "previous" / "3").write_text("the user's previous file")
    (killed_swap / "tee").mkdir()
    (killed_swap / "tee" / "x").write_bytes(b"copy")
    running = dest / f".modelreg-staging-{host}.{os.getpid()}.ghi"
    running.mkdir()
    pull(fresh_cache, Ref("emotion", "v9"), file_remote, dest=dest)
    assert not killed_download.exists()
    assert (killed_swap / "previous" / "3").read_text() == "the user's previous file"
    assert not (killed_swap / "tee").exists()
    assert running.is_dir()  # a process that still runs (here: this one) keeps its staging
    for name, data in CONTENTS.items():
        assert (dest / name).read_bytes() == data


def test_a_pull_killed_while_writing_dest_leaves_staging_the_next_pull_removes(pushed, file_remote, fresh_cache,
                                                                                tmp_path):
    """A pull SIGKILLed while its --dest copy is half written leaves staging that the next pull removes."""
    pushed(file_remote)
    dest = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal
        from modelreg.config import Settings
        from modelreg.config import RemoteSpec
        from modelreg.download import Tee
        from modelreg.refs import Ref
        from modelreg.transfer import pull
        original = Tee.write
        def write_then_die(self, data):
            original(self, data)
            os.kill(os.getpid(), signal.SIGKILL)
        Tee.write = write_then_die
        pull(Settings.resolve(), Ref("emotion", "v9"), RemoteSpec(url={file_remote.url!r}),
             dest=__import__("pathlib").Path({str(dest)!r}))
    """)
    killed = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), capture_output=True)
    assert killed.returncode == -9, killed.stderr
    leftovers = [p for p in dest.iterdir() if p.name.startswith(".modelreg-staging-")]
    assert leftovers and any((p / "tee").iterdir() for p in leftovers)
    pull(fresh_cache, Ref("emotion", "v9"), file_remote, dest=dest)
    assert_dest_holds_the_bundle(dest)


def test_the_cache_copy_of_a_large_download_leaves_memory_behind_the_writer(settings, file_remote, fresh_cache,
                                                                             tmp_path, monkeypatch):
    big = os.urandom((dropbehind.LAG + 2) * dropbehind.WINDOW + 1234)
    make_bundle(settings, "v7", {"big.bin": big}, tmp_path)
    push(settings, Ref("emotion", "v7"), file_remote)
    calls: list[tuple[int, int, int]] = []
    real = dropbehind._syscall()
    assert real is not None  # Linux
    monkeypatch.setattr(dropbehind, "_syscall", lambda: lambda fd, start, length, flags: calls.append(
        (start, length, flags)) or real(fd, start, length, flags))
    drops: list[tuple[int, int]] = []
    real_fadvise = os.posix_fadvise
    monkeypatch.setattr(dropbehind.os, "posix_fadvise", lambda fd, start, length, advice: (
        drops.append((start, length)) if advice == os.POSIX_FADV_DONTNEED else None) or real_fadvise(
        fd, start, length, advice))
    pull(fresh_cache, Ref("emotion", "v7"), file_remote)  # no --dest: the cache copy is the one used
    assert calls == []
    cache = Cache(fresh_cache.cache_dir)
    cache.blob_path(hashlib.sha256(big).hexdigest()).chmod(0o644)
    cache.blob_path(hashlib.sha256(big).hexdigest()).unlink()
    dest = tmp_path / "out"
    pull(fresh_cache, Ref("emotion", "v7"), file_remote, dest=dest)
    window, lag = dropbehind.WINDOW, dropbehind.LAG
    assert calls == [(index * window, window, 2) for index in range(lag + 2)]  # writeback started, never awaited
    assert (0, window) in drops and (window, window) in drops  # dropped LAG windows behind the writer
    assert (dest / "big.bin").read_bytes() == big
    assert hashlib.sha256(cache.blob_path(hashlib.sha256(big).hexdigest()).read_bytes()).hexdigest() == \
        hashlib.sha256(big).hexdigest()


def test_sync_file_range_is_found_without_starting_a_process(tmp_path, monkeypatch):
    """`ctypes.util.find_library` runs `ldconfig -p`: a fork of a ~100 MB process in the middle of a pull."""
    def no_process(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    function = dropbehind._load_sync_file_range()
    assert function is not None  # Linux
    with open(tmp_path / "f", "wb") as out:
        out.write(b"x" * 8192)
        out.flush()
        assert function(out.fileno(), 0, 8192, 2) == 0


def test_drop_behind_is_a_no_op_without_sync_file_range_and_stops_at_its_first_failure(tmp_path, monkeypatch):
    with open(tmp_path / "f", "wb") as out:
        monkeypatch.setattr(dropbehind, "_syscall", lambda: None)
        dropbehind.DropBehind(out.fileno()).written(10 * dropbehind.WINDOW)  # nothing to call: no error
        calls = []
        monkeypatch.setattr(dropbehind, "_syscall", lambda: lambda *args: calls.append(args) or -1)
        drop = dropbehind.DropBehind(out.fileno())
        drop.written(10 * dropbehind.WINDOW)
        drop.written(20 * dropbehind.WINDOW)
        assert len(calls) == 1


def test_a_failed_copy_from_the_cache_leaves_no_dest_it_created(pushed, file_remote, tmp_path, monkeypatch):
    pushed(file_remote)  # the publisher's cache holds every blob: this pull copies, downloads nothing

    def full_disk(cache, entry, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(materialize_module, "stage_verified_copy", full_disk)
    dest = tmp_path / "new" / "out"
    with pytest.raises(LocalIOError, match="was left as it was"):
        pull(Settings.resolve(), Ref("emotion", "v9"), file_remote, dest=dest)
    assert not (tmp_path / "new").exists()
