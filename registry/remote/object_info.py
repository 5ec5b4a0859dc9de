"""A listing with a change fingerprint per object, so a copy read earlier is reused only while unchanged.

`list_fingerprints(storage, prefix)` is `Storage.list` plus, for each key, a string
that changes whenever the object at that key is replaced (deleted and written
again, or overwritten), or None when the backend cannot promise that:

- S3: size, ETag and LastModified from ListObjectsV2. The ETag is derived from the
  content (the MD5 of a single PUT, of the parts for a multipart upload).
- file://: size, mtime_ns, ctime_ns and inode from `lstat`.
- SSH: size and mtime from SFTP `listdir_attr`; SFTP (protocol 3) has whole-second
  mtimes and no inode, so an object replaced by one of the same size within the
  second of its mtime would look unchanged.

For the mtime-based backends (file, SSH) an object whose mtime is less than
`SETTLE_SECONDS` before this machine's clock gets None ("racy", as git calls it):
it may still be replaced within the same mtime tick, so it is read again next time.
This assumes the server's clock is not more than `SETTLE_SECONDS` - 1 s behind this one.

The backends are reached here, behind this one function, until the storage
protocol has a listing with sizes and times of its own (`Storage.list_info`); then
this module is re-pointed at it.
"""

from __future__ import annotations

import errno
import os
import posixpath
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


def _list_s3(storage, prefix: str) -> Fingerprints:
    from botocore.exceptions import BotoCoreError, ClientError

    root = f"{storage.prefix}/" if storage.prefix else ""
    directory = prefix.strip("/")
    found: Fingerprints = {}
    try:
        pages = storage._client.get_paginator("list_objects_v2").paginate(
            Bucket=storage.bucket, Prefix=f"{root}{directory}/" if directory else root)
        for page in pages:
            for item in page.get("Contents", ()):
                if not item["Key"].endswith("/"):
                    found[item["Key"][len(root):]] = \
                        f"s3:{item['Size']}:{item['ETag']}:{item['LastModified'].isoformat()}"
    except (ClientError, BotoCoreError) as exc:
        raise storage._error(exc, "list", prefix) from exc
    return dict(sorted(found.items()))


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


def _list_ssh(storage, prefix: str) -> Fingerprints:
    from modelreg.storage.ssh.errors import TRANSFER_ERRORS, errno_of

    found: Fingerprints = {}
    with storage._session() as session:
        root = storage._root_path
        directories = [storage._path(prefix.strip("/")) if prefix.strip("/") else root]
        now = time.time()
        while directories:
            directory = directories.pop()
            try:
                entries = session.sftp.listdir_attr(directory)
            except TRANSFER_ERRORS as exc:
                if errno_of(exc) == errno.ENOENT:
                    continue
                storage._fail(exc, "list", directory)
            for entry in entries:
                full = posixpath.join(directory, entry.filename)
                if stat_mode.S_ISDIR(entry.st_mode or 0):
                    directories.append(full)
                elif not entry.filename.startswith(TEMP_PREFIX):
                    mtime = entry.st_mtime or 0
                    found[posixpath.relpath(full, root)] = (f"ssh:{entry.st_size}:{mtime}"
                                                            if _settled(mtime, now) else None)
    return dict(sorted(found.items()))
