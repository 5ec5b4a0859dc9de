"""A listing with a change fingerprint per object, so a copy read earlier is reused only while unchanged.

`list_fingerprints(storage, prefix)` is `Storage.list` plus, for each key, a string
that changes whenever the object at that key is replaced (deleted and written
again, or overwritten), or None when the backend cannot promise that:

- S3: size, ETag and LastModified from `Storage.list_info` (ListObjectsV2). The ETag is
  derived from the content (the MD5 of a single PUT, of the parts for a multipart upload).
- SSH: size and mtime from `Storage.list_info` (SFTP `listdir_attr`); SFTP (protocol 3) has
  whole-second mtimes and no inode, so an object replaced by one of the same size within
  the second of its mtime would look unchanged.
- file://: size, mtime_ns, ctime_ns and inode from `lstat`. `list_info` has only size and
  mtime, and a file put back with its old size and mtime (`cp -p`, `rsync -t`) would look
  unchanged by them alone; ctime and the inode change, so this backend is still walked here.

For the mtime-based backends (file, SSH) an object whose mtime is less than
`SETTLE_SECONDS` before this machine's clock gets None ("racy", as git calls it):
it may still be replaced within the same mtime tick, so it is read again next time.
This assumes the server's clock is not more than `SETTLE_SECONDS` - 1 s behind this one.
"""

from __future__ import annotations

import os
import stat as stat_mode
import time

from modelreg.storage.base import TEMP_PREFIX, Storage

SETTLE_SECONDS = 2.0

Fingerprints = dict[str, str | None]


def list_fingerprints(storage: Storage, prefix: str) -> Fingerprints:
    """Every key under `prefix` (as `storage.list` returns them) with its fingerprint or None."""
    scheme = storage.url.split(":", 1)[0]
    lister = {"s3": _list_s3, "file": _list_local, "ssh": _list_ssh}.get(scheme)
    if lister is None:
        return dict.fromkeys(storage.list(prefix))
    return lister(storage, prefix)


def _settled(mtime: float, now: float) -> bool:
    return mtime < now - SETTLE_SECONDS


def _list_s3(storage: Storage, prefix: str) -> Fingerprints:
    return {info.key: f"s3:{info.size}:{info.etag}:{info.mtime!r}" if info.etag else None
            for info in storage.list_info(prefix)}


def _list_local(storage, prefix: str) -> Fingerprints:
    base = storage._path(prefix.rstrip("/")) if prefix.strip("/") else storage.root
    found: Fingerprints = {}
    now = time.time()
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            if name.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            key = os.path.relpath(path, storage.root).replace(os.sep, "/")
            found[key] = (f"file:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"
                          if stat_mode.S_ISREG(info.st_mode) and _settled(info.st_mtime, now) else None)
    return dict(sorted(found.items()))


def _list_ssh(storage: Storage, prefix: str) -> Fingerprints:
    now = time.time()
    return {info.key: f"ssh:{info.size}:{info.mtime!r}" if _settled(info.mtime, now) else None
            for info in storage.list_info(prefix)}
