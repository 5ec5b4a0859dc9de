"""The `file://` backend: a registry root on a local or mounted filesystem.

The embedded default. Writes go to a unique temp name in the target directory, are
fsynced and published with `os.replace` (overwrite) or `os.link` (create-only: fails
if the name exists, so of two racing publishers exactly one wins). Temp names start
with `TEMP_PREFIX` and are never listed.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mode
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelreg.config import RemoteSpec
from modelreg.errors import AlreadyExists, LocalIOError, NotFound, RemoteError, UsageError
from modelreg.file_writes import open_sliced
from modelreg.hashing import CHUNK_SIZE, HashingReader, Progress
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


def root_from_url(url: str) -> Path:
    """The directory a `file://` URL names; only local paths (`file:///abs` or `file://localhost/abs`)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise UsageError(f"Invalid file URL {url!r}: use file:///absolute/path.")
    return Path(unquote(parts.path))


CAPABILITIES = Capabilities(atomic_create_only=True, atomic_replace=True, server_side_checksums=False,
                            parallel_transfers=1)
"""One file at a time: a local disk gains nothing from parallel copies."""


class LocalStorage(StorageBase):
    """A registry root directory; created on first write. Takes no options."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.url = spec.url
        self.root = root_from_url(spec.url)
        self.capabilities = CAPABILITIES
        self.cancelled = threading.Event()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def stat(self, key: str) -> int | None:
        try:
            info = self._path(key).lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RemoteError(f"Cannot read {self._path(key)}: {exc.strerror}.") from exc
        self._require_regular(key, info.st_mode)
        return info.st_size

    def _require_regular(self, key: str, mode: int) -> None:
        """Refuse a FIFO, symlink, device or directory where an object should be: reading one could
        hang forever (a FIFO) or leave the registry root (a symlink)."""
        if not stat_mode.S_ISREG(mode):
            raise RemoteError(f"{key} in {self.url} is not a regular file ({_kind(mode)}); a registry "
                              f"holds only regular files. Remove {self._path(key)} and repair the "
                              f"version from a good copy ('modelreg push NAME:VERSION --repair').")

    def _open_regular(self, key: str):
        """The object as a binary file, opened without following a symlink or blocking on a FIFO."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise NotFound(f"{key} does not exist in {self.url}.") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a symlink
                self._require_regular(key, stat_mode.S_IFLNK)
            raise RemoteError(f"Cannot read {path}: {exc.strerror}.") from exc
        try:
            self._require_regular(key, os.fstat(fd).st_mode)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    def read(self, key: str, sink: Sink, *, offset: int = 0) -> None:
        path = self._path(key)
        with self._open_regular(key) as handle:
            size = os.fstat(handle.fileno()).st_size
            if offset > size:
                raise RemoteError(f"Cannot resume {path} at byte {offset}: the object has only {size} "
                                  f"bytes; delete the partial download and retry.")
            handle.seek(offset)
            while chunk := handle.read(CHUNK_SIZE):
                self.check_cancelled()
                sink.write(chunk)

    def write(self, key: str, source: Path | bytes | HashingReader, *, create_only: bool = False,
              sha256: str | None = None, progress: Progress | None = None) -> None:
        target = self._path(key)
        temp = target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{target.name}")
        data = source if isinstance(source, (bytes, bytearray, memoryview)) else None
        reader = source if isinstance(source, HashingReader) else None
        try:
            src = open(source, "rb") if isinstance(source, Path | str) else None
        except FileNotFoundError as exc:
            raise NotFound(f"Cannot upload {source!s}: the local file does not exist.") from exc
        except OSError as exc:
            raise LocalIOError(f"Cannot upload {source!s}: {exc.strerror or exc}.") from exc
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if create_only and target.exists():
                raise AlreadyExists(f"{key} already exists in {self.url}.")
            with open_sliced(temp) as out:
                if data is not None:
                    out.write(data)
                    if progress:
                        progress(len(data))
                elif (stream := reader or src) is not None:
                    while chunk := stream.read(CHUNK_SIZE):
                        self.check_cancelled()
                        out.write(chunk)
                        if progress:
                            progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if create_only:
                try:
                    os.link(temp, target)
                except FileExistsError as exc:
                    raise AlreadyExists(f"{key} already exists in {self.url}.") from exc
            else:
                os.replace(temp, target)
        except OSError as exc:
            if isinstance(exc, AlreadyExists):
                raise
            raise RemoteError(f"Cannot write {target}: {exc.strerror or exc}.") from exc
        finally:
            if src is not None:
                src.close()
            temp.unlink(missing_ok=True)

    def _walk(self, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
        """(key, lstat) of every file under `prefix`, temp files included; symlinks are not followed."""
        base = self._path(prefix.strip("/")) if prefix.strip("/") else self.root
        if not base.is_dir() or (base != self.root and base.is_symlink()):
            return
        try:
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    path = Path(dirpath, name)
                    try:
                        info = path.lstat()
                    except FileNotFoundError:  # removed while listing
                        continue
                    yield path.relative_to(self.root).as_posix(), info
        except OSError as exc:
            raise RemoteError(f"Cannot list {base}: {exc.strerror or exc}.") from exc

    def list_info(self, prefix: str) -> list[ObjectInfo]:
        now = time.time()
        return sorted((ObjectInfo(key, info.st_size, info.st_mtime, max(0.0, now - info.st_mtime))
                       for key, info in self._walk(prefix) if not key.rpartition("/")[2].startswith(TEMP_PREFIX)),
                      key=lambda item: item.key)

    def list_uploads(self, prefix: str) -> list[UploadInfo]:
        now = time.time()
        uploads = (temp_upload(key, info.st_size, now - info.st_mtime) for key, info in self._walk(prefix))
        return sorted((upload for upload in uploads if upload is not None),
                      key=lambda upload: (upload.key, upload.upload_id))

    def remove_upload(self, upload: UploadInfo) -> None:
        self.delete(temp_key_of(upload))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise RemoteError(f"Cannot delete {self._path(key)}: {exc.strerror or exc}.") from exc



def _kind(mode: int) -> str:
    for test, name in ((stat_mode.S_ISLNK, "a symbolic link"), (stat_mode.S_ISFIFO, "a FIFO"),
                       (stat_mode.S_ISDIR, "a directory"), (stat_mode.S_ISCHR, "a character device"),
                       (stat_mode.S_ISBLK, "a block device"), (stat_mode.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"
