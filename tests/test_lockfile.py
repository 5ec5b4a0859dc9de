"""modelreg's own advisory lock (`modelreg.local.lockfile`): exclusive across processes, never via a symlink."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time

import pytest

from modelreg.local.lockfile import FileLock, LockBusy

HOLD = """
import sys, time
from modelreg.local.lockfile import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""


def hold_in_other_process(path):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_lock_held_by_another_process_is_busy_and_taken_once_released(tmp_path):
    path = tmp_path / "blob.lock"
    other = hold_in_other_process(path)
    try:
        with pytest.raises(LockBusy, match="blob.lock"):
            FileLock(path).acquire(blocking=False)
        waiter = FileLock(path)
        got = threading.Event()
        thread = threading.Thread(target=lambda: (waiter.acquire(), got.set()))
        thread.start()
        assert not got.wait(0.3)  # still held by the other process
        other.stdin.write("\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "released"
        assert got.wait(10)
        thread.join()
        assert waiter.is_locked
        waiter.release()
        assert not waiter.is_locked
    finally:
        other.kill()
        other.wait()


def test_a_lock_is_freed_when_its_process_dies(tmp_path):
    path = tmp_path / "blob.lock"
    other = hold_in_other_process(path)
    other.kill()
    other.wait()
    lock = FileLock(path)
    lock.acquire(blocking=False)
    lock.release()


def test_two_locks_of_one_process_exclude_each_other(tmp_path):
    first, second = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")
    with first, pytest.raises(LockBusy):
        second.acquire(blocking=False)
    second.acquire(blocking=False)
    second.release()
    second.release()  # releasing twice is harmless


def test_a_symlink_at_the_lock_path_is_refused_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "evil.lock").symlink_to(victim)
    with pytest.raises(OSError) as caught:
        FileLock(tmp_path / "evil.lock").acquire()
    assert caught.value.errno == errno.ELOOP
    assert victim.read_text() == "keep"


def test_a_lock_object_is_not_reentrant(tmp_path):
    lock = FileLock(tmp_path / "r.lock")
    with lock, pytest.raises(RuntimeError, match="already locked"):
        lock.acquire()


def test_a_waiting_pull_says_so_and_then_uses_the_blob_the_other_process_fetched(settings, file_remote, tmp_path):
    from tests.helpers import make_bundle, register_remote, run_cli

    manifest = make_bundle(settings, "v1", {"a.bin": os.urandom(10_000)}, tmp_path)
    target = register_remote(settings, file_remote)
    run_cli("push", "v1", "--remote", target)
    import shutil

    shutil.rmtree(settings.cache_dir)
    locks = settings.cache_dir / "locks"
    locks.mkdir(parents=True)
    other = hold_in_other_process(locks / f"{manifest.files[0].sha256}.lock")
    try:
        pull = subprocess.Popen([sys.executable, "-m", "modelreg", "pull", "v1", "--remote", target],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert pull.poll() is None  # waiting for the lock
        other.stdin.write("\n")
        other.stdin.flush()
        out, err = pull.communicate(timeout=60)
    finally:
        other.kill()
        other.wait()
    assert pull.returncode == 0, err
    assert "waiting for another modelreg process that is downloading a.bin" in out + err
