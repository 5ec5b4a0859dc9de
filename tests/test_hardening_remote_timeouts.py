"""No hang, no long wait: FIFOs in a file:// registry, silent and frozen servers, wrong servers.

Every case must end with a RemoteError (exit 5) naming the remote, within the stall
timeout plus a margin, and without a traceback.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import RemoteError
from modelreg.layout import blob_key, version_key
from modelreg.storage import open_storage
from tests.helpers import make_bundle, register_remote, run_cli
from tests.servers.loopback import PlainHttpServer, RelayProxy, SilentServer, ssh_via

STALL = 2.0
MARGIN = 4.0
CLI_MARGIN = 8.0
"""A subprocess also pays for starting Python and importing boto3/paramiko (seconds on a busy machine)."""


def file_root(spec: RemoteSpec) -> Path:
    return Path(urlsplit(spec.url).path)


class FreezingSink:
    """Collects bytes and freezes `proxy` once `after` bytes arrived."""

    def __init__(self, proxy: RelayProxy, after: int) -> None:
        self.proxy, self.after, self.size = proxy, after, 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size >= self.after:
            self.proxy.freeze()


# -- file:// -------------------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["blob", "manifest"])
def test_pull_refuses_a_fifo_in_a_file_registry_instead_of_hanging(settings, file_remote, tmp_path,
                                                                    monkeypatch, what):
    manifest = make_bundle(settings, "v9", {"a.bin": b"a" * 1000}, tmp_path)
    target = register_remote(settings, file_remote)
    run_cli("push", "v9", "--remote", target)
    key = blob_key(manifest.files[0].sha256) if what == "blob" else version_key("emotion", "v9")
    path = file_root(file_remote).joinpath(*key.split("/"))
    path.unlink()
    os.mkfifo(path)
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "victim-cache"))

    out = run_cli("pull", "v9", "--remote", target, expect=5, timeout=30)

    assert key in out.stderr and "FIFO" in out.stderr and "Traceback" not in out.stderr


def test_file_registry_refuses_a_symlink_in_place_of_an_object(file_remote, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    with open_storage(file_remote) as storage:
        storage.write("blobs/x", b"real")
        path = file_root(file_remote) / "blobs" / "x"
        path.unlink()
        path.symlink_to(outside)

        for call in (lambda: storage.stat("blobs/x"), lambda: storage.read("blobs/x", io.BytesIO())):
            with pytest.raises(RemoteError, match="blobs/x.*symbolic link"):
                call()


# -- silent servers ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["pull", "v9"], ["list"]])
def test_silent_s3_endpoint_fails_within_the_stall_timeout(settings, s3_remote, command):
    with SilentServer() as silent:
        spec = replace(s3_remote, options={"endpoint_url": f"http://127.0.0.1:{silent.port}"})
        target = register_remote(settings, spec)
        started = time.monotonic()
        out = run_cli("--stall-timeout", str(STALL), *command, "--remote", target, expect=5, timeout=60)
        elapsed = time.monotonic() - started

    assert elapsed < STALL + CLI_MARGIN, out.stderr
    assert f"127.0.0.1:{silent.port}" in out.stderr and "stall_timeout" in out.stderr
    assert "Traceback" not in out.stderr


def test_silent_ssh_host_fails_within_the_stall_timeout(settings, ssh_remote, sshd_server, tmp_path,
                                                        monkeypatch):
    with SilentServer() as silent:
        target = register_remote(settings, ssh_via(ssh_remote, sshd_server, silent.port, tmp_path))
        monkeypatch.setenv("MODELREG_STALL_TIMEOUT", str(STALL))
        started = time.monotonic()
        out = run_cli("pull", "v9", "--remote", target, expect=5, timeout=60)
        elapsed = time.monotonic() - started

    assert elapsed < STALL + CLI_MARGIN, out.stderr
    assert f"127.0.0.1:{silent.port}" in out.stderr and "stall_timeout" in out.stderr
    assert "Traceback" not in out.stderr


# -- links that freeze mid-transfer --------------------------------------------------------------

def test_frozen_sftp_read_fails_within_the_stall_timeout(ssh_remote, sshd_server, tmp_path):
    with open_storage(ssh_remote) as direct:
        direct.write("big", os.urandom(30_000_000))
    with RelayProxy(sshd_server.port) as proxy:
        spec = ssh_via(ssh_remote, sshd_server, proxy.port, tmp_path)
        with open_storage(replace(spec, options={**spec.options, "stall_timeout": STALL})) as storage:
            sink = FreezingSink(proxy, after=1_000_000)
            started = time.monotonic()
            with pytest.raises(RemoteError, match="stopped answering.*stall_timeout"):
                storage.read("big", sink)
            elapsed = time.monotonic() - started

    assert elapsed < STALL + MARGIN


def test_frozen_s3_read_fails_within_the_stall_timeout(s3_remote):
    with open_storage(s3_remote) as direct:
        direct.write("big", os.urandom(30_000_000))
    endpoint = urlsplit(s3_remote.options["endpoint_url"])
    with RelayProxy(endpoint.port) as proxy:
        options = {"endpoint_url": f"http://127.0.0.1:{proxy.port}", "stall_timeout": STALL}
        with open_storage(replace(s3_remote, options=options)) as storage:
            sink = FreezingSink(proxy, after=1_000_000)
            started = time.monotonic()
            with pytest.raises(RemoteError, match="stall_timeout"):
                storage.read("big", sink)
            elapsed = time.monotonic() - started

    assert elapsed < STALL + MARGIN


def test_stall_timeout_comes_from_flag_then_environment_then_config(isolated_home, tmp_path):
    config = isolated_home / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('stall_timeout = 7\n[remotes.s]\nurl = "s3://b/p"\n'
                      '[remotes.slow]\nurl = "s3://b/q"\nstall_timeout = 90\n')

    assert Settings.resolve().remote("s").options["stall_timeout"] == 7
    assert Settings.resolve().remote("slow").options["stall_timeout"] == 90
    from_env = Settings.resolve(env={**os.environ, "MODELREG_STALL_TIMEOUT": "3"})
    assert from_env.remote("slow").options["stall_timeout"] == 3
    assert Settings.resolve(env={**os.environ, "MODELREG_STALL_TIMEOUT": "3"},
                            stall_timeout=1.5).remote("s").options["stall_timeout"] == 1.5
    assert "stall_timeout" not in Settings.resolve().remote("local").options


# -- a web server where S3 or SSH should be ------------------------------------------------------

def test_web_server_on_the_ssh_port_is_named_as_not_ssh(settings, ssh_remote, sshd_server, tmp_path):
    with PlainHttpServer() as web:
        target = register_remote(settings, ssh_via(ssh_remote, sshd_server, web.port, tmp_path))
        out = run_cli("pull", "v9", "--remote", target, expect=5, timeout=60)

    assert f"127.0.0.1:{web.port} did not answer as an SSH server (got 'HTTP/1." in out.stderr
    assert "check the host and port" in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["pull", "push", "list"])
def test_web_server_as_s3_endpoint_is_named_as_not_s3(settings, s3_remote, tmp_path, command):
    make_bundle(settings, "v9", {"a.bin": b"a" * 1000}, tmp_path)
    with PlainHttpServer() as web:
        target = register_remote(settings, replace(s3_remote, options={"endpoint_url": web.url}))
        out = run_cli(command, "v9", "--remote", target, expect=5, timeout=60)

    assert f"{web.url} did not answer as an S3 server" in out.stderr, out.stderr
    assert "bucket does not exist" not in out.stderr and "already exists" not in out.stderr
    assert "Traceback" not in out.stderr
