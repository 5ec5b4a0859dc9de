"""Pooled SFTP sessions for the `ssh://` backend.

paramiko's `SFTPClient` is not safe to use from several threads at once, so each
`SFTPSession` (one SSH connection, one SFTP channel) is lent to one thread at a
time by a `SessionPool`. Separate connections, rather than channels of one, also
let a large file use several server processes and client threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import paramiko

from modelreg.errors import RegistryError, UsageError
from modelreg.storage.ssh.sftp import BulkSFTPClient

log = logging.getLogger(__name__)

class Connection(Protocol):
    """What a session needs of its connection: a paramiko `Transport`, or an `ssh` process (`openssh`)."""

    def is_active(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class SFTPSession:
    """One SSH connection with one SFTP channel."""

    transport: Connection
    sftp: BulkSFTPClient
    broken: bool = False

    @classmethod
    def open(cls, transport: paramiko.Transport, io_timeout: float) -> SFTPSession:
        return cls(transport, BulkSFTPClient.start(transport, io_timeout))

    @property
    def usable(self) -> bool:
        return not self.broken and self.transport.is_active()

    def close(self) -> None:
        self.transport.close()


class SessionPool:
    """Up to `limit` sessions, each lent to one thread at a time; idle ones are reused."""

    def __init__(self, connect: Callable[[], SFTPSession], limit: int) -> None:
        self._connect = connect
        self.limit = limit
        self._idle: list[SFTPSession] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self, share: bool = False) -> SFTPSession:
        """An idle or new session; waits while `limit` are lent out; raises connection errors.

        With `share`, a new connection is opened only when there is none: the caller
        waits for the one in use instead (an SSH handshake costs more than the small
        requests it would parallelize; large files still add streams, see `pipeline`).
        """
        with self._cond:
            while True:
                if self._closed:
                    raise UsageError("This SSH storage was closed; open the remote again.")
                session = self._take_idle()
                if session is not None:
                    return session
                if self._count < (1 if share else self.limit):
                    self._count += 1
                    break
                self._cond.wait()
        return self._open_reserved()

    def try_acquire(self, connect: bool = True) -> SFTPSession | None:
        """An idle session, else a new one (if `connect` and under the limit), else None.

        Never waits for a busy session; a failed connection also gives None.
        """
        with self._cond:
            if self._closed:
                return None
            session = self._take_idle()
            if session is not None or not connect or self._count >= self.limit:
                return session
            self._count += 1
        try:
            return self._open_reserved()
        except RegistryError:
            log.debug("no extra SSH connection", exc_info=True)
            return None

    def release(self, session: SFTPSession) -> None:
        """Take a session back; a broken one (or any, once closed) is closed instead of kept."""
        with self._cond:
            keep = session.usable and not self._closed
            if keep:
                self._idle.append(session)
            else:
                self._count -= 1
            self._cond.notify()
        if not keep:
            session.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for session in idle:
            session.close()

    def _take_idle(self) -> SFTPSession | None:
        while self._idle:
            session = self._idle.pop()
            if session.usable:
                return session
            self._count -= 1
            session.close()
        return None

    def _open_reserved(self) -> SFTPSession:
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
