"""Turning SFTP and SSH connection failures into registry errors for the `ssh://` backend.

SFTP version 3 (what OpenSSH speaks) reports only a few status codes: no such file,
permission denied, and a generic "Failure" that covers a full disk, a quota, a
read-only filesystem and an existing rename target alike. A full disk is told apart
by asking the server for the free space (statvfs@openssh.com) after a failed write.
"""

from __future__ import annotations

import errno
import socket
import struct

import paramiko
from paramiko.sftp import CMD_EXTENDED

from modelreg.errors import NotFound, RegistryError, RemoteError
from modelreg.storage.base import stall_advice
from modelreg.storage.ssh.connect import SSHTarget
from modelreg.storage.ssh.sessions import SFTPSession

TRANSFER_ERRORS = (OSError, EOFError, paramiko.SSHException)
"""What paramiko raises for a failed SFTP request or a failed connection."""


def errno_of(exc: BaseException) -> int | None:
    return getattr(exc, "errno", None)


def is_connection_failure(exc: BaseException | None) -> bool:
    """Is `exc` (or its cause) the SSH connection failing, rather than one SFTP request?"""
    while exc is not None:
        if isinstance(exc, (paramiko.SSHException, EOFError, socket.timeout, TimeoutError,
                            ConnectionError)):
            return True
        exc = exc.__cause__
    return False


class SSHErrors:
    """Builds the one-paragraph messages: what failed, on which server and path, what to do."""

    def __init__(self, target: SSHTarget, io_timeout: float) -> None:
        self.target = target
        self.io_timeout = io_timeout

    def translate(self, exc: BaseException, action: str, path: str) -> RegistryError:
        """The registry error for `exc`, raised while trying to `action` `path` (a RegistryError is kept)."""
        server = self.target.display
        if isinstance(exc, RegistryError):
            return exc
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return RemoteError(f"The SSH server {server} stopped answering while modelreg tried to "
                               f"{action} {path}: {stall_advice(self.io_timeout)}.")
        if is_connection_failure(exc):
            return RemoteError(f"The SSH connection to {server} failed while modelreg tried to "
                               f"{action} {path} ({exc or type(exc).__name__}). Retry; if it "
                               f"persists, check the server's sshd log.")
        if errno_of(exc) == errno.EACCES:
            return RemoteError(f"Permission denied on {server}: the user {self.target.user} may "
                               f"not {action} {path}. Give that user write access to the registry "
                               f"directory on the server, or use a registry path it owns.")
        if errno_of(exc) == errno.ENOENT:
            return NotFound(f"{path} does not exist on {server} (while trying to {action} it).")
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return RemoteError(f"The SSH server {server} could not {action} {path}: {reason}. Check "
                           f"the path, its permissions and free space on the server.")

    def for_write(self, session: SFTPSession, exc: BaseException, path: str, size: int) -> RegistryError:
        """Like `translate` for a failed upload of `size` bytes to `path`, recognizing a full disk."""
        directory = path.rsplit("/", 1)[0] or "/"
        if session.usable and isinstance(exc, OSError) and not exc.errno:
            free = free_bytes(session, directory)
            if free is not None and free < max(size, 1):
                return RemoteError(
                    f"The disk holding {directory} on {self.target.display} is full ({free} "
                    f"bytes free, {size} needed); the partial upload was removed. Free space on "
                    f"the server or choose another registry path.")
        return self.translate(exc, "write", path)


def free_bytes(session: SFTPSession, path: str) -> int | None:
    """Bytes available to unprivileged users on the filesystem of `path`, or None if the server won't say."""
    try:
        _kind, msg = session.sftp._request(CMD_EXTENDED, "statvfs@openssh.com", path)
        _bsize, frsize, _blocks, _bfree, bavail = (msg.get_int64() for _ in range(5))
        return frsize * bavail
    except (*TRANSFER_ERRORS, struct.error):
        return None
