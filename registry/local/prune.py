"""Evicting cached versions: plan what to remove, then remove it in an order no reader can trip on.

Protected, never evicted: a version the current workspace pins, one a live hold
names (a running pull, load or push, see `modelreg.local.usage`), one given as
`keep`, and the version a pull just fetched. A blob is deleted only when no
version left in the cache and no live hold names it.

`prune` removes, for each evicted version, the manifest first (from then on the
version is simply not cached: a pull fetches it again), then its `.sig`,
`.remotes` and usage record and its snapshot; then the blobs only evicted
versions named, with their fingerprints, each re-checked just before deletion
against the manifests and holds present at that moment; then leftovers
(see `modelreg.local.inventory`). Nothing is removed through a link: a link is
unlinked itself, and directories are removed with `shutil.rmtree`, which does not
follow links inside them. What remains possible without a lock: a pull that starts
using a blob in the instant between that re-check and the unlink finds the blob
missing later and fetches it again (`pull`), or reports it (`load`: "run pull").
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.config import Settings
from modelreg.errors import RegistryError, UsageError
from modelreg.local.cache import Cache, remove_entry
from modelreg.local.inventory import CachedVersion, Inventory, Leftover, manifest_blobs, take_inventory, tree_size
from modelreg.local.usage import read_holds, usage_path
from modelreg.local.workspace import pin_path
from modelreg.manifest import Manifest
from modelreg.refs import Ref
from modelreg.units import human_duration, human_size


@dataclass(frozen=True)
class Eviction:
    version: CachedVersion
    reason: str
    frees: int
    """Bytes this eviction frees as planned: its snapshot and the blobs no version left in the cache names."""


@dataclass
class PrunePlan:
    inventory: Inventory
    evictions: list[Eviction] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    """Digests to delete: named only by evicted versions."""
    leftovers: list[Leftover] = field(default_factory=list)
    protected: dict[Ref, str] = field(default_factory=dict)
    """Versions that may not be evicted, and why."""
    max_size: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def frees(self) -> int:
        return sum(e.frees for e in self.evictions) + sum(item.size for item in self.leftovers)

    @property
    def total_after(self) -> int:
        return self.inventory.total - self.frees


@dataclass
class PruneResult:
    plan: PrunePlan
    dry_run: bool
    removed: list[Eviction] = field(default_factory=list)
    removed_leftovers: list[Leftover] = field(default_factory=list)
    freed: int = 0
    """Bytes of blobs, snapshots, partial downloads and temp files removed, measured as they were
    unlinked (the few KB of manifests and records are not counted, as in `Inventory.total`); 0 on a dry run."""
    kept_blobs: list[str] = field(default_factory=list)
    """Planned blobs kept after all: a manifest or hold named them by the time of deletion."""
    failures: list[str] = field(default_factory=list)
    """Entries that could not be removed (each with the reason); the others were."""


def plan_prune(settings: Settings, *, max_size: int | None = None, older_than: float | None = None,
               keep: tuple[Ref, ...] = (), exclude: tuple[Ref, ...] = (), now: float | None = None) -> PrunePlan:
    """What a prune would remove (nothing is changed). Leftovers are always planned; versions are
    evicted when last used more than `older_than` seconds ago, then least recently used first
    while the cache exceeds `max_size` bytes."""
    now = time.time() if now is None else now
    inventory = take_inventory(settings, now)
    plan = PrunePlan(inventory=inventory, leftovers=list(inventory.leftovers), max_size=max_size)
    for version in inventory.versions:
        if version.pinned:
            plan.protected[version.ref] = f"pinned by {pin_path(settings.workspace, version.ref)}"
        elif version.held_by:
            plan.protected[version.ref] = f"in use ({'; '.join(version.held_by)})"
        elif version.ref in keep:
            plan.protected[version.ref] = "--keep"
        elif version.ref in exclude:
            plan.protected[version.ref] = "just pulled"
    candidates = sorted((v for v in inventory.versions if v.ref not in plan.protected),
                        key=lambda v: (v.last_used, str(v.ref)))
    for version in candidates:
        age = now - version.last_used
        if older_than is not None and age > older_than:
            _evict(plan, version, f"last used {human_duration(age)} ago, more than {human_duration(older_than)}")
        elif max_size is not None and plan.total_after > max_size:
            _evict(plan, version, f"least recently used (last {human_duration(age)} ago) while the cache "
                                  f"exceeds {human_size(max_size)}")
    if max_size is not None and plan.total_after > max_size:
        protected = "; ".join(f"{ref} {why}" for ref, why in sorted(plan.protected.items(), key=str))
        plan.notes.append(f"The cache stays at {human_size(plan.total_after)}, above {human_size(max_size)}: "
                          f"the rest is protected ({protected or 'no version'}) or too recent to count as "
                          f"a leftover.")
    return plan


def _evict(plan: PrunePlan, version: CachedVersion, reason: str) -> None:
    evicted = {e.version.ref for e in plan.evictions} | {version.ref}
    remaining = set().union(*(v.blobs for v in plan.inventory.versions if v.ref not in evicted),
                            plan.inventory.held_blobs, plan.blobs)
    freed_blobs = sorted(sha for sha in version.blobs if sha not in remaining and sha in plan.inventory.blob_sizes)
    plan.blobs += freed_blobs
    frees = version.snapshot_size + sum(plan.inventory.blob_sizes[sha] for sha in freed_blobs)
    plan.evictions.append(Eviction(version=version, reason=reason, frees=frees))


def prune(settings: Settings, plan: PrunePlan, *, dry_run: bool = False) -> PruneResult:
    """Carry out `plan` (see the module docstring for the order); with `dry_run`, remove nothing."""
    result = PruneResult(plan=plan, dry_run=dry_run)
    if dry_run:
        return result
    cache = Cache(settings.cache_dir)

    def remove(path: Path) -> int:
        try:
            return remove_path(cache.root, path)
        except OSError as exc:
            result.failures.append(f"{path}: {exc.strerror or exc}")
            return 0

    holds, _invalid = read_holds(cache)
    held_now = {hold.ref for hold in holds if hold.live}
    for eviction in plan.evictions:
        ref = eviction.version.ref
        if ref in held_now or os.path.lexists(pin_path(settings.workspace, ref)):
            plan.notes.append(f"{ref} was kept after all: it was pinned or came into use after the plan was made.")
            continue
        manifest = cache.manifest_path(ref)
        for path in (manifest, manifest.with_suffix(".sig"), manifest.with_suffix(".remotes"),
                     usage_path(cache, ref)):
            remove(path)
        result.freed += remove(cache.snapshot_dir(ref))
        result.removed.append(eviction)
    in_use = referenced_blobs(cache)
    for sha in plan.blobs:
        if sha in in_use:
            result.kept_blobs.append(sha)
            continue
        result.freed += remove(cache.blob_path(sha))
        remove(fingerprint_path(cache, sha))
    for leftover in plan.leftovers:
        if leftover.sha256 is not None and leftover.sha256 in in_use:
            continue
        freed = remove(leftover.path)
        result.freed += freed if leftover.size else 0
        result.removed_leftovers.append(leftover)
        if leftover.sha256 is not None and leftover.path == cache.blob_path(leftover.sha256):
            remove(fingerprint_path(cache, leftover.sha256))
    return result


def fingerprint_path(cache: Cache, sha256: str) -> Path:
    """Where `Cache` records a blob's verified fingerprint (removed with the blob)."""
    return cache.root / "fingerprints" / sha256[:2] / f"{sha256}.json"


def referenced_blobs(cache: Cache) -> set[str]:
    """Digests named by a cached manifest or a live hold right now."""
    holds, _invalid = read_holds(cache)
    return set().union(*manifest_blobs(cache).values(), *(hold.blobs for hold in holds if hold.live))


def remove_path(root: Path, path: Path) -> int:
    """Remove the cache entry `path` under `root` and return the bytes it held.

    A file or link is unlinked (never followed); a directory is removed with
    `shutil.rmtree`, which unlinks links inside it instead of following them. When a
    directory between `root` and `path` is a link, nothing is removed (0): the entry
    is not inside the cache.
    """
    relative = path.relative_to(root)
    for depth in range(1, len(relative.parts)):
        try:
            if stat.S_ISLNK(os.lstat(root.joinpath(*relative.parts[:depth])).st_mode):
                return 0
        except FileNotFoundError:
            return 0
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    if stat.S_ISDIR(info.st_mode):
        size = tree_size(path)
        shutil.rmtree(path)
        return size
    remove_entry(path)
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def resolve_keep(settings: Settings, refs: tuple[Ref, ...]) -> tuple[Ref, ...]:
    """The cached versions `refs` name (a tag through the version it pointed at when last pulled);
    UsageError for one that names nothing cached, before anything is removed."""
    cache = Cache(settings.cache_dir)
    resolved = []
    for ref in refs:
        seen = cache.read_tag_seen(ref)
        if cache.read_manifest_bytes(ref) is None and seen is not None:
            ref = Ref(ref.name, seen["version"])
        if cache.read_manifest_bytes(ref) is None:
            raise UsageError(f"--keep {ref}: no such version (or tag last pulled) in the local cache "
                             f"{cache.root}, so it cannot be kept; nothing was removed. See 'modelreg cache "
                             f"list' for what is cached.")
        resolved.append(ref)
    return tuple(resolved)


def enforce_cache_limit(settings: Settings, manifest: Manifest) -> list[str]:
    """After a pull: with `cache_max_size` set and exceeded, evict least recently used versions (never
    `manifest`'s, pinned or held ones). Returns notes saying what was removed; never raises."""
    if settings.cache_max_size is None:
        return []
    try:
        plan = plan_prune(settings, max_size=settings.cache_max_size,
                          exclude=(Ref(manifest.name, manifest.version),))
        if plan.inventory.total <= settings.cache_max_size:
            return []
        result = prune(settings, plan)
    except (RegistryError, OSError) as exc:
        return [f"cache_max_size {human_size(settings.cache_max_size)} was not enforced: {exc}"]
    removed = ", ".join(f"{e.version.ref} ({human_size(e.frees)})" for e in result.removed) or "no version"
    return [f"cache_max_size {human_size(settings.cache_max_size)}: removed {removed} and "
            f"{len(result.removed_leftovers)} leftover(s), freeing {human_size(result.freed)}.", *plan.notes]


def prune_cache(settings: Settings, *, max_size: int | None = None, older_than: float | None = None,
                keep: tuple[Ref, ...] = (), dry_run: bool = False) -> PruneResult:
    """`modelreg cache prune`: resolve `keep`, plan (`max_size` defaults to `settings.cache_max_size`)
    and carry out the plan, or with `dry_run` only plan it."""
    plan = plan_prune(settings, max_size=settings.cache_max_size if max_size is None else max_size,
                      older_than=older_than, keep=resolve_keep(settings, keep))
    if plan.max_size is None and older_than is None:
        plan.notes.append("No --max-size, --older-than or cache_max_size was given: only leftovers are "
                          "removed, no cached version is evicted.")
    return prune(settings, plan, dry_run=dry_run)
