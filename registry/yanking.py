"""Withdrawing versions: `yank`, `unyank`, and the check every pull and load makes.

Guarantees:
- A yanked version is refused by pull and `modelreg.load` (`Yanked`, exit 4) with the
  yank's reason, unless `allow_yanked`; a workspace pin does not exempt it, and a tag
  pointing at it is refused like the version (the message names both).
- A pull that asks the remote reads yanked.json together with model.sig (in parallel
  where the backend allows), before any blob moves.
- The cache remembers, per remote, when it last learned whether a version is yanked
  (`<cache>/manifests/<name>/<version>.yank`). A cached version is served without the
  remote only while that answer is younger than `settings.yank_check_interval`
  (default 1 h); after that, one small read of yanked.json asks again. `--offline`
  uses what the cache knows and says how old it is. A yank remembered from any remote
  refuses the version (fail safe) until that remote answers otherwise.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import (
    AlreadyExists,
    NotFound,
    RegistryError,
    RemoteError,
    RemoteUnreachableWarning,
    UsageError,
    Yanked,
)
from modelreg.hashing import hash_bytes
from modelreg.layout import SIGNATURE_NAME, YANK_NAME, version_key
from modelreg.local.atomic import atomic_write
from modelreg.local.cache import Cache, read_regular
from modelreg.manifest import canonical_json
from modelreg.refs import Ref
from modelreg.remote.index import fetch_manifest, read_small
from modelreg.remote.records import parse_utc, utc_now_precise, who_am_i
from modelreg.remote.yanks import Yank, parse_yank, read_yank, yank_keys
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.trust.record_signing import sign_record

MAX_REASON = 2000


def yank(settings: Settings, ref: Ref, spec: RemoteSpec, reason: str, *, sign_key: Path | None = None,
         passphrase: bytes | None = None) -> Yank:
    """Withdraw version `ref` (or the version a tag names) on `spec`: write yanked.json create-only.

    With `sign_key`, yanked.sig (a signature over the record's exact bytes) is written
    first. AlreadyExists, naming the existing yank, when the version is already yanked.
    """
    from modelreg.transfer import require_online

    reason = " ".join(reason.split())
    if not reason or len(reason) > MAX_REASON:
        raise UsageError(f"Give a reason of 1 to {MAX_REASON} characters with --reason (it is shown to "
                         f"everyone whose pull is refused); nothing was yanked.")
    require_online(settings, "yank on", spec)
    with open_storage(spec) as storage:
        manifest, data = fetch_manifest(storage, ref)
        version_ref = Ref(manifest.name, manifest.version)
        existing = read_yank(settings, storage, version_ref)
        if existing is not None:
            raise _already_yanked(existing, spec)
        record = canonical_json({"format_version": 1, "name": manifest.name, "version": manifest.version,
                                 "manifest_sha256": hash_bytes(data), "reason": reason,
                                 "yanked_by": who_am_i(), "yanked_at": utc_now_precise()})
        record_key, signature_key = yank_keys(version_ref)
        signature = sign_record(record, YANK_NAME, sign_key, passphrase) if sign_key else None
        if signature is not None:
            storage.write(signature_key, signature)
        try:
            storage.write(record_key, record, create_only=True)
        except AlreadyExists:
            raise _already_yanked(read_yank(settings, storage, version_ref), spec) from None
        result = parse_yank(settings, version_ref, record, signature, f"{record_key} on {storage.url}")
    remember_yank(Cache(settings.cache_dir), version_ref, spec.url, result)
    return result


def _already_yanked(existing: Yank | None, spec: RemoteSpec) -> AlreadyExists:
    what = existing.describe() if existing else "It was yanked by someone else at the same moment"
    ref = existing.ref if existing else "the version"
    return AlreadyExists(f"{what} on {spec.label}. A yank record is create-only: to change the "
                         f"reason, 'modelreg unyank {ref}' first, then yank again.")


def unyank(settings: Settings, ref: Ref, spec: RemoteSpec) -> Yank:
    """Make a yanked version usable again: remove yanked.json (then yanked.sig); returns the removed yank."""
    from modelreg.transfer import require_online

    require_online(settings, "unyank on", spec)
    with open_storage(spec) as storage:
        manifest, _data = fetch_manifest(storage, ref)
        version_ref = Ref(manifest.name, manifest.version)
        existing = read_yank(settings, storage, version_ref)
        if existing is None:
            raise NotFound(f"{version_ref} is not yanked on {spec.label}; nothing to unyank.")
        record_key, signature_key = yank_keys(version_ref)
        storage.delete(record_key)
        storage.delete(signature_key)
    remember_yank(Cache(settings.cache_dir), version_ref, spec.url, None)
    return existing


def read_signature_and_yank(settings: Settings, storage: Storage, ref: Ref) -> tuple[bytes | None, Yank | None]:
    """model.sig and the yank of version `ref`, read in parallel where the backend allows."""
    from modelreg.transfer import run_all

    record_key = yank_keys(ref)[0]
    signature, record = run_all(storage, lambda key: read_small(storage, key),
                                [version_key(ref.name, ref.version, SIGNATURE_NAME), record_key])
    return signature, read_yank(settings, storage, ref, record, fetched=True)


def enforce_yank(cache: Cache, ref: Ref, spec: RemoteSpec, yank_found: Yank | None, allow_yanked: bool,
                 via: Ref | None = None) -> list[str]:
    """Remember what `spec` just said about `ref`, then refuse it when yanked (see `refuse_if_yanked`)."""
    remember_yank(cache, ref, spec.url, yank_found)
    return refuse_if_yanked([(spec.label, yank_found)] if yank_found else [], allow_yanked, via)


def refuse_if_yanked(yanks: list[tuple[str, Yank]], allow_yanked: bool, via: Ref | None = None) -> list[str]:
    """Yanked for the first of `yanks` (where, yank) unless `allow_yanked`; else notes saying it was used."""
    notes = []
    for where, found in yanks:
        through = f"Tag {via} points at {found.ref}, a withdrawn version: " if via else ""
        message = f"{through}{found.describe()} (on {where})."
        if not allow_yanked:
            raise Yanked(f"{message} Nothing was downloaded or loaded, and a workspace pin does not change "
                         f"that. Use another version, or pass --allow-yanked (allow_yanked=True in Python) "
                         f"to use it anyway.")
        notes.append(f"{message} Used anyway because of --allow-yanked.")
    return notes


def check_cached_yank(settings: Settings, cache: Cache, ref: Ref, spec: RemoteSpec, allow_yanked: bool,
                      via: Ref | None = None) -> list[str]:
    """The yank check for a version served from the cache (the fast path of pull, and load).

    When `spec` is known to hold `ref` and its last answer is older than
    `settings.yank_check_interval`, yanked.json is read once (offline: a note instead).
    Then any remembered yank refuses (or, with `allow_yanked`, is noted).
    """
    known = known_yanks(cache, ref)
    notes = []
    if spec.url in cache.published_on(ref) and not _fresh(known.get(spec.url), settings.yank_check_interval):
        if settings.offline:
            checked = known.get(spec.url, {}).get("checked_at")
            notes.append(f"--offline: whether {ref} was yanked on {spec.label} was "
                         f"{f'last checked at {checked}' if checked else 'never checked'}; the remote was "
                         f"not asked again.")
        else:
            try:
                with open_storage(spec) as storage:
                    found = read_yank(settings, storage, ref)
            except RemoteError as exc:
                checked = known.get(spec.url, {}).get("checked_at")
                warnings.warn(f"{spec.label} could not be reached to ask whether {ref} was yanked (last "
                              f"answer: {checked or 'never'}), so the cached version is used on what the "
                              f"cache knows: {exc}", RemoteUnreachableWarning, stacklevel=3)
                return notes + refuse_if_yanked(_remembered(known), allow_yanked, via)
            return notes + enforce_yank(cache, ref, spec, found, allow_yanked, via) + refuse_if_yanked(
                _remembered(known, exclude=spec.url), allow_yanked, via)
    return notes + refuse_if_yanked(_remembered(known), allow_yanked, via)


def _remembered(known: dict, exclude: str | None = None) -> list[tuple[str, Yank]]:
    found = []
    for url, entry in sorted(known.items()):
        if url != exclude and isinstance(entry.get("yank"), dict):
            try:
                found.append((f"{url}, as last checked at {entry.get('checked_at')}",
                              Yank.from_dict(entry["yank"])))
            except (KeyError, TypeError, ValueError):
                continue
    return found


def _fresh(entry: dict | None, interval: float) -> bool:
    try:
        age = (datetime.now(UTC) - parse_utc(str((entry or {})["checked_at"]))).total_seconds()
    except (KeyError, ValueError):
        return False
    return 0 <= age < interval


def _status_path(cache: Cache, ref: Ref) -> Path:
    return cache.manifest_path(ref).with_suffix(".yank")


def known_yanks(cache: Cache, ref: Ref) -> dict[str, dict]:
    """{remote url: {"checked_at", "yank": dict or None}} as remembered; {} when absent or unreadable."""
    try:
        data = json.loads(read_regular(_status_path(cache, ref)) or b"{}")
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {url: entry for url, entry in data.items() if isinstance(url, str) and isinstance(entry, dict)}


def remember_yank(cache: Cache, ref: Ref, remote_url: str, found: Yank | None) -> None:
    """Record what `remote_url` said just now about `ref` (best effort: a failed write means ask again)."""
    known = known_yanks(cache, ref)
    known[remote_url] = {"checked_at": utc_now_precise(), "yank": found.to_dict() if found else None}
    try:
        atomic_write(_status_path(cache, ref), json.dumps(known, sort_keys=True).encode())
    except (OSError, RegistryError):
        pass
