"""The `ssh://` backend: a registry root on any OpenSSH server, over SFTP (paramiko).

`ssh://[user@]host[:port]/absolute/path` (or `ssh://host/~/path`, relative to the
login directory), with `~/.ssh/config`, ssh-agent and known_hosts honoured
(`ssh_connect`, `ssh_hostkeys`). Writes go to a temp name beside the target, are
flushed (fsync@openssh.com) and published by SFTP `rename` (create-only: OpenSSH
links, so it never replaces an existing file) or `posix-rename@openssh.com`
(overwrite). Each method may run in several threads at once: connections are pooled
(`ssh_sessions`), and a large file moves over two of them (`ssh_pipeline`).

Capabilities: create-only publishing is atomic on OpenSSH's sftp-server (its
`rename` links and never replaces; other SFTP servers may differ), replacing is
atomic (`posix-rename`), and SFTP has no server-side checksum.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import stat as stat_mode
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import paramiko

from modelreg.config import RemoteSpec
from modelreg.errors import AlreadyExists, IntegrityError, NotFound, RegistryError, RemoteError
from modelreg.hashing import HashingReader, Progress
from modelreg.storage.base import (
    TEMP_PREFIX,
    Capabilities,
    ObjectInfo,
    Sink,
    StorageBase,
    UploadInfo,
    temp_key_of,
    temp_upload,
)
from modelreg.storage.ssh import openssh
from modelreg.storage.ssh.connect import ConnectOptions, KeyFiles, open_transport, resolve_target
from modelreg.storage.ssh.errors import TRANSFER_ERRORS, SSHErrors, errno_of, is_connection_failure
from modelreg.storage.ssh.hostkeys import HostKeyVerifier
from modelreg.storage.ssh.pipeline import ResumePastEnd, Takeover, read_file, write_file
from modelreg.storage.ssh.sessions import SessionPool, SFTPSession

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 8
STREAMS_PER_FILE = 2
"""Connections one large file is spread over (measured: bench/bench_ssh.py)."""


CAPABILITIES = Capabilities(atomic_create_only=True, atomic_replace=True, server_side_checksums=False,
                            parallel_transfers=4)


class SSHStorage(StorageBase):
    """A registry root directory on an SSH server; connects lazily, created on first write.

    Options (`RemoteSpec.options`, declared in `modelreg.storage.schemes`):
    `identity_file`, `known_hosts` (the modelreg known_hosts file, read besides
    ~/.ssh/known_hosts, where accepted keys are recorded), `connect_timeout`
    (seconds), `stall_timeout` (seconds without a reply before an operation fails;
    default `DEFAULT_STALL_TIMEOUT`); and, passed by the program, never stored: `accept_new_host_key`,
    `passphrase` (a string, or a callable given the key path) for an encrypted key file, and
    `bulk`: "paramiko" keeps large files off the `ssh` process (`openssh`).
    """

    def __init__(self, spec: RemoteSpec) -> None:
        self.url = spec.url
        self.capabilities = CAPABILITIES
        self.cancelled = threading.Event()
        self._options = ConnectOptions.from_spec(spec)
        self.target = resolve_target(spec, self._options)
        self._verifier = HostKeyVerifier(list(self.target.known_hosts), self._options.known_hosts,
                                         self._options.accept_new_host_key)
        self._keys = KeyFiles(self._options.passphrase)
        self.stall_timeout = self._options.stall_timeout
        self._errors = SSHErrors(self.target, self.stall_timeout)
        self._root: str | None = self.target.root if self.target.root.startswith("/") else None
        self._pool = SessionPool(self._connect, MAX_CONNECTIONS)
        self._bulk = openssh.BulkChannel()
        self._bulk_enabled = spec.options.get("bulk", "openssh") != "paramiko"
        self._server_key: paramiko.PKey | None = None

    def stat(self, key: str) -> int | None:
        with self._session() as session:
            path = self._path(key)
            try:
                return session.sftp.stat(path).st_size
            except TRANSFER_ERRORS as exc:
                if errno_of(exc) == errno.ENOENT:
                    return None
                self._fail(exc, "read", path)

    def read(self, key: str, sink: Sink, *, offset: int = 0) -> None:
        guarded = _SinkGuard(sink)
        with self._session() as session:
            path = self._path(key)
            try:
                handle = session.sftp.open(path, "rb")
            except TRANSFER_ERRORS as exc:
                if errno_of(exc) == errno.ENOENT:
                    raise NotFound(f"{key} does not exist in {self.url}.") from exc
                self._fail(exc, "read", path)
            try:
                attrs = handle.stat()
                takeover = self._takeover(path, attrs, (attrs.st_size or 0) - offset)
                read_file(session, handle, attrs, path, offset, guarded, pool=self._pool,
                          max_streams=1 if takeover else STREAMS_PER_FILE, stop=self.cancelled,
                          takeover=takeover, takeover_first=openssh.TAKE_OVER_FIRST)
            except ResumePastEnd as exc:
                raise RemoteError(f"Cannot resume {key} on {self.url} at byte {offset}: the object has "
                                  f"only {exc.size} bytes; delete the partial download and retry.") from None
            except TRANSFER_ERRORS as exc:
                if exc is guarded.error:
                    raise
                self._fail(exc, "read", path)
            finally:
                _close_quietly(handle, session)

    def write(self, key: str, source: Path | bytes | HashingReader, *, create_only: bool = False,
              sha256: str | None = None, progress: Progress | None = None) -> None:
        """Upload to a temp name beside the target, flush it, then publish it; no temp outlives a failure.

        SFTP offers no server-side checksum, so `sha256` is not checked here; pulls verify every byte.
        """
        with _SourceReader(source) as reader, self._session() as session:
            target = self._path(key)
            temp = posixpath.join(posixpath.dirname(target),
                                  f"{TEMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(target)}")
            created = published = False
            try:
                if create_only and self._exists(session, target):
                    raise AlreadyExists(f"{key} already exists in {self.url}.")
                handle = self._create(session, temp)
                created = True
                try:
                    takeover = self._takeover(temp, None, reader.size)
                    write_file(session, handle, temp, reader.size, reader.read, progress, pool=self._pool,
                               max_streams=1 if takeover else STREAMS_PER_FILE, stop=self.cancelled,
                               takeover=takeover, takeover_first=openssh.TAKE_OVER_FIRST)
                    session.sftp.fsync(handle.handle)  # flushes the file, whichever connection wrote it
                finally:
                    _close_quietly(handle, session)
                self._publish(session, key, temp, target, create_only)
                published = True
            except TRANSFER_ERRORS as exc:
                if isinstance(exc, RegistryError):
                    raise
                raise self._errors.for_write(session, exc, target, reader.size) from exc
            finally:
                if created and not published:
                    self._remove_quietly(session, temp)

    def _walk(self, prefix: str) -> list[tuple[str, paramiko.SFTPAttributes]]:
        """(key, attributes) of every file under `prefix`, temp files included; symlinks are not followed
        (SFTP's readdir reports a link as a link)."""
        with self._session() as session:
            base = self._path(prefix.strip("/")) if prefix.strip("/") else self._root_path
            found: list[tuple[str, paramiko.SFTPAttributes]] = []
            directories = [base]
            while directories:
                directory = directories.pop()
                try:
                    entries = session.sftp.listdir_attr(directory)
                except TRANSFER_ERRORS as exc:
                    if errno_of(exc) == errno.ENOENT:
                        continue
                    self._fail(exc, "list", directory)
                for entry in entries:
                    full = posixpath.join(directory, entry.filename)
                    if stat_mode.S_ISDIR(entry.st_mode or 0):
                        directories.append(full)
                    else:
                        found.append((posixpath.relpath(full, self._root_path), entry))
            return found

    def list_info(self, prefix: str) -> list[ObjectInfo]:
        """As the protocol says; ages compare the server's mtimes with this machine's clock."""
        now = time.time()
        return sorted((ObjectInfo(key, entry.st_size or 0, entry.st_mtime or 0,
                                  max(0.0, now - (entry.st_mtime or 0)))
                       for key, entry in self._walk(prefix) if not entry.filename.startswith(TEMP_PREFIX)),
                      key=lambda item: item.key)

    def list_uploads(self, prefix: str) -> list[UploadInfo]:
        """As the protocol says; ages compare the server's mtimes with this machine's clock."""
        now = time.time()
        uploads = (temp_upload(key, entry.st_size or 0, now - (entry.st_mtime or 0))
                   for key, entry in self._walk(prefix))
        return sorted((upload for upload in uploads if upload is not None),
                      key=lambda upload: (upload.key, upload.upload_id))

    def remove_upload(self, upload: UploadInfo) -> None:
        self.delete(temp_key_of(upload))

    def delete(self, key: str) -> None:
        with self._session() as session:
            path = self._path(key)
            try:
                session.sftp.remove(path)
            except TRANSFER_ERRORS as exc:
                if errno_of(exc) != errno.ENOENT:
                    self._fail(exc, "delete", path)

    def close(self) -> None:
        """Close every pooled connection; closing twice is harmless, using the storage afterwards is not."""
        self._pool.close()
        self._bulk.close()

    def _takeover(self, path: str, expected: paramiko.SFTPAttributes | None, size: int) -> Takeover | None:
        """For a transfer of `size` bytes or more than `BULK_MIN_BYTES`: how an `ssh` process takes it over.

        The process starts (once per storage, see `openssh`) while paramiko already moves
        data. For a read, `expected` are the attributes of the file as opened over
        paramiko: the `ssh` side joins only when it sees the same size and mtime (the
        same version of the file). For a write (`expected` None) it reopens the temp file.
        """
        if size < openssh.BULK_MIN_BYTES or not self._bulk_enabled or self._keys.accepted is None:
            return None

        def take_over() -> tuple[SFTPSession, paramiko.SFTPFile, Callable[[], None]] | None:
            session = self._bulk.acquire(self._open_bulk)
            if session is None:
                return None
            handle = None
            try:
                handle = session.sftp.open(path, "rb" if expected is not None else "r+")
                attrs = handle.stat()
            except TRANSFER_ERRORS:
                log.debug("the ssh process cannot open %s", path, exc_info=True)
                session.broken = True
                attrs = None

            def release() -> None:
                if handle is not None:
                    _close_quietly(handle, session)
                self._bulk.release(session)

            if handle is None or attrs is None or (expected is not None and (
                    attrs.st_size, attrs.st_mtime) != (expected.st_size, expected.st_mtime)):
                release()
                return None
            return session, handle, release

        return take_over

    def _open_bulk(self) -> SFTPSession | None:
        """A session over an `ssh` process that logs in as paramiko did, pinned to the key it verified."""
        accepted, server_key = self._keys.accepted, self._server_key
        if accepted is None or server_key is None or accepted[0] == "encrypted":
            return None
        return openssh.start_session(self.target, server_key, accepted[1], self.stall_timeout)

    def _connect(self) -> SFTPSession:
        transport = open_transport(self.target, self._options, self._verifier, self._keys)
        self._server_key = transport.get_remote_server_key()
        try:
            session = SFTPSession.open(transport, self.stall_timeout)
            if self._root is None:
                home = session.sftp.normalize(".")
                self._root = posixpath.join(home, self.target.root).rstrip("/") or "/"
        except TRANSFER_ERRORS as exc:
            transport.close()
            raise RemoteError(
                f"{self.target.display} accepted the SSH login but its SFTP service failed "
                f"({exc or type(exc).__name__}). Check that the server's sshd_config has a "
                f"'Subsystem sftp' line.") from exc
        return session

    @contextmanager
    def _session(self) -> Iterator[SFTPSession]:
        """One pooled session; operations share a single connection unless a large file adds
        streams (measured: a push or pull of a 4-file bundle opened 4 connections)."""
        session = self._pool.acquire(share=True)
        try:
            yield session
        except BaseException as exc:
            if is_connection_failure(exc):
                session.broken = True
            raise
        finally:
            self._pool.release(session)

    @property
    def _root_path(self) -> str:
        """The absolute registry root (known once a session exists: keys are resolved inside one)."""
        assert self._root is not None, "the SSH root is resolved when the first session opens"
        return self._root

    def _path(self, key: str) -> str:
        return posixpath.join(self._root_path, *key.split("/"))

    def _fail(self, exc: BaseException, action: str, path: str) -> NoReturn:
        if isinstance(exc, RegistryError):
            raise exc
        raise self._errors.translate(exc, action, path) from exc

    def _create(self, session: SFTPSession, temp: str) -> paramiko.SFTPFile:
        """Open a new temp file exclusively, creating its parent directories when missing."""
        try:
            return session.sftp.open(temp, "wbx")
        except OSError as exc:
            if errno_of(exc) != errno.ENOENT:
                raise
        self._makedirs(session, posixpath.dirname(temp))
        return session.sftp.open(temp, "wbx")

    def _makedirs(self, session: SFTPSession, path: str) -> None:
        """`mkdir -p`, tolerant of directories that exist already or appear concurrently."""
        try:
            session.sftp.mkdir(path)
            return
        except OSError as exc:
            error = exc
        if errno_of(error) == errno.ENOENT and path not in ("/", ""):
            self._makedirs(session, posixpath.dirname(path))
            try:
                session.sftp.mkdir(path)
                return
            except OSError as exc:
                error = exc
        try:
            if stat_mode.S_ISDIR(session.sftp.stat(path).st_mode or 0):
                return
        except OSError:
            pass
        raise error

    def _publish(self, session: SFTPSession, key: str, temp: str, target: str, create_only: bool) -> None:
        """Rename the temp into place: `rename` (never replaces on OpenSSH) or `posix-rename` (replaces)."""
        if not create_only:
            session.sftp.posix_rename(temp, target)
            return
        try:
            session.sftp.rename(temp, target)
        except OSError as exc:
            if self._exists(session, target):
                raise AlreadyExists(f"{key} already exists in {self.url}.") from exc
            raise

    def _exists(self, session: SFTPSession, path: str) -> bool:
        try:
            session.sftp.stat(path)
            return True
        except OSError as exc:
            if errno_of(exc) == errno.ENOENT:
                return False
            raise

    def _remove_quietly(self, session: SFTPSession, path: str) -> None:
        """Best effort removal of a failed write's temp file, through a fresh connection if needed."""
        fresh = None if session.usable else self._pool.try_acquire()
        try:
            if session.usable or fresh is not None:
                (fresh or session).sftp.remove(path)
        except TRANSFER_ERRORS:
            log.warning("could not remove the temp file %s on %s", path, self.target.display)
        finally:
            if fresh is not None:
                self._pool.release(fresh)


class _SinkGuard:
    """Forwards writes to the caller's sink and remembers what it raised, so that propagates unchanged."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self.error: BaseException | None = None

    def write(self, data: bytes | bytearray | memoryview) -> object:
        try:
            return self._sink.write(data)
        except BaseException as exc:
            self.error = exc
            raise


class _SourceReader:
    """Random access to an upload source (a file or bytes), safe from several threads."""

    def __init__(self, source: Path | bytes | HashingReader) -> None:
        self._hashing = source if isinstance(source, HashingReader) else None
        in_memory = isinstance(source, (bytes, bytearray, memoryview))
        self._data = bytes(source) if in_memory else None  # type: ignore[arg-type]
        self._path = None if in_memory or self._hashing else Path(source)  # type: ignore[arg-type]
        self._fd: int | None = None
        self.size = len(self._data) if self._data is not None else (self._hashing.size if self._hashing else 0)

    def __enter__(self) -> _SourceReader:
        if self._path is not None:
            try:
                self._fd = os.open(self._path, os.O_RDONLY)
            except FileNotFoundError as exc:
                raise NotFound(f"Cannot upload {self._path}: it does not exist.") from exc
            self.size = os.fstat(self._fd).st_size
        return self

    def read(self, offset: int, length: int) -> bytes:
        if self._hashing is not None:
            return self._hashing.read_at(offset, length)
        if self._data is not None:
            return self._data[offset:offset + length]
        assert self._fd is not None, "read() is only called inside the `with` block"
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise IntegrityError(f"{self._path} changed size while being uploaded; upload it again.",
                                 path=str(self._path))
        return data

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _close_quietly(handle: paramiko.SFTPFile, session: SFTPSession) -> None:
    if not session.usable:
        return
    try:
        handle.close()
    except TRANSFER_ERRORS:
        session.broken = True
