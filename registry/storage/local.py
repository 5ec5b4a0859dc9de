"""The `file://` backend: a registry root on a local or mounted filesystem.

The embedded default. Writes go to a unique temp name in the target directory, are
fsynced and published with `os.replace` (overwrite) or `os.link` (create-only: fails
if the name exists, so of two racing publishers exactly one wins). Temp names start
with `TEMP_PREFIX` and are never listed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelreg.config import RemoteSpec
from modelreg.errors import AlreadyExists, LocalIOError, NotFound, RemoteError, UsageError
from modelreg.hashing import CHUNK_SIZE, HashingReader, Progress
from modelreg.storage.base import Capabilities, Sink, StorageBase

TEMP_PREFIX = ".incoming-"


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

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def stat(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RemoteError(f"Cannot read {self._path(key)}: {exc.strerror}.") from exc

    def read(self, key: str, sink: Sink, *, offset: int = 0) -> None:
        path = self._path(key)
        try:
            handle = open(path, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"{key} does not exist in {self.url}.") from exc
        except OSError as exc:
            raise RemoteError(f"Cannot read {path}: {exc.strerror}.") from exc
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if offset > size:
                raise RemoteError(f"Cannot resume {path} at byte {offset}: the object has only {size} "
                                  f"bytes; delete the partial download and retry.")
            handle.seek(offset)
            while chunk := handle.read(CHUNK_SIZE):
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
            with open(temp, "wb") as out:
                if data is not None:
                    out.write(data)
                    if progress:
                        progress(len(data))
                elif (stream := reader or src) is not None:
                    while chunk := stream.read(CHUNK_SIZE):
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

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    continue
                keys.append(Path(dirpath, name).relative_to(self.root).as_posix())
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise RemoteError(f"Cannot delete {self._path(key)}: {exc.strerror or exc}.") from exc

