"""Leftovers of a killed push (an SSH/file temp file, an unfinished S3 multipart upload) are
removed by the next push of that blob, once they are older than the grace period.

The kill is real (SIGKILL of a `modelreg push` subprocess, slowed by a loopback proxy
so that it dies mid-upload); the next push runs in-process with the grace period
shortened, since the leftovers are only seconds old.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelreg import transfer, upload
from modelreg.layout import blob_key, version_key
from modelreg.refs import Ref
from modelreg.storage import open_storage
from modelreg.storage.local import TEMP_PREFIX
from tests.helpers import MODELREG, make_bundle, register_remote, wait_until
from tests.servers.loopback import RelayProxy, s3_via, ssh_via

SIZE = 24_000_000


def ssh_temps(spec) -> list[Path]:
    return list(Path(urlsplit(spec.url).path).rglob(f"{TEMP_PREFIX}*"))


def s3_uploads(seaweed, spec) -> list[dict]:
    parts = urlsplit(spec.url)
    client = seaweed.client()
    try:
        return client.list_multipart_uploads(Bucket=parts.netloc, Prefix=parts.path.strip("/")).get(
            "Uploads", [])
    finally:
        client.close()


def kill_push_mid_upload(settings, spec, leftovers) -> None:
    target = register_remote(settings, spec, "slow")
    process = subprocess.Popen([str(MODELREG), "push", "v9", "--remote", target],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: bool(leftovers()))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("backend", ["ssh", "s3"])
def test_next_push_removes_what_a_killed_push_left(backend, request, settings, tmp_path, monkeypatch):
    direct = request.getfixturevalue(f"{backend}_remote")
    manifest = make_bundle(settings, "v9", {"big.bin": os.urandom(SIZE)}, tmp_path)
    if backend == "ssh":
        sshd = request.getfixturevalue("sshd_server")
        port, leftovers = sshd.port, lambda: ssh_temps(direct)
    else:
        seaweed = request.getfixturevalue("seaweed")
        port, leftovers = urlsplit(direct.options["endpoint_url"]).port, lambda: s3_uploads(seaweed, direct)
    with RelayProxy(port, rate=2_000_000) as proxy:
        slow = ssh_via(direct, sshd, proxy.port, tmp_path) if backend == "ssh" else s3_via(direct, proxy.port)
        kill_push_mid_upload(settings, slow, leftovers)
    assert leftovers(), "the killed push left nothing to clean up"

    monkeypatch.setattr(upload, "STALE_UPLOAD_AGE", 0.0)
    transfer.push(settings, Ref("emotion", "v9"), direct)

    assert not leftovers()
    with open_storage(direct) as storage:
        assert storage.stat(blob_key(manifest.files[0].sha256)) == SIZE
        assert storage.stat(version_key("emotion", "v9")) is not None


def test_young_leftovers_are_kept_as_they_may_be_another_push_in_progress(remote):
    key = "blobs/sha256/ab/" + "ab" * 32
    with open_storage(remote) as storage:
        storage.write(key, b"x")
        if urlsplit(remote.url).scheme == "s3":
            full_key = storage._key(key)
            storage._client.create_multipart_upload(Bucket=storage.bucket, Key=full_key)
            remaining = lambda: storage._client.list_multipart_uploads(  # noqa: E731
                Bucket=storage.bucket, Prefix=full_key).get("Uploads", [])
        else:
            directory = Path(urlsplit(remote.url).path) / "blobs" / "sha256" / "ab"
            (directory / f"{TEMP_PREFIX}{'0' * 32}-{'ab' * 32}").write_bytes(b"half")
            other = directory / f"{TEMP_PREFIX}{'0' * 32}-{'cd' * 32}"
            other.write_bytes(b"another blob's")
            remaining = lambda: [p for p in directory.iterdir() if p.name.endswith("ab" * 32)  # noqa: E731
                                 and p.name.startswith(TEMP_PREFIX)]

        assert storage.remove_stale_uploads(key, older_than=3600) == 0 and remaining()
        assert storage.remove_stale_uploads(key, older_than=0) == 1

        assert not remaining() and storage.stat(key) == 1
        if urlsplit(remote.url).scheme != "s3":
            assert other.exists()
