"""Large files over OpenSSH's own `ssh` client: SFTP spoken through its pipes, crypto in C.

paramiko decrypts every SSH packet in Python while holding the GIL: one connection
moves ~330 MB/s here, against ~600 MB/s for `ssh` (measured on loopback, 2 cores). So
a file of `BULK_MIN_BYTES` or more moves over an `ssh -s HOST sftp` subprocess: the
same `BulkSFTPClient` requests, written to its stdin and read from its stdout, while
`ssh` does the cryptography in another process (on the other core). The process starts
(~0.2 s) while paramiko already moves the file's first bytes, and takes over the rest
(`pipeline.Takeover`); it then serves the storage's later large files too.

Trust is not delegated to OpenSSH's configuration: the subprocess is started only
after paramiko connected, checked the host key against modelreg's known_hosts
(`hostkeys`) and logged in. `ssh` runs with `-F /dev/null` (no user or system config,
so no ProxyCommand, ControlMaster or LocalCommand), `BatchMode` (never prompts), and a
private known_hosts file holding exactly the key paramiko verified, under
`StrictHostKeyChecking=yes`: a server presenting any other key is refused by `ssh`
itself. It logs in with the key file paramiko used (or ssh-agent, if that was it); an
encrypted key file is never handed to it. Anything that fails while starting it
(no `ssh` binary, a refused login, a different host key) just leaves the transfer on
paramiko. The storage option `bulk="paramiko"` (`MODELREG_SSH_BULK=paramiko`) turns this off.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import paramiko

from modelreg.storage.ssh.connect import SSHTarget
from modelreg.storage.ssh.hostkeys import RSA_ALGORITHMS
from modelreg.storage.ssh.sessions import SFTPSession
from modelreg.storage.ssh.sftp import BulkSFTPClient

log = logging.getLogger(__name__)

BULK_MIN_BYTES = 128 * 1024 * 1024
"""Files this large move over `ssh`: starting it costs ~0.2 s, which pays from ~150 MB on."""
TAKE_OVER_FIRST = False
"""Tests set it: paramiko then waits for `ssh` to start instead of moving the first bytes meanwhile."""
PIPE_SIZE = 1024 * 1024
CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr"
PINNED_ALIAS = "modelreg-verified-host"
F_SETPIPE_SZ = 1031


class SSHProcess:
    """The `ssh` subprocess as the byte stream under an SFTP client (and as its session's transport)."""

    def __init__(self, process: subprocess.Popen, timeout: float) -> None:
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        self._in, self._out = process.stdin.fileno(), process.stdout.fileno()
        self._timeout = timeout
        for fd in (self._in, self._out):
            try:
                import fcntl

                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
            except (OSError, ImportError):
                pass

    def send(self, data) -> int:
        self._wait(self._in, writable=True)
        return os.write(self._in, data)

    def sendall(self, data) -> None:
        view = memoryview(data)
        while view:
            view = view[self.send(view):]

    def send_parts(self, *parts) -> None:
        """Send `parts` one after the other, gathered by `writev` instead of joined first."""
        views = [memoryview(part) for part in parts]
        while views:
            self._wait(self._in, writable=True)
            sent = os.writev(self._in, views)
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if views and sent:
                views[0] = views[0][sent:]

    def recv(self, size: int) -> bytes:
        self._wait(self._out, writable=False)
        return os.read(self._out, size)

    def _wait(self, fd: int, writable: bool) -> None:
        """Block until `fd` is ready, at most the stall timeout (then TimeoutError, as a socket would)."""
        ready = select.select([], [fd], [], self._timeout) if writable else select.select([fd], [], [], self._timeout)
        if not any(ready):
            raise TimeoutError(f"no progress for {self._timeout:g} s")

    def get_name(self) -> str:
        return "ssh"

    def settimeout(self, timeout: float) -> None:
        self._timeout = timeout

    def is_active(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        for stream in (self._process.stdin, self._process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


def start_session(target: SSHTarget, server_key: paramiko.PKey, identity: Path | None,
                  timeout: float) -> SFTPSession | None:
    """An SFTP session over a new `ssh` process pinned to `server_key`, or None if it cannot be had."""
    ssh = shutil.which("ssh")
    if ssh is None:
        return None
    with tempfile.TemporaryDirectory(prefix="modelreg-ssh-") as private:
        known_hosts = Path(private) / "known_hosts"
        known_hosts.write_text(f"{PINNED_ALIAS} {server_key.get_name()} {server_key.get_base64()}\n")
        command = _command(ssh, target, server_key, identity, known_hosts, timeout)
        errors = tempfile.TemporaryFile()
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                       bufsize=0, start_new_session=True)
        except OSError:
            errors.close()
            log.debug("cannot start %s", ssh, exc_info=True)
            return None
        channel = SSHProcess(process, timeout)
        try:
            client = BulkSFTPClient(channel)
            client.read_size, client.write_size = client._request_limits()
        except (OSError, EOFError, paramiko.SSHException):
            channel.close()
            errors.seek(0)
            log.debug("ssh for large files unavailable: %s", errors.read(2000).decode(errors="replace"))
            return None
        finally:
            errors.close()
    return SFTPSession(channel, client)


def _command(ssh: str, target: SSHTarget, server_key: paramiko.PKey, identity: Path | None,
             known_hosts: Path, timeout: float) -> list[str]:
    algorithms = ",".join(RSA_ALGORITHMS) if server_key.get_name() == "ssh-rsa" else server_key.get_name()
    options = {
        "BatchMode": "yes", "StrictHostKeyChecking": "yes", "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null", "HostKeyAlias": PINNED_ALIAS, "HostKeyAlgorithms": algorithms,
        "UpdateHostKeys": "no", "CheckHostIP": "no", "Ciphers": CIPHERS, "Compression": "no",
        "ConnectTimeout": str(max(1, round(target.connect_timeout))), "ServerAliveInterval": "0",
        "ClearAllForwardings": "yes", "PermitLocalCommand": "no", "ForwardAgent": "no",
        "LogLevel": "ERROR", "User": target.user, "Port": str(target.port),
    }
    if identity is not None:
        options |= {"IdentityFile": str(identity), "IdentitiesOnly": "yes"}
    flags = [item for name, value in options.items() for item in ("-o", f"{name}={value}")]
    return [ssh, "-F", "/dev/null", "-T", *flags, "-s", "--", target.hostname, "sftp"]


class BulkChannel:
    """At most one `ssh` session per storage, opened on first use and lent to one thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = threading.Lock()
        self._session: SFTPSession | None = None
        self._failed = False
        self._closed = False

    def acquire(self, opener) -> SFTPSession | None:
        """The session (opened with `opener()` the first time), or None if busy, failed or closed."""
        if not self._busy.acquire(blocking=False):
            return None
        with self._lock:
            if self._session is not None and not self._session.usable:
                self._session.close()
                self._session = None
            if self._session is None and not self._failed and not self._closed:
                self._session = opener()
                self._failed = self._session is None
            session = self._session
        if session is None:
            self._busy.release()
        return session

    def release(self, session: SFTPSession) -> None:
        if session.broken:
            with self._lock:
                if self._session is session:
                    self._session = None
            session.close()
        self._busy.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            session.close()
