"""Ctrl-C stops a transfer within about a second, on a slow link, and keeps what can be resumed.

A real `modelreg pull` subprocess talks to the real server through a loopback proxy
relaying ~200 KB/s; SIGINT arrives mid-transfer (three times, as an impatient user
sends it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from modelreg.download import download_blob
from modelreg.local.cache import Cache
from modelreg.progress import SilentProgress
from modelreg.storage import open_storage
from tests.helpers import MODELREG, make_bundle, register_remote, run_cli, wait_until
from tests.servers.loopback import RelayProxy, s3_via, ssh_via

SIZE = 24_000_000
RATE = 200_000


def server_port(backend: str, spec, request) -> int:
    if backend == "ssh":
        return request.getfixturevalue("sshd_server").port
    return urlsplit(spec.options["endpoint_url"]).port


def through(backend: str, spec, proxy: RelayProxy, request, tmp_path):
    if backend == "ssh":
        return ssh_via(spec, request.getfixturevalue("sshd_server"), proxy.port, tmp_path)
    return s3_via(spec, proxy.port)


@pytest.mark.parametrize("backend", ["s3", "ssh"])
def test_ctrl_c_stops_a_slow_pull_at_once_and_the_next_pull_resumes(backend, request, settings, tmp_path,
                                                                  monkeypatch):
    direct = request.getfixturevalue(f"{backend}_remote")
    manifest = make_bundle(settings, "v9", {"big.bin": os.urandom(SIZE)}, tmp_path)
    run_cli("push", "v9", "--remote", register_remote(settings, direct, "direct"))
    entry = manifest.files[0]
    cache_dir = tmp_path / "victim-cache"
    monkeypatch.setenv("MODELREG_CACHE", str(cache_dir))
    cache = Cache(cache_dir)
    partial = cache.blob_path(entry.sha256).with_name(f"{entry.sha256}.partial")

    with RelayProxy(server_port(backend, direct, request), rate=RATE) as proxy:
        slow = register_remote(settings, through(backend, direct, proxy, request, tmp_path), "slow")
        process = subprocess.Popen([str(MODELREG), "pull", "v9", "--remote", slow],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: partial.exists() and partial.stat().st_size > 200_000)
        interrupted = time.monotonic()
        for _ in range(3):
            process.send_signal(signal.SIGINT)
            time.sleep(0.1)
        _out, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - interrupted

    assert process.returncode == 130, err
    assert elapsed < 3, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    received = partial.stat().st_size
    assert 0 < received < entry.size and not cache.blob_path(entry.sha256).exists()

    offsets = []
    with open_storage(direct) as storage:
        original_read = storage.read

        def recording_read(key, sink, *, offset=0):
            offsets.append(offset)
            return original_read(key, sink, offset=offset)

        storage.read = recording_read
        assert download_blob(cache, storage, entry, SilentProgress()) is True
    assert offsets == [received]
    assert cache.verify_blob(entry)


@pytest.mark.parametrize("backend", ["s3", "ssh"])
def test_ctrl_c_stops_a_slow_push_at_once_and_publishes_nothing(backend, request, settings, tmp_path):
    direct = request.getfixturevalue(f"{backend}_remote")
    make_bundle(settings, "v9", {"big.bin": os.urandom(SIZE)}, tmp_path)

    with RelayProxy(server_port(backend, direct, request), rate=RATE) as proxy:
        slow = register_remote(settings, through(backend, direct, proxy, request, tmp_path), "slow")
        process = subprocess.Popen([str(MODELREG), "push", "v9", "--remote", slow],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)  # connected and uploading (the blob takes two minutes at this rate)
        assert process.poll() is None
        interrupted = time.monotonic()
        for _ in range(3):
            process.send_signal(signal.SIGINT)
            time.sleep(0.1)
        _out, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - interrupted

    assert process.returncode == 130, err
    assert elapsed < 3, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    with open_storage(direct) as storage:
        assert storage.list("models/") == []
