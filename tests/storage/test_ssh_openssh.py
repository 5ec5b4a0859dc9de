"""Large SSH files over an OpenSSH `ssh` process (`modelreg.storage.ssh.openssh`), on a real sshd.

The contract suite runs every operation this way too ("ssh-openssh" in test_contract.py);
here: that the process is pinned to the host key paramiko verified and logs in as
paramiko did, and that anything wrong with it leaves the transfer on paramiko.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest

from modelreg.config import RemoteSpec
from modelreg.errors import RemoteError
from modelreg.storage.ssh import openssh, pipeline
from modelreg.storage.ssh.backend import SSHStorage
from tests.servers.ssh import generate_key

pytestmark = pytest.mark.ssh

SIZE = 3 * 1024 * 1024 + 17


@pytest.fixture
def payload() -> bytes:
    return os.urandom(SIZE)


class Starts(list):
    """Each attempt to start `ssh`: {"identity", "key", "command", "session"}."""

    swap_key: paramiko.PKey | None = None
    """When set, `ssh` is pinned to this key instead of the one paramiko verified."""


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Starts:
    """Files of 1 MiB or more go over `ssh`; each attempt to start it is recorded."""
    monkeypatch.setattr(openssh, "BULK_MIN_BYTES", 1024 * 1024)
    monkeypatch.setattr(openssh, "TAKE_OVER_FIRST", True)
    calls = Starts()
    real_start, real_command = openssh.start_session, openssh._command

    def recording_command(*args, **kwargs):
        command = real_command(*args, **kwargs)
        calls[-1]["command"] = command
        return command

    def recording_start(target, server_key, identity, timeout):
        call = {"identity": identity, "key": server_key}
        calls.append(call)
        call["session"] = real_start(target, calls.swap_key or server_key, identity, timeout)
        return call["session"]

    monkeypatch.setattr(openssh, "_command", recording_command)
    monkeypatch.setattr(openssh, "start_session", recording_start)
    return calls


def read_bytes(storage: SSHStorage, key: str, offset: int = 0) -> bytes:
    sink = io.BytesIO()
    storage.read(key, sink, offset=offset)
    return sink.getvalue()


def option(command: list[str], name: str) -> str:
    values = [item.split("=", 1)[1] for item in command if item.startswith(f"{name}=")]
    assert len(values) == 1, (name, command)
    return values[0]


def test_a_large_file_moves_over_one_pinned_ssh_process(ssh_remote: RemoteSpec, payload, started, monkeypatch):
    through_ssh = []
    real_recv = openssh.SSHProcess.recv
    monkeypatch.setattr(openssh.SSHProcess, "recv",
                        lambda self, size: through_ssh.append(real_recv(self, size)) or through_ssh[-1])
    with SSHStorage(ssh_remote) as storage:
        storage.write("big.bin", payload)
        through_ssh.clear()
        assert read_bytes(storage, "big.bin") == payload
        assert sum(map(len, through_ssh)) > SIZE  # every byte came through ssh
        assert read_bytes(storage, "big.bin", offset=SIZE - 1024 * 1024) == payload[-1024 * 1024:]
        storage.write("small.bin", b"x" * 1000)  # below the threshold: paramiko
        assert read_bytes(storage, "small.bin") == b"x" * 1000
        process = storage._bulk._session
        assert process is not None and process.usable
    assert len(started) == 1 and started[0]["session"] is not None
    command = started[0]["command"]
    assert command[1:3] == ["-F", "/dev/null"] and command[-3:] == ["--", "127.0.0.1", "sftp"]
    assert option(command, "StrictHostKeyChecking") == "yes" and option(command, "BatchMode") == "yes"
    assert option(command, "GlobalKnownHostsFile") == "/dev/null"
    assert option(command, "HostKeyAlgorithms") == started[0]["key"].get_name()
    assert Path(option(command, "IdentityFile")) == Path(ssh_remote.options["identity_file"])
    assert not Path(option(command, "UserKnownHostsFile")).exists()  # the private pin is gone
    assert not process.usable  # closed with the storage


def test_a_different_host_key_is_refused_by_ssh_and_paramiko_carries_on(ssh_remote, payload, started):
    started.swap_key = paramiko.ECDSAKey.generate()
    with SSHStorage(ssh_remote) as storage:
        storage.write("big.bin", payload)
        assert read_bytes(storage, "big.bin") == payload
    assert len(started) == 1 and started[0]["session"] is None  # refused once, not retried per file
    assert option(started[0]["command"], "HostKeyAlgorithms") == "ecdsa-sha2-nistp256"


def test_an_encrypted_key_file_is_never_handed_to_ssh(sshd_server, ssh_remote, tmp_path, payload, started):
    key = generate_key(tmp_path / "id_locked", passphrase="open sesame")
    with open(sshd_server.workdir / "authorized_keys", "a") as authorized:
        authorized.write(key.with_suffix(".pub").read_text())
    spec = replace(ssh_remote, options={**ssh_remote.options, "identity_file": str(key),
                                        "passphrase": "open sesame"})
    with SSHStorage(spec) as storage:
        storage.write("big.bin", payload)
        assert read_bytes(storage, "big.bin") == payload
    assert started == []


@pytest.mark.parametrize("how", ["MODELREG_SSH_BULK=paramiko", "no ssh binary"])
def test_without_ssh_large_files_use_paramiko(settings, ssh_remote, payload, started, monkeypatch, how):
    if how == "no ssh binary":
        monkeypatch.setattr(openssh.shutil, "which", lambda name: None)
    else:
        monkeypatch.setenv("MODELREG_SSH_BULK", "paramiko")
    popen = []
    monkeypatch.setattr(openssh.subprocess, "Popen", lambda *a, **k: popen.append(a))
    spec = type(settings).resolve().remote(ssh_remote.url, identity_file=ssh_remote.options["identity_file"],
                                           known_hosts=ssh_remote.options["known_hosts"])
    assert spec.options["bulk"] == ("paramiko" if how.startswith("MODELREG") else "openssh")
    with SSHStorage(spec) as storage:
        storage.write("big.bin", payload)
        assert read_bytes(storage, "big.bin") == payload
    assert popen == [] and all(call["session"] is None for call in started)


def test_an_ssh_process_that_dies_is_replaced_and_a_failed_read_says_so(ssh_remote, started):
    # larger than what a read fetches ahead of its sink (pipeline.MAX_AHEAD), so a process killed
    # at the first bytes the sink takes cannot have delivered the rest already
    payload = os.urandom(pipeline.MAX_AHEAD + 8 * 1024 * 1024)
    with SSHStorage(ssh_remote) as storage:
        storage.write("big.bin", payload)
        first = storage._bulk._session
        assert first is not None
        first.transport._process.kill()
        first.transport._process.wait()
        assert read_bytes(storage, "big.bin") == payload  # the dead process is noticed before use
        assert len(started) == 2 and storage._bulk._session is not first

        class KillingSink(io.BytesIO):
            """Kills the ssh process when the first bytes arrive (bytes already received may follow)."""

            killed = False

            def write(self, data):
                if not self.killed:
                    storage._bulk._session.transport._process.kill()
                    self.killed = True
                return super().write(data)

        with pytest.raises(RemoteError, match="SSH connection"):
            storage.read("big.bin", KillingSink())
        assert read_bytes(storage, "big.bin") == payload


def test_a_silent_ssh_process_times_out_instead_of_hanging():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, bufsize=0)
    channel = openssh.SSHProcess(process, timeout=0.3)
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            channel.recv(100)
        assert time.monotonic() - start < 5
    finally:
        channel.close()
    assert not channel.is_active()


def test_paramiko_moves_the_first_bytes_while_ssh_starts_then_ssh_takes_over(ssh_remote, monkeypatch):
    monkeypatch.setattr(openssh, "BULK_MIN_BYTES", 1024 * 1024)
    through_ssh = []
    real_recv = openssh.SSHProcess.recv

    def counting_recv(self, size):
        data = real_recv(self, size)
        through_ssh.append(len(data))
        return data

    monkeypatch.setattr(openssh.SSHProcess, "recv", counting_recv)
    payload = os.urandom(48 * 1024 * 1024 + 5)
    with SSHStorage(ssh_remote) as storage:
        storage.write("big.bin", payload)  # over either or both connections: the bytes must match
        through_ssh.clear()

        class WaitForSSH(io.BytesIO):
            """Holds the first bytes until the ssh process is up, so paramiko fetched its window
            (32 MiB ahead) and ssh must take over the rest."""

            def write(self, data):
                deadline = time.monotonic() + 20
                while storage._bulk._session is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                return super().write(data)

        storage._bulk.close()  # a fresh start for the read below
        storage._bulk = openssh.BulkChannel()
        sink = WaitForSSH()
        storage.read("big.bin", sink)
        assert sink.getvalue() == payload
    assert 0 < sum(through_ssh) < len(payload)


def test_parts_sent_to_the_ssh_process_arrive_whole_and_in_order():
    """`send_parts` (writev) survives partial writes: 5 MB through `cat`, larger than any pipe buffer."""
    process = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    channel = openssh.SSHProcess(process, timeout=10)
    parts = [b"header", os.urandom(3_000_000), b"", os.urandom(2_000_001)]
    received = bytearray()

    def read_back() -> None:
        while len(received) < sum(map(len, parts)):
            received.extend(channel.recv(1 << 20))

    reader = threading.Thread(target=read_back)
    reader.start()
    try:
        channel.send_parts(*parts)
        reader.join(timeout=30)
        assert bytes(received) == b"".join(parts)
    finally:
        channel.close()


def test_an_unknown_ssh_bulk_setting_is_a_config_error(monkeypatch):
    from modelreg.config import Settings
    from modelreg.errors import ConfigError

    monkeypatch.setenv("MODELREG_SSH_BULK", "scp")
    with pytest.raises(ConfigError, match="MODELREG_SSH_BULK='scp': use openssh"):
        Settings.resolve()


def test_a_large_upload_is_flushed_behind_the_ssh_process_by_the_retired_connection(ssh_remote, started,
                                                                                  monkeypatch):
    from modelreg.storage.ssh.sftp import BulkSFTPClient

    monkeypatch.setattr(pipeline, "FLUSH_EVERY", 1024 * 1024)
    flushes = []
    real_send_fsync = BulkSFTPClient.send_fsync

    def counting_send_fsync(self, handle):
        flushes.append((isinstance(self.sock, openssh.SSHProcess), threading.current_thread().name))
        return real_send_fsync(self, handle)

    monkeypatch.setattr(BulkSFTPClient, "send_fsync", counting_send_fsync)
    payload = os.urandom(12 * 1024 * 1024 + 3)
    with SSHStorage(ssh_remote) as storage:
        storage.write("big.bin", payload)
        assert read_bytes(storage, "big.bin") == payload
    assert started and started[0]["session"] is not None
    behind = [name for over_ssh, name in flushes[:-1] if not over_ssh]
    assert len(behind) >= 2, flushes  # while ssh wrote, over paramiko's connection
    assert all(not over_ssh for over_ssh, _ in flushes)  # never queued behind ssh's writes
    assert flushes[-1][1] == threading.current_thread().name  # the final fsync, by the caller


def test_a_failed_flush_behind_the_writer_does_not_fail_the_upload(ssh_remote, started, monkeypatch):
    from modelreg.storage.ssh.sftp import BulkSFTPClient

    monkeypatch.setattr(pipeline, "FLUSH_EVERY", 1024 * 1024)
    caller = threading.current_thread().name
    behind: list[str] = []
    refuse_next = threading.local()
    real_send_fsync, real_check = BulkSFTPClient.send_fsync, pipeline.check_status

    def recording_send_fsync(self, handle):
        if threading.current_thread().name != caller:
            behind.append(threading.current_thread().name)
            refuse_next.flag = True
        return real_send_fsync(self, handle)

    def refusing_check(body):
        if getattr(refuse_next, "flag", False):
            refuse_next.flag = False
            raise OSError("Failure")
        return real_check(body)

    monkeypatch.setattr(BulkSFTPClient, "send_fsync", recording_send_fsync)
    monkeypatch.setattr(pipeline, "check_status", refusing_check)
    payload = os.urandom(8 * 1024 * 1024)
    with SSHStorage(ssh_remote) as storage:
        storage.write("big.bin", payload)
        assert read_bytes(storage, "big.bin") == payload
    assert len(behind) == 1  # refused once, then no more flushes behind the writer
