"""What the local cache holds and what each part costs on disk: the facts `cache list` and prune use.

`take_inventory` reads the cache without changing it and without following a link:
directories are walked with `scandir`/`lstat`, and a link, FIFO or other
non-regular entry where a blob, manifest or record belongs is reported as a
leftover (prune unlinks the entry itself, never its target). Each blob is counted
once, however many versions name it, so `Inventory.total` is what the cache
occupies: blobs, snapshots, partial downloads and temp files (manifests,
fingerprints and records are a few KB and not counted).
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.config import Settings
from modelreg.errors import RegistryError
from modelreg.local.cache import Cache, read_regular
from modelreg.local.usage import Hold, last_used, read_holds, record_files, usage_path
from modelreg.local.workspace import pin_path
from modelreg.manifest import Manifest
from modelreg.refs import Ref

LEFTOVER_AGE = 24 * 3600.0
"""Seconds after which a partial download, a temp file or an unreferenced blob counts as abandoned."""
_BLOB = re.compile(r"^[0-9a-f]{64}$")
_PARTIAL = re.compile(r"^([0-9a-f]{64})\.partial(\..+)?$")


@dataclass(frozen=True)
class Leftover:
    """Something prune may remove without evicting a version: why, where, and how many bytes."""

    path: Path
    kind: str
    size: int
    sha256: str | None = None
    """For a blob or partial: its digest (kept after all if a manifest or hold names it by then)."""


@dataclass(frozen=True)
class CachedVersion:
    ref: Ref
    blobs: frozenset[str]
    size: int
    """Bytes of its blobs present in the cache (each distinct blob once) plus its snapshot."""
    snapshot_size: int
    last_used: float
    last_used_from: str
    """"record" (its last pull, load or push) or "manifest mtime" (no record)."""
    pinned: bool
    held_by: tuple[str, ...]
    """"pull by pid 123 on host" for every live hold on it."""


@dataclass
class Inventory:
    root: Path
    workspace: Path
    versions: list[CachedVersion] = field(default_factory=list)
    blob_sizes: dict[str, int] = field(default_factory=dict)
    """Every blob file present: sha256 -> bytes."""
    held_blobs: set[str] = field(default_factory=set)
    holds: list[Hold] = field(default_factory=list)
    snapshot_bytes: int = 0
    leftovers: list[Leftover] = field(default_factory=list)
    counted_leftover_bytes: int = 0
    """Bytes of leftovers not already counted as blobs or snapshots (partials, temp files)."""

    @property
    def total(self) -> int:
        return sum(self.blob_sizes.values()) + self.snapshot_bytes + self.counted_leftover_bytes

    def shared_size(self, version: CachedVersion) -> int:
        """Bytes of `version`'s blobs that another cached version also names."""
        others = set().union(*(v.blobs for v in self.versions if v.ref != version.ref))
        return sum(self.blob_sizes.get(sha, 0) for sha in version.blobs & others)


def take_inventory(settings: Settings, now: float | None = None) -> Inventory:
    """Scan the cache of `settings` (read only); pins are those of `settings.workspace`."""
    now = time.time() if now is None else now
    cache = Cache(settings.cache_dir)
    inventory = Inventory(root=cache.root, workspace=settings.workspace)
    holds, invalid_holds = read_holds(cache, now)
    inventory.holds = [hold for hold in holds if hold.live]
    inventory.held_blobs = set().union(*(hold.blobs for hold in inventory.holds))
    for path in invalid_holds:
        _add_if_old(inventory, path, "unreadable hold record", now, counted=False)
    for hold in holds:
        if not hold.live:
            inventory.leftovers.append(Leftover(hold.path, "stale hold (its process ended)", 0))
    _scan_blobs(cache, inventory, now)
    held_refs = {hold.ref for hold in inventory.holds}
    manifests = _scan_manifests(cache, inventory, held_refs)
    snapshots = _scan_snapshots(cache, inventory, set(manifests) | held_refs)
    referenced = set().union(*manifests.values(), inventory.held_blobs)
    for sha, size in list(inventory.blob_sizes.items()):
        path = cache.blob_path(sha)
        if sha not in referenced and now - _mtime(path, now) > LEFTOVER_AGE:
            inventory.leftovers.append(Leftover(path, "blob no cached version names", size, sha))
    for ref, blobs in sorted(manifests.items(), key=lambda item: str(item[0])):
        used, used_from = last_used(cache, ref), "record"
        if used is None:
            used, used_from = _mtime(cache.manifest_path(ref), now), "manifest mtime"
        inventory.versions.append(CachedVersion(
            ref=ref, blobs=blobs, size=sum(inventory.blob_sizes.get(sha, 0) for sha in blobs) + snapshots.get(ref, 0),
            snapshot_size=snapshots.get(ref, 0), last_used=used, last_used_from=used_from,
            pinned=_is_regular(pin_path(settings.workspace, ref)),
            held_by=tuple(f"{h.action} by pid {h.pid} on {h.host}" for h in inventory.holds if h.ref == ref)))
    _scan_records(cache, inventory, set(manifests) | held_refs)
    return inventory


def manifest_blobs(cache: Cache) -> dict[Ref, frozenset[str]]:
    """The blobs every readable cached manifest names, by version (read without following links)."""
    return _scan_manifests(cache, Inventory(root=cache.root, workspace=cache.root), set())


def _scan_manifests(cache: Cache, inventory: Inventory, held: set[Ref]) -> dict[Ref, frozenset[str]]:
    """The blobs of every readable cached manifest; unreadable or misplaced ones become leftovers, and
    so do a signature or remotes record left without its manifest (unless a running pull holds it)."""
    found: dict[Ref, frozenset[str]] = {}
    extras = []
    for name_dir in _entries(cache.root / "manifests", inventory):
        for path in _entries(name_dir, inventory, files=True):
            if path.suffix in (".sig", ".remotes"):
                extras.append(path)
            if path.suffix != ".json":
                continue
            ref = Ref(name_dir.name, path.stem)
            try:
                manifest = Manifest.from_bytes(read_regular(path) or b"", source=str(path))
            except (RegistryError, OSError, ValueError):
                inventory.leftovers.append(Leftover(path, "unreadable cached manifest", 0))
                continue
            if (manifest.name, manifest.version) != (ref.name, ref.version):
                inventory.leftovers.append(Leftover(path, f"manifest of {manifest.ref} stored as {ref}", 0))
                continue
            found[ref] = frozenset(entry.sha256 for entry in manifest.files)
    for path in extras:
        ref = Ref(path.parent.name, path.stem)
        if ref not in found and ref not in held:
            inventory.leftovers.append(Leftover(path, "metadata of a version not cached", 0))
    return found


def _scan_blobs(cache: Cache, inventory: Inventory, now: float) -> None:
    for prefix_dir in _entries(cache.root / "blobs" / "sha256", inventory):
        for path in _entries(prefix_dir, inventory, files=True):
            info = _lstat(path)
            if info is None:
                continue
            if _BLOB.match(path.name):
                inventory.blob_sizes[path.name] = info.st_size
                continue
            partial = _PARTIAL.match(path.name)
            if partial and partial.group(1) not in inventory.held_blobs:
                _add_if_old(inventory, path, "abandoned partial download", now, sha256=partial.group(1))
            elif partial:
                inventory.counted_leftover_bytes += info.st_size
    for prefix_dir in _entries(cache.root / "fingerprints", inventory):
        for path in _entries(prefix_dir, inventory, files=True):
            sha = path.name.removesuffix(".json")
            if _BLOB.match(sha) and path.name.endswith(".json") and sha not in inventory.blob_sizes:
                inventory.leftovers.append(Leftover(path, "fingerprint of an absent blob", 0))
    for path in _entries(cache.root / "tmp", inventory, files=True, dirs=True):
        _add_if_old(inventory, path, "abandoned temp file", now)


def _scan_snapshots(cache: Cache, inventory: Inventory, in_use: set[Ref]) -> dict[Ref, int]:
    sizes: dict[Ref, int] = {}
    for name_dir in _entries(cache.root / "snapshots", inventory):
        for path in _entries(name_dir, inventory, files=True, dirs=True):
            ref, size = Ref(name_dir.name, path.name), tree_size(path)
            inventory.snapshot_bytes += size
            info = _lstat(path)
            if info is None:
                continue
            if ref in in_use and stat.S_ISDIR(info.st_mode):
                sizes[ref] = size
            else:
                inventory.leftovers.append(Leftover(path, "snapshot of a version not cached", size))
    return sizes


def _scan_records(cache: Cache, inventory: Inventory, in_use: set[Ref]) -> None:
    for name_dir in _entries(cache.root / "usage", inventory):
        for path in record_files(name_dir):
            ref = Ref(name_dir.name, path.name.removesuffix(".json"))
            if ref not in in_use and path == usage_path(cache, ref):
                inventory.leftovers.append(Leftover(path, "usage record of a version not cached", 0))


def _entries(directory: Path, inventory: Inventory, *, files: bool = False, dirs: bool = False) -> list[Path]:
    """Subdirectories of `directory` (default), or its regular files (`files`), or both; never through
    a link. A link or special file found here is recorded as a leftover (the entry, not its target)."""
    want_dirs = dirs or not files
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_symlink() or not (entry.is_dir(follow_symlinks=False)
                                              or entry.is_file(follow_symlinks=False)):
                    inventory.leftovers.append(Leftover(path, "link or special file in the cache", 0))
                elif want_dirs if entry.is_dir(follow_symlinks=False) else files:
                    found.append(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found)


def _add_if_old(inventory: Inventory, path: Path, kind: str, now: float, *, counted: bool = True,
                sha256: str | None = None) -> None:
    """A leftover when older than LEFTOVER_AGE (a young one may belong to a running operation)."""
    info = _lstat(path)
    if info is None:
        return
    size = tree_size(path) if stat.S_ISDIR(info.st_mode) else info.st_size
    if counted:
        inventory.counted_leftover_bytes += size
    if now - info.st_mtime > LEFTOVER_AGE:
        inventory.leftovers.append(Leftover(path, kind, size if counted else 0, sha256))


def tree_size(path: Path) -> int:
    """Bytes of the regular files under `path` (or of `path` itself), never following a link."""
    info = _lstat(path)
    if info is None or not stat.S_ISDIR(info.st_mode):
        return info.st_size if info is not None and stat.S_ISREG(info.st_mode) else 0
    total = 0
    for root, _dirs, names in os.walk(path, followlinks=False):
        for name in names:
            entry = _lstat(Path(root, name))
            total += entry.st_size if entry is not None and stat.S_ISREG(entry.st_mode) else 0
    return total


def _lstat(path: Path) -> os.stat_result | None:
    """The entry's own stat, or None when it vanished meanwhile (another prune, a finished download)."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _mtime(path: Path, default: float) -> float:
    info = _lstat(path)
    return default if info is None else info.st_mtime


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
