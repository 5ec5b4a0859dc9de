"""Remotes with fallbacks: one name, an ordered list of places holding the same registry.

A pull takes the manifest (and its signature) from the first place that has it and
then each blob from the first place that has a good copy. That is safe with any
mirror because blobs are content-addressed and verified while they stream
(`modelreg.download`): a missing blob, a damaged copy or an unreachable place makes
the pull try the next place, with a note naming what failed where, and the result
says which place served each file.

Guarantees:
- places are opened lazily, in order, only when needed: a pull that the primary
  serves whole never connects to a mirror;
- a place that was unreachable (RemoteError) is not asked again during the same
  pull, so a dead primary costs one connection attempt, not one per blob;
- the manifest is checked by the gate exactly as for a single remote; a place
  opened later for blobs is asked for the same ref, and a different manifest there
  (a tag that moved on one mirror only) is reported in a note, never used;
- when no place can supply something, the error raised is the most actionable one
  (unreachable, then damaged, then missing) with every other failure as a note;
  with a single place its own error is raised unchanged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelreg.config import RemoteSpec, Settings, add_remote
from modelreg.download import Tee, download_blob
from modelreg.errors import IntegrityError, InvalidArtifact, NotFound, RegistryError, RemoteError, UsageError
from modelreg.hashing import hash_bytes
from modelreg.local.cache import Cache
from modelreg.manifest import FileEntry, Manifest
from modelreg.progress import ProgressReporter
from modelreg.refs import Ref
from modelreg.remote.index import fetch_manifest
from modelreg.storage import open_storage
from modelreg.storage.base import Cancelled, Storage
from modelreg.storage.schemes import backend_for_url

if TYPE_CHECKING:
    from modelreg.remote.yanks import Yank
    from modelreg.transfer import PushResult

FALL_THROUGH = (NotFound, RemoteError, IntegrityError, InvalidArtifact)
"""Failures at one place that make a pull try the next: missing, unreachable, damaged."""


def describe_failure(exc: RegistryError) -> str:
    """A few words for notes: what was wrong with a place."""
    if isinstance(exc, RemoteError):
        return "unreachable"
    if isinstance(exc, (IntegrityError, InvalidArtifact)):
        return "damaged copy"
    return "missing"


@dataclass
class Places:
    """The places of one remote, opened on first use (thread-safe), closed together.

    Stands in for a `Storage` where `transfer.run_all` needs one: its parallelism is
    the first opened place's, and `cancel` cancels every place opened so far.
    """

    spec: RemoteSpec
    _opened: dict[int, Storage] = field(default_factory=dict)
    _down: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cancelled: bool = False

    @property
    def specs(self) -> tuple[RemoteSpec, ...]:
        return self.spec.places

    def label(self, index: int) -> str:
        return self.specs[index].label

    def open(self, index: int) -> Storage:
        with self._lock:
            if self._cancelled:
                raise Cancelled()
            if index not in self._opened:
                self._opened[index] = open_storage(self.specs[index])
            return self._opened[index]

    def opened(self) -> list[int]:
        with self._lock:
            return sorted(self._opened)

    def is_down(self, index: int) -> bool:
        return index in self._down

    def mark_down(self, index: int, exc: RegistryError) -> None:
        with self._lock:
            self._down.setdefault(index, str(exc))

    @property
    def parallel_transfers(self) -> int:
        with self._lock:
            opened = [self._opened[i] for i in sorted(self._opened)]
        return opened[0].parallel_transfers if opened else 1

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            opened = list(self._opened.values())
        for storage in opened:
            storage.cancel()

    def close(self) -> None:
        with self._lock:
            opened, self._opened = list(self._opened.values()), {}
        for storage in opened:
            storage.close()

    def attempt(self, func, what: str):
        """`func(index, storage)` at each place in order until one succeeds: (index, value, notes).

        A place already known to be down is skipped; one that fails with a
        FALL_THROUGH error is noted (and marked down when unreachable) and the next
        is tried. When every place failed, `give_up` raises.
        """
        failures: list[tuple[int, RegistryError]] = []
        for index in range(len(self.specs)):
            if self.is_down(index):
                continue
            try:
                return index, func(index, self.open(index)), failures
            except FALL_THROUGH as exc:
                if isinstance(exc, RemoteError):
                    self.mark_down(index, exc)
                failures.append((index, exc))
        raise self.give_up(what, failures)

    def give_up(self, what: str, failures: list[tuple[int, RegistryError]]) -> RegistryError:
        """The error for `what` after every place failed: the most actionable, the rest as notes."""
        if not failures:
            down = "; ".join(f"{self.label(i)}: {reason}" for i, reason in sorted(self._down.items()))
            return RemoteError(f"No place of {self.spec.name or self.spec.url} could be reached for "
                               f"{what} ({down}). Check the network, or try again later.")
        if len(failures) == 1 and len(self.specs) == 1:
            return failures[0][1]
        rank = (RemoteError, IntegrityError, InvalidArtifact, NotFound)
        _index, chosen = min(failures, key=lambda f: next(
            (i for i, cls in enumerate(rank) if isinstance(f[1], cls)), len(rank)))
        tried = ", ".join(f"{n}. {self.label(i)} ({describe_failure(e)})" for n, (i, e) in
                          enumerate(failures, start=1))
        chosen.add_note(f"No place of remote {self.spec.name or self.spec.url} could supply {what}; "
                        f"tried in order: {tried}.")
        for index, exc in failures:
            if exc is not chosen:
                chosen.add_note(f"{self.label(index)}: {exc}")
        return chosen

    def failure_notes(self, what: str, failures: list[tuple[int, RegistryError]], served: int) -> list[str]:
        """One note per place that failed before place `served` supplied `what`."""
        return [f"{what}: {describe_failure(exc)} on {self.label(index)}{failure_detail(exc)}; "
                f"{'served by ' + self.label(served) if served != index else 'used'} instead"
                for index, exc in failures]


def failure_detail(exc: RegistryError) -> str:
    """What a note adds to `describe_failure`: the digests of a damaged copy, why a place was unreachable."""
    if isinstance(exc, IntegrityError) and exc.expected:
        return (f" (sha256 {exc.actual[:12] or '?'}... instead of {exc.expected[:12]}...; repair that copy "
                f"with 'modelreg push NAME:VERSION --repair --remote' naming that place)")
    if isinstance(exc, (RemoteError, InvalidArtifact, IntegrityError)):
        return f" ({exc})"
    return ""


@dataclass
class SourcedManifest:
    """The manifest a pull uses, the bytes as read, its signature, and which place gave them."""

    manifest: Manifest
    data: bytes
    signature: bytes | None
    index: int
    notes: list[str]
    yank: Yank | None = None


def fetch_manifest_from(settings: Settings, places: Places, ref: Ref) -> SourcedManifest:
    """`ref`'s manifest, model.sig and yank record from the first place with a readable manifest
    (not yet gated; the yank is that place's, `modelreg.yanking`)."""
    from modelreg.yanking import read_signature_and_yank

    def fetch(_index: int, storage: Storage):
        manifest, data = fetch_manifest(storage, ref)
        signature, yank = read_signature_and_yank(settings, storage, Ref(manifest.name, manifest.version))
        return manifest, data, signature, yank

    index, (manifest, data, signature, yank), failures = places.attempt(fetch, f"the manifest of {ref}")
    return SourcedManifest(manifest, data, signature, index, places.failure_notes(
        f"the manifest of {ref}", failures, index), yank)


@dataclass
class BlobOutcome:
    downloaded: bool
    """False when another process brought the blob into the cache meanwhile."""
    index: int
    notes: list[str]


def download_from_places(places: Places, cache: Cache, entry: FileEntry, reporter: ProgressReporter,
                         ref: Ref, tee: Tee | None = None) -> BlobOutcome:
    """Bring one blob into the cache from the first place with a good copy (`Places.attempt`);
    `tee` as in `download_blob`."""
    index, downloaded, failures = places.attempt(
        lambda _index, storage: download_blob(cache, storage, entry, reporter, ref, tee), entry.path)
    return BlobOutcome(downloaded, index, places.failure_notes(entry.path, failures, index))


def mirror_disagreements(places: Places, ref: Ref, sourced: SourcedManifest,
                         outcomes: list[BlobOutcome]) -> list[str]:
    """Notes for the other places that served blobs and resolve `ref` to a different manifest.

    Only places already opened for blobs are asked (one small read each), so checking
    costs no connection.
    """
    notes = []
    digest = hash_bytes(sourced.data)
    for index in sorted({outcome.index for outcome in outcomes} - {sourced.index}):
        if places.is_down(index):
            continue
        try:
            manifest, data = fetch_manifest(places.open(index), ref)
        except RegistryError as exc:
            notes.append(f"{ref} could not be read on {places.label(index)} ({describe_failure(exc)}), "
                         f"which served blobs only")
            continue
        if hash_bytes(data) != digest:
            notes.append(f"{ref} resolves to {manifest.ref} (manifest {hash_bytes(data)[:12]}) on "
                         f"{places.label(index)} but to {sourced.manifest.ref} (manifest {digest[:12]}) on "
                         f"{places.label(sourced.index)}, the first place that had it: that one was used. "
                         f"The mirrors disagree; push to all of them ('modelreg push --all') or move the tag "
                         f"on each")
    return notes


def report_sources(places: Places, ref: Ref, sourced: SourcedManifest,
                   outcomes: dict[FileEntry, BlobOutcome]) -> tuple[dict[str, str], list[str]]:
    """({path: label of the place that served it} for each downloaded file, notes on failed places).

    Every path sharing a downloaded blob is listed; the notes include places whose
    manifest for `ref` differs from the one used (`mirror_disagreements`).
    """
    by_digest = {entry.sha256: outcome.index for entry, outcome in outcomes.items()}
    served = {entry.path: places.label(by_digest[entry.sha256]) for entry in sourced.manifest.files
              if entry.sha256 in by_digest}
    notes = [note for outcome in outcomes.values() for note in outcome.notes]
    return served, notes + mirror_disagreements(places, ref, sourced, list(outcomes.values()))


# -- push --all and remote add ------------------------------------------------------------------

@dataclass
class PlacePush:
    """One place's outcome of `push --all`: a PushResult or the error it failed with."""

    label: str
    result: PushResult | None = None
    error: RegistryError | None = None


def push_to_all(settings: Settings, ref: Ref, spec: RemoteSpec, **push_options) -> list[PlacePush]:
    """Push `ref` to every place of `spec` in order; a failure at one never stops the others.

    The first place signs (with `sign_key`); the others publish that same model.sig.
    """
    from modelreg.transfer import push, require_online

    require_online(settings, "push to", spec)
    outcomes = []
    for place in spec.places:
        try:
            outcomes.append(PlacePush(place.label, result=push(settings, ref, place, **push_options)))
        except RegistryError as exc:
            outcomes.append(PlacePush(place.label, error=exc))
            continue
        if push_options.get("sign_key"):
            push_options = {**push_options, "sign_key": None,
                            "signature": Cache(settings.cache_dir).read_signature(ref)}
    return outcomes


def raise_for_push_failures(outcomes: list[PlacePush]) -> None:
    """Raise the first place's error, every other failure as a note, when any place failed."""
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if not failed:
        return
    first = failed[0].error
    assert first is not None
    first.add_note(f"push --all: {len(failed)} of {len(outcomes)} place(s) failed: "
                   f"{', '.join(outcome.label for outcome in failed)}; the others were pushed.")
    for other in failed[1:]:
        first.add_note(f"{other.label}: {other.error}")
    raise first


def add_remote_places(settings: Settings, name: str, urls: list[str], options: dict,
                      make_default: bool = False) -> RemoteSpec:
    """Save remote `name` as the places `urls` in order (`modelreg remote add NAME URL [URL ...]`).

    An item without `://` names an already configured remote, whose places (URLs and
    options) are copied in at that position: the way to give two places of one
    scheme different options. Each given option goes to every literal URL whose
    backend takes it; an option no URL takes is a UsageError, as for one URL.
    """
    if not urls:
        raise UsageError("Give at least one URL, e.g. 'modelreg remote add team s3://bucket/prefix'.")
    given = {key: value for key, value in options.items() if value is not None}
    places: list[RemoteSpec] = []
    used: set[str] = set()
    for item in urls:
        if "://" not in item:
            places += [RemoteSpec(url=p.url, options=p.options) for p in _configured(settings, item).places]
            continue
        takes = backend_for_url(item).options
        places.append(RemoteSpec(url=item, options={k: v for k, v in given.items() if k in takes}))
        used |= set(given) & set(takes)
    if len(urls) == 1 and "://" in urls[0]:
        return add_remote(settings, name, urls[0], options=options, make_default=make_default)
    unused = sorted(set(given) - used)
    if unused:
        raise UsageError(f"Option(s) {unused} apply to none of the URLs given "
                         f"({', '.join(urls)}); drop them or add a URL of a scheme that takes them.")
    first = places[0]
    return add_remote(settings, name, first.url, options=first.options, make_default=make_default,
                      fallbacks=tuple(places[1:]))


def _configured(settings: Settings, name: str) -> RemoteSpec:
    if name not in settings.remotes:
        known = ", ".join(sorted(settings.remotes)) or "none"
        raise UsageError(f"{name!r} is neither a URL nor a configured remote (configured: {known}). "
                         f"Give a URL such as s3://bucket/prefix, or add {name!r} first.")
    return settings.remotes[name]
