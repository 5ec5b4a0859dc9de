"""Garbage collection on a remote: remove the blobs no manifest references, and abandoned uploads.

Mark and sweep, with no lock (none of the backends has one that every writer honours):
1. Mark: every manifest on the remote (`models/*/*/manifest.json`) is read and each
   digest it lists is kept. If any manifest cannot be read or parsed, nothing is swept
   (`InvalidArtifact` naming them): a broken manifest may still be what a version's
   blobs hang on. `allow_broken` sweeps anyway, still keeping every digest that appears
   anywhere in the text of a broken manifest that could be read.
2. Sweep candidates: blobs (`blobs/sha256/<2>/<64>`) no manifest references *and* older
   than `grace` (their modification time, by the server's clock where the backend can
   read it, see `Storage.list_info`), and unfinished uploads (temp files, incomplete
   multipart uploads) that saw no write for `grace`. Keys under `blobs/` that are not
   blob keys are never deleted, only reported.
3. Re-mark: just before deleting, manifests published since step 1 are read too and
   their blobs dropped from the candidates.
4. Delete, then check once more: a manifest published during the sweep that references a
   deleted blob is reported in `GcResult.damaged` (repair it with `push --repair`).

What the grace period protects: a push uploads its blobs and publishes its manifest
last, so its blobs are unreferenced until it ends; they are younger than `grace` as long
as the push takes less than `grace`, which must therefore exceed the longest push.
What it cannot protect alone: a push that finds an old unreferenced blob already there
(left by a deleted version) skips uploading it. If gc deletes that blob before the push
publishes, the push notices when it checks the blobs it reused right after publishing,
and uploads them again (`transfer.push`); if gc deletes it in the instant after that
check and before gc's own re-mark sees the new manifest, step 4 reports the version as
damaged. To exclude even that, run gc when no push is running.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import InvalidArtifact, UsageError
from modelreg.layout import MANIFEST_NAME, digest_of_blob_key, version_of_key
from modelreg.manifest import Manifest
from modelreg.remote.index import read_small
from modelreg.storage import open_storage
from modelreg.storage.base import ObjectInfo, Storage
from modelreg.transfer import require_online, run_all

DEFAULT_GRACE = 24 * 3600.0
"""Seconds an unreferenced blob or unfinished upload is kept (`modelreg gc --grace`, default 24h)."""

_DIGEST_TEXT = re.compile(rb"[0-9a-f]{64}")


@dataclass(frozen=True)
class Removal:
    """One thing gc removes (or, in a dry run, would remove)."""

    key: str
    size: int | None
    age: float
    kind: str
    """"blob", or "upload" (a temp file or an incomplete multipart upload of `key`)."""
    upload_id: str = ""

    def to_dict(self) -> dict:
        return {"key": self.key, "size": self.size, "age_seconds": round(self.age, 3), "kind": self.kind,
                "upload_id": self.upload_id}


@dataclass
class Marks:
    """What the mark phase found: digests in use, the manifests read, and those that could not be."""

    digests: set[str] = field(default_factory=set)
    manifests: dict[str, set[str]] = field(default_factory=dict)
    """Digests referenced, by manifest key."""
    broken: dict[str, str] = field(default_factory=dict)
    """Why each unreadable manifest could not be read, by key."""


@dataclass
class GcResult:
    remote: str
    grace: float
    dry_run: bool
    manifests: int = 0
    referenced: int = 0
    removed: list[Removal] = field(default_factory=list)
    """Deleted (or, in a dry run, to be deleted): blobs first, then uploads."""
    young: list[ObjectInfo] = field(default_factory=list)
    """Unreferenced blobs kept because they are younger than `grace` (perhaps a push in flight)."""
    uploads_in_progress: int = 0
    broken: dict[str, str] = field(default_factory=dict)
    """Manifests that could not be read (swept anyway only with `allow_broken`)."""
    unknown: list[str] = field(default_factory=list)
    """Keys under blobs/ that are not blob keys: left alone."""
    damaged: list[str] = field(default_factory=list)
    """Manifests published during the sweep that reference a blob it deleted."""

    @property
    def bytes_freed(self) -> int:
        return sum(removal.size or 0 for removal in self.removed)

    def to_dict(self) -> dict:
        return {"remote": self.remote, "grace_seconds": self.grace, "dry_run": self.dry_run,
                "manifests": self.manifests, "referenced_blobs": self.referenced,
                "removed": [removal.to_dict() for removal in self.removed], "bytes_freed": self.bytes_freed,
                "kept_young": [{"key": info.key, "size": info.size, "age_seconds": round(info.age, 3)}
                               for info in self.young],
                "uploads_in_progress": self.uploads_in_progress,
                "broken_manifests": [{"key": key, "error": error} for key, error in sorted(self.broken.items())],
                "unknown_keys": self.unknown, "damaged": self.damaged}


def collect_garbage(settings: Settings, spec: RemoteSpec, *, grace: float = DEFAULT_GRACE,
                    dry_run: bool = False, allow_broken: bool = False) -> GcResult:
    """Mark and sweep `spec` (see the module docstring); with `dry_run`, report without deleting."""
    require_online(settings, "collect garbage on", spec)
    if grace < 0:
        raise ValueError(f"grace must be at least 0 seconds, not {grace}")
    storage = open_storage(spec)
    try:
        result = GcResult(remote=spec.label, grace=grace, dry_run=dry_run)
        marks = mark(storage, Marks())
        _refuse_broken(marks, spec, allow_broken)
        candidates: list[tuple[str, ObjectInfo]] = []
        for info in storage.list_info("blobs/"):
            digest = digest_of_blob_key(info.key)
            if digest is None:
                result.unknown.append(info.key)
            elif digest in marks.digests:
                continue
            elif info.age < grace:
                result.young.append(info)
            else:
                candidates.append((digest, info))
        uploads = storage.list_uploads("")
        stale = [upload for upload in uploads if upload.age >= grace]
        result.uploads_in_progress = len(uploads) - len(stale)
        marks = mark(storage, marks)  # manifests published while the blobs were listed
        _refuse_broken(marks, spec, allow_broken)
        result.manifests, result.referenced, result.broken = len(marks.manifests), len(marks.digests), marks.broken
        candidates = [(digest, info) for digest, info in candidates if digest not in marks.digests]
        result.removed = [Removal(info.key, info.size, info.age, "blob") for _digest, info in candidates]
        result.removed += [Removal(upload.key, upload.size, upload.age, "upload", upload.upload_id)
                           for upload in stale]
        if dry_run:
            return result
        deleted = set()
        for digest, info in candidates:
            storage.delete(info.key)
            deleted.add(digest)
        for upload in stale:
            storage.remove_upload(upload)
        seen = set(marks.manifests)
        after = mark(storage, marks)
        result.damaged = sorted(key for key, digests in after.manifests.items()
                                if key not in seen and digests & deleted)
        return result
    finally:
        storage.close()


def mark(storage: Storage, marks: Marks) -> Marks:
    """Add the digests of every manifest on `storage` not read yet into `marks` (and return it)."""
    keys = [key for key in storage.list("models/")
            if (parts := version_of_key(key)) is not None and parts[2] == MANIFEST_NAME
            and key not in marks.manifests and key not in marks.broken]

    def read(key: str) -> tuple[str, set[str], str]:
        """(key, digests, "") of a manifest; of a broken one (key, every digest in its text, why)."""
        data = None
        try:
            data = read_small(storage, key)
            if data is None:  # deleted since it was listed
                return key, set(), ""
            manifest = Manifest.from_bytes(data, source=f"{storage.url} ({key})")
            return key, {entry.sha256 for entry in manifest.files}, ""
        except (InvalidArtifact, UsageError) as exc:
            return key, {match.decode() for match in _DIGEST_TEXT.findall(data or b"")}, str(exc) or type(exc).__name__

    for key, digests, error in run_all(storage, read, keys):
        if error:
            marks.broken[key] = error
        else:
            marks.manifests[key] = digests
        marks.digests.update(digests)  # a broken manifest's digests are kept even with allow_broken
    return marks


def _refuse_broken(marks: Marks, spec: RemoteSpec, allow_broken: bool) -> None:
    if marks.broken and not allow_broken:
        listed = "; ".join(f"{key}: {error}" for key, error in sorted(marks.broken.items())[:5])
        more = f" (and {len(marks.broken) - 5} more)" if len(marks.broken) > 5 else ""
        raise InvalidArtifact(
            f"Refusing to collect garbage on {spec.label}: {len(marks.broken)} manifest(s) cannot be read, "
            f"so the blobs they reference are unknown and nothing was deleted. {listed}{more}. Repair them "
            f"('modelreg push NAME:VERSION --repair' from a machine that has the version cached) or delete "
            f"those versions ('modelreg delete NAME:VERSION'), then run gc again; or run gc with "
            f"--allow-broken, which still keeps every digest found in the text of a broken manifest.")

