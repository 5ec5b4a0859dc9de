"""Every manifest and tag of a remote, for `list`: one listing, cached copies reused, the rest in parallel.

A remote with 10,000 versions used to cost 10,000 GETs one after the other on every
`list`. Now the keys are listed once per area (`models/`, `tags/`) with a change
fingerprint each (`object_info`); a manifest or tag whose fingerprint is the one it
had when it was last read comes from the `ListingCache` (manifests are read from it and
parsed while the server lists, and kept only where the listing agrees), and only the others are
fetched, `storage.parallel_transfers` at a time (by the backend's `fetch_small` where it
has one: S3's lean GET, falling back to `read`). Cached or fetched, every manifest
goes through `Manifest.from_bytes` and the identity check, and every tag through the
tag schema, exactly as when read from the remote.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelreg.errors import IntegrityError, InvalidArtifact, RegistryError, UsageError
from modelreg.hashing import hash_bytes
from modelreg.layout import MANIFEST_NAME, YANK_NAME, check_name, version_prefix
from modelreg.manifest import MAX_MANIFEST_BYTES, Manifest
from modelreg.refs import Ref
from modelreg.remote.index import MAX_TAG_BYTES, parse_tag, parse_version_manifest, read_small
from modelreg.remote.manifest_cache import ListingCache
from modelreg.remote.object_info import list_fingerprints
from modelreg.storage.base import Storage

SKIPPED = (InvalidArtifact, IntegrityError, UsageError)
"""What makes one entry unreadable without making the remote unreadable."""


@dataclass(frozen=True)
class ScannedVersion:
    manifest: Manifest
    data: bytes
    digest: str
    tags: list[str]


@dataclass
class Scan:
    """Readable versions (sorted by name, version) and (key, error) for every entry skipped."""

    versions: list[ScannedVersion] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)
    fetched: int = 0
    """How many objects had to be read from the remote (the rest came from the cache)."""
    yanked: list[Ref] = field(default_factory=list)
    """Versions whose listing shows a yank record (`modelreg.remote.yanks` reads and checks it)."""


@dataclass(frozen=True)
class _Entry:
    key: str
    ref: Ref
    fingerprint: str | None


def scan_remote(storage: Storage, cache_root: Path, name: str | None = None) -> Scan:
    """Read every version (of `name`, or of all models) and tag on `storage`, reusing cached copies."""
    cache = ListingCache(cache_root, storage.url)
    scan = Scan()
    prefix = version_prefix(name) if name else "models/"
    listing = _Background(list_fingerprints, storage, prefix)
    ahead = _parse_ahead(storage, cache, prefix)
    listed = listing.result()
    manifests = _entries(listed, MANIFEST_NAME, scan)
    scan.yanked = [entry.ref for entry in _entries(listed, YANK_NAME, Scan())]
    tag_files = _entries(list_fingerprints(storage, f"tags/{name}/" if name else "tags/"), None, scan)
    tags: dict[tuple[str, str, str], list[str]] = {}
    for _data, tag in _parsed(_read_all(storage, cache, tag_files, MAX_TAG_BYTES, scan), scan,
                              lambda e, data: parse_tag(storage, e.ref.name, e.ref.version, data)):
        tags.setdefault((tag.name, tag.version, tag.manifest_sha256), []).append(tag.tag)
    results: dict[str, tuple[bytes, Manifest | RegistryError]] = {}
    rest = []
    for entry in manifests:
        early = ahead.get(entry.key)
        if early is not None and entry.fingerprint is not None and early[0] == entry.fingerprint:
            cache.keep(entry.key)
            results[entry.key] = early[1:]
        else:
            rest.append(entry)
    for entry, data in _read_all(storage, cache, rest, MAX_MANIFEST_BYTES, scan):
        results[entry.key] = data, _parse_manifest(storage, entry, data)
    for entry in manifests:
        if entry.key not in results:
            continue  # deleted since it was listed
        data, manifest = results[entry.key]
        if not isinstance(manifest, Manifest):
            scan.broken.append((entry.key, str(manifest)))
            continue
        digest = hash_bytes(data)
        scan.versions.append(ScannedVersion(manifest, data, digest,
                                            sorted(tags.get((manifest.name, manifest.version, digest), []))))
    cache.save()
    return scan


class _Background:
    """`func(*args)` run on a daemon thread (an interrupted command does not wait for it)."""

    def __init__(self, func: Callable, *args: object) -> None:
        self._outcome: tuple[bool, Any] | None = None
        self._thread = threading.Thread(target=self._run, args=(func, *args), daemon=True,
                                        name="modelreg-list")
        self._thread.start()

    def _run(self, func: Callable, *args: object) -> None:
        try:
            self._outcome = True, func(*args)
        except BaseException as exc:  # handed to the caller by result()
            self._outcome = False, exc

    def result(self) -> Any:
        """What `func` returned, or raise what it raised."""
        self._thread.join()
        assert self._outcome is not None
        ok, value = self._outcome
        if not ok:
            raise value
        return value


def _parse_ahead(storage: Storage, cache: ListingCache, prefix: str
                 ) -> dict[str, tuple[str, bytes, Manifest | RegistryError]]:
    """{key: (fingerprint, bytes, manifest or why not)} for every manifest under `prefix` the
    last listing cached, read and parsed while the server lists (mostly waiting on the socket).

    Nothing of it is used unless the listing shows the key with that same fingerprint, so the
    outcome is the one reading after the listing would give; only sooner.
    """
    ahead = {}
    for entry in _entries(cache.previous(prefix), MANIFEST_NAME, Scan()):
        data = cache.get(entry.key, entry.fingerprint, keep=False)
        if data is not None and entry.fingerprint is not None:
            ahead[entry.key] = entry.fingerprint, data, _parse_manifest(storage, entry, data)
    return ahead


def _parse_manifest(storage: Storage, entry: _Entry, data: bytes) -> Manifest | RegistryError:
    try:
        return parse_version_manifest(storage, entry.ref, data)
    except SKIPPED as exc:
        return exc


def _entries(objects: Mapping[str, str | None], filename: str | None, scan: Scan) -> list[_Entry]:
    """`models/<name>/<version>/<filename>` (or, without filename, `tags/<name>/<tag>.json`) keys as refs."""
    entries = []
    suffix = f"/{filename}" if filename is not None else ".json"
    model_names: set[str] = set()  # checked already: one model has thousands of versions
    for key, fingerprint in objects.items():
        if not key.endswith(suffix):
            continue
        parts = key.split("/")
        if filename is not None:
            if len(parts) != 4 or parts[3] != filename:
                continue
            name, item = parts[1], parts[2]
        elif len(parts) == 3:
            name, item = parts[1], parts[2].removesuffix(".json")
        else:
            continue
        try:
            if name not in model_names:
                model_names.add(check_name(name, "model name"))
            entries.append(_Entry(key, Ref(name, check_name(item, "name")), fingerprint))
        except UsageError as exc:
            scan.broken.append((key, str(exc)))
    return entries


def _read_all(storage: Storage, cache: ListingCache, entries: list[_Entry], limit: int,
              scan: Scan) -> list[tuple[_Entry, bytes]]:
    """The bytes of each entry still there, in entry order: from the cache, else fetched in parallel."""
    found: dict[str, bytes] = {}
    missing = []
    for entry in entries:
        data = cache.get(entry.key, entry.fingerprint)
        if data is None:
            missing.append(entry)
        else:
            found[entry.key] = data

    fetch_small = getattr(storage, "fetch_small", None)

    def fetch(entry: _Entry) -> bytes | RegistryError | None:
        try:
            data = fetch_small(entry.key, limit) if fetch_small is not None else None
            return data if data is not None else read_small(storage, entry.key, limit=limit)
        except SKIPPED as exc:
            return exc

    if missing:
        from modelreg.transfer import run_all  # push's and pull's pool, bounded by the backend alike

        for entry, result in zip(missing, run_all(storage, fetch, missing)):
            if isinstance(result, bytes):
                found[entry.key] = result
                cache.put(entry.key, entry.fingerprint, result)
            elif result is not None:  # None: deleted since it was listed
                scan.broken.append((entry.key, str(result)))
        scan.fetched += len(missing)
    return [(entry, found[entry.key]) for entry in entries if entry.key in found]


def _parsed(pairs: list[tuple[_Entry, bytes]], scan: Scan, parse: Callable) -> Iterator[tuple[bytes, Any]]:
    """(bytes, parse(entry, bytes)) for each pair; an entry that does not parse is reported as broken."""
    for entry, data in pairs:
        try:
            yield data, parse(entry, data)
        except SKIPPED as exc:
            scan.broken.append((entry.key, str(exc)))
