"""When each cached version was last used, and which versions running processes hold right now.

    <cache>/usage/<name>/<version>.json          last pull, load or push of a version (usage-v1 schema)
    <cache>/holds/<host>.<pid>.<random>.json     a running pull, load or push uses a version (hold-v1)

Both feed `modelreg.local.prune`. A usage record is a tiny atomic write, best effort:
when it is missing or unreadable the manifest's mtime stands in (never atime, which
`noatime` mounts do not keep).

A hold is a file, not a lock (locks may silently not lock on NFS). `hold_version`
writes one, naming this host, this process (pid and its start time, so a recycled
pid is not mistaken for it), the version and every blob digest it uses, before the
operation checks or reads any blob. Inside a function decorated with
`holds_released` (pull, push) the hold is removed when the function returns or
raises; a load's hold lasts until the process exits, because a `files` bundle is
loaded as a directory inside the cache that the caller goes on using. A hold is
live while its process runs (same host), or, from another host whose processes
cannot be checked, for `FOREIGN_HOLD_MAX_AGE`; any other hold is stale, ignored,
and removed by prune. A killed process leaves a stale hold, never a stuck cache.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import json
import os
import platform
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import ParamSpec, TypeVar

from modelreg.local.atomic import atomic_write
from modelreg.local.cache import Cache, read_regular, remove_entry
from modelreg.manifest import Manifest
from modelreg.refs import Ref

FOREIGN_HOLD_MAX_AGE = 24 * 3600.0
"""Seconds a hold written on another host counts as live (its process cannot be checked from here)."""
RECORD_LIMIT = 1024 * 1024
"""Largest usage or hold record read (a version has at most a few thousand blobs)."""

P = ParamSpec("P")
R = TypeVar("R")
_scope: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("modelreg_hold_scope", default=None)
_lifetime_holds: dict[tuple[Path, str, str], Path] = {}


@dataclass(frozen=True)
class Hold:
    """A parsed hold record and whether it still protects what it names."""

    path: Path
    ref: Ref
    blobs: frozenset[str]
    host: str
    pid: int
    action: str
    created: float
    live: bool


# -- last use -----------------------------------------------------------------------------------

def usage_path(cache: Cache, ref: Ref) -> Path:
    return cache.root / "usage" / ref.name / f"{ref.version}.json"


def record_use(cache: Cache, ref: Ref, action: str) -> None:
    """Remember that `ref` was used now; best effort (a failed write only makes LRU fall back to mtime)."""
    record = {"format": 1, "name": ref.name, "version": ref.version, "used_at": time.time(), "action": action}
    try:
        atomic_write(usage_path(cache, ref), json.dumps(record, sort_keys=True).encode())
    except OSError:
        pass


def last_used(cache: Cache, ref: Ref) -> float | None:
    """Seconds since the epoch of the last recorded use of `ref`, or None when there is no valid record."""
    record = read_record(usage_path(cache, ref), "usage-v1.schema.json")
    if record is None or (record["name"], record["version"]) != (ref.name, ref.version):
        return None
    return float(record["used_at"])


# -- holds --------------------------------------------------------------------------------------

def hold_version(cache: Cache, manifest: Manifest, action: str) -> None:
    """Record use of `manifest`'s version and hold it and its blobs against prune (see module docstring).

    Best effort like the usage record: a cache that cannot be written fails the
    operation itself a moment later with a clearer message than a hold could give.
    """
    ref = Ref(manifest.name, manifest.version)
    record_use(cache, ref, action)
    scope = _scope.get()
    key = (cache.root, ref.name, ref.version)
    if scope is None and key in _lifetime_holds:
        return
    record = {"format": 1, "host": platform.node(), "pid": os.getpid(), "process_start": process_start(),
              "created": time.time(), "name": ref.name, "version": ref.version, "action": action,
              "blobs": sorted({entry.sha256 for entry in manifest.files})}
    path = cache.root / "holds" / f"{record['host']}.{record['pid']}.{uuid.uuid4().hex[:12]}.json"
    try:
        atomic_write(path, json.dumps(record, sort_keys=True).encode())
    except OSError:
        return
    if scope is not None:
        scope.append(path)
    else:
        if not _lifetime_holds:
            atexit.register(_release_lifetime_holds)
        _lifetime_holds[key] = path


def holds_released(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate an operation so that every hold it takes (`hold_version`) is removed when it ends."""
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _scope.set([])
        try:
            return func(*args, **kwargs)
        finally:
            for path in _scope.get() or []:
                remove_entry(path)
            _scope.reset(token)
    return wrapper


def _release_lifetime_holds() -> None:
    for path in _lifetime_holds.values():
        try:
            remove_entry(path)
        except OSError:
            pass
    _lifetime_holds.clear()


def read_holds(cache: Cache, now: float | None = None) -> tuple[list[Hold], list[Path]]:
    """(every readable hold, live or not; hold files that are not valid records, to be cleaned).

    Entries that are not regular files (a planted link) count as invalid; they are
    never followed.
    """
    now = time.time() if now is None else now
    holds, invalid = [], []
    for path in record_files(cache.root / "holds"):
        record = read_record(path, "hold-v1.schema.json")
        if record is None:
            invalid.append(path)
            continue
        holds.append(Hold(path=path, ref=Ref(record["name"], record["version"]), blobs=frozenset(record["blobs"]),
                          host=record["host"], pid=record["pid"], action=record["action"],
                          created=record["created"], live=_is_live(record, now)))
    return holds, invalid


def _is_live(record: dict, now: float) -> bool:
    if record["host"] != platform.node():
        return now - record["created"] < FOREIGN_HOLD_MAX_AGE
    pid = record["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    started, recorded = process_start(pid), record["process_start"]
    return started is None or recorded is None or started == recorded


def process_start(pid: int | None = None) -> str | None:
    """The kernel's start time of process `pid` (default: this one), or None where /proc has none."""
    try:
        text = Path(f"/proc/{pid or os.getpid()}/stat").read_text()
        return text.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# -- reading records ----------------------------------------------------------------------------

def record_files(directory: Path, suffix: str = ".json") -> list[Path]:
    """Entries of `directory` ending in `suffix`, including links and other non-regular entries
    (which `read_regular` refuses and `remove_entry` unlinks without following); [] when absent."""
    try:
        with os.scandir(directory) as entries:
            return sorted(Path(entry.path) for entry in entries
                          if entry.name.endswith(suffix) and not entry.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def read_record(path: Path, schema: str) -> dict | None:
    """The JSON record at `path` when it is a regular file matching `schema`, else None (never raises
    for bad content: a usage record or hold that cannot be read is treated as absent)."""
    try:
        source_size = os.lstat(path).st_size
        data = read_regular(path) if source_size <= RECORD_LIMIT else None
        raw = json.loads(data) if data is not None else None
    except (OSError, ValueError, RecursionError):
        return None
    if raw is None or not _validator(schema).is_valid(raw):
        return None
    return raw


@lru_cache(maxsize=4)
def _validator(schema: str):
    import jsonschema

    text = resources.files("modelreg.schemas").joinpath(schema).read_text("utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))
