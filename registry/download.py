"""One blob from a remote into the local cache: verified while it streams, resumable, lock-free.

Guarantees:
- the bytes are hashed in the sink as they arrive (never re-read), limited to the
  size the manifest declares, and renamed into the blob store only when size and
  sha256 match (`Cache.publish_download`); anything else is deleted and raises;
- correct without a working file lock: each process writes a file only it ever
  writes (`<sha>.partial.<host>.<pid>.<random>`, hard-linked as `<sha>.partial`
  so a killed pull can resume), and a resuming process copies the bytes left
  behind into its own file instead of appending to a shared one;
- failures say where they happened: a local write is `LocalIOError` naming the
  cache file, a remote read is `RemoteError` naming the remote.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import uuid
from pathlib import Path

from modelreg.errors import IntegrityError, LocalIOError, NotFound, RegistryError, RemoteError
from modelreg.hashing import CHUNK_SIZE, HashingSink
from modelreg.layout import blob_key
from modelreg.local.cache import Cache, open_new, open_regular, remove_entry
from modelreg.local.dropbehind import DropBehind
from modelreg.local.lockfile import LockBusy
from modelreg.local.processes import dead_owner, owner_tag
from modelreg.manifest import FileEntry
from modelreg.progress import ProgressReporter
from modelreg.refs import Ref
from modelreg.repair import repair_command
from modelreg.storage.base import Storage


class Tee:
    """A second copy of a download, written from the same stream (a `--dest` file made while pulling).

    `path` is a new file name in a directory this process created (`materialize`'s
    staging). The copy is best effort: it is made only for a download that starts at
    byte 0, and any failure to write it (a full disk under `--dest`, say) drops the
    copy, never the download. `verified` becomes True only once the cache has
    accepted the very bytes it holds (size and sha256); otherwise the file is removed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.verified = False
        self._handle = None

    def open(self) -> None:
        try:
            self._handle = open_new(self.path)
        except OSError:
            self._handle = None

    def write(self, data) -> None:
        if self._handle is None:
            return
        try:
            self._handle.write(data)
        except OSError:
            self.drop()

    def finish(self) -> None:
        """The download was verified: keep the copy if it was written whole."""
        if self._handle is None:
            return
        try:
            self._handle.close()
        except OSError:
            self.drop()
            return
        self._handle = None
        self.verified = True

    def drop(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass
        self.verified = False
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def download_blob(cache: Cache, storage: Storage, entry: FileEntry, reporter: ProgressReporter,
                  ref: Ref | None = None, tee: Tee | None = None) -> bool:
    """Bring one blob into the cache, verified; returns False when another process already did.

    `ref` (the version being pulled) is named in the repair advice of errors. With
    `tee`, the bytes are also written to `tee.path` as they arrive (see `Tee`).

    Correct without a working lock: each process downloads into a file only it
    ever writes (`<sha>.partial.<host>.<pid>.<random>`, hard-linked as
    `<sha>.partial` so a killed pull can be resumed), and a resuming process copies
    the bytes left behind into its own file instead of appending to a shared one.
    The lock only avoids downloading the same blob twice at once; where the
    filesystem cannot lock, the download proceeds without it.
    """
    lock = _acquire_blob_lock(cache, entry, reporter)
    try:
        if cache.has_blob(entry):
            return False
        _download(cache, storage, entry, reporter, repair_command(ref or "NAME:VERSION"), tee)
        return True
    finally:
        if lock is not None:
            lock.release()


def _acquire_blob_lock(cache: Cache, entry: FileEntry, reporter: ProgressReporter):
    try:
        lock = cache.blob_lock(entry.sha256)
        try:
            lock.acquire(blocking=False)
        except LockBusy:
            reporter.message(f"waiting for another modelreg process that is downloading {entry.path}")
            lock.acquire()
        return lock
    except OSError as exc:
        reporter.message(f"cannot lock {cache.root / 'locks'} ({exc.strerror or exc}); downloading "
                         f"{entry.path} without a lock (safe, but another process may fetch it too)")
        return None


class _LocalFile:
    """The sink's target file: a failed write says which local file and what to do, as LocalIOError."""

    def __init__(self, handle, path: Path, entry: FileEntry, tee: Tee | None = None, start: int = 0) -> None:
        self._handle, self._path, self._entry, self._tee = handle, path, entry, tee
        self.received = 0
        self._start = start
        self._drop = DropBehind(handle.fileno(), start) if tee is not None else None
        """With a --dest copy, the cache's copy need not stay in memory (`modelreg.local.dropbehind`)."""

    def write(self, data) -> int:
        try:
            written = self._handle.write(data)
        except OSError as exc:
            raise local_write_error(exc, self._path, self._entry, self.received) from exc
        self.received += len(data)
        if self._drop is not None:
            self._drop.written(self._start + self.received - len(data))
        if self._tee is not None:
            self._tee.write(data)
        return written

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as exc:
            raise local_write_error(exc, self._path, self._entry, self.received) from exc


def local_write_error(exc: OSError, path: Path, entry: FileEntry, received: int) -> LocalIOError:
    """The LocalIOError for a failed write under the cache, with the fix that fits its errno."""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        fix = "Free disk space or point MODELREG_CACHE at a larger disk, then pull again"
    elif exc.errno == errno.EROFS:
        fix = "The cache is on a read-only filesystem: point MODELREG_CACHE at a writable directory"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        fix = (f"You may not write there: fix the permissions of {path.parent} or point "
               f"MODELREG_CACHE at a directory you own")
    else:
        fix = "Check the disk holding the cache, then pull again"
    return LocalIOError(
        f"Cannot write the download of {entry.path} to {path} ({exc.strerror or exc}). {fix}: the "
        f"{received} bytes already received are kept and the download resumes.")


def _download(cache: Cache, storage: Storage, entry: FileEntry, reporter: ProgressReporter,
              repair_advice: str, tee: Tee | None = None) -> None:
    partial = cache.partial_path(entry)
    _remove_dead_downloads(partial)
    mine = partial.with_name(f"{partial.name}.{owner_tag()}.{uuid.uuid4().hex[:12]}")
    try:
        digest, offset = _resume_into(partial, mine, entry)
        _expose_as_partial(mine, partial)
        handle = open_new(mine, append_to_existing=True)
    except OSError as exc:
        remove_entry(mine)
        if isinstance(exc, RegistryError):
            raise
        raise local_write_error(exc, mine, entry, 0) from exc
    progress = reporter.task(f"pull {entry.path}", entry.size)
    if offset:
        progress(offset)
    if tee is not None and offset == 0:
        tee.open()
    else:
        tee = None
    target = _LocalFile(handle, mine, entry, tee, offset)
    sink = HashingSink(target, limit=entry.size, digest=digest, size=offset, progress=progress)
    try:
        _stream(storage, entry, sink, target, handle, mine, offset, partial, repair_advice)
        cache.publish_download(mine, entry, sink.hexdigest(), sink.size, storage.url)
    except BaseException:
        if tee is not None:
            tee.drop()
        raise
    if tee is not None:
        tee.finish()


def _stream(storage: Storage, entry: FileEntry, sink: HashingSink, target: _LocalFile, handle,
            mine: Path, offset: int, partial: Path, repair_advice: str) -> None:
    """Read the remote blob into this process's download file; failures become the errors above."""
    try:
        with handle:
            try:
                storage.read(blob_key(entry.sha256), sink, offset=offset)
                target.flush()
            finally:
                try:
                    handle.close()
                except OSError as exc:
                    raise local_write_error(exc, mine, entry, target.received) from exc
    except OverflowError as exc:
        _forget_download(mine, partial)
        raise IntegrityError(
            f"The blob for {entry.path} on {storage.url} is larger than the {entry.size} bytes "
            f"its manifest declares; the download was stopped and deleted. The remote copy was "
            f"replaced or damaged: repair it from a good copy with '{repair_advice}'.",
            path=entry.path, expected=entry.sha256, actual="(oversized)", source="remote") from exc
    except NotFound as exc:
        _forget_download(mine, partial, keep_partial=True)
        raise NotFound(f"The blob of {entry.path} ({blob_key(entry.sha256)}) is missing on "
                       f"{storage.url}. Repair the remote from a good copy with "
                       f"'{repair_advice}'.") from exc
    except BaseException as exc:
        _forget_download(mine, partial, keep_partial=True)
        if isinstance(exc, OSError) and not isinstance(exc, RegistryError):
            raise RemoteError(
                f"Reading the blob of {entry.path} from {storage.url} failed after {sink.size} of "
                f"{entry.size} bytes ({exc.strerror or exc}). The remote or the network failed, not "
                f"this machine: pull again later (the bytes received are kept and the download "
                f"resumes), or ask whoever runs {storage.url}.") from exc
        raise
    _forget_download(mine, partial, keep_mine=True)


def _resume_into(partial: Path, mine: Path, entry: FileEntry):
    """Create this process's download file, starting with the bytes a previous download left.

    The leftover is copied (and hashed), never appended to: another process may
    still be writing it when the lock does not work.
    """
    digest = hashlib.sha256()
    offset = 0
    with open_new(mine) as out:
        source = open_regular(partial)
        if source is None:
            return digest, 0
        with source:
            if os.fstat(source.fileno()).st_size >= entry.size:
                remove_entry(partial)
                return digest, 0
            while offset < entry.size - 1 and (chunk := source.read(min(CHUNK_SIZE, entry.size - 1 - offset))):
                out.write(chunk)
                digest.update(chunk)
                offset += len(chunk)
    return digest, offset


def _expose_as_partial(mine: Path, partial: Path) -> None:
    """Make `partial` name this process's file (a hard link, renamed over the old name: never through it)."""
    link = mine.with_name(mine.name + ".link")
    os.link(mine, link)
    os.replace(link, partial)


def _forget_download(mine: Path, partial: Path, *, keep_partial: bool = False,
                     keep_mine: bool = False) -> None:
    """Drop this process's names: `partial` only when it still is our file, and only unless kept."""
    try:
        ours = os.lstat(mine).st_ino == os.lstat(partial).st_ino
    except FileNotFoundError:
        ours = False
    if ours and not keep_partial:
        remove_entry(partial)
    if not keep_mine:
        remove_entry(mine)


def _remove_dead_downloads(partial: Path) -> None:
    """Remove download files of processes on this host that no longer run (killed pulls)."""
    prefix = f"{partial.name}."
    for path in partial.parent.glob(f"{glob.escape(prefix)}*"):
        if dead_owner(path.name, prefix):
            remove_entry(path)
