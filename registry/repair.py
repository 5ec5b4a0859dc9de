"""Repairing a published version on a remote from the verified local cache (`modelreg push REF --repair`).

A plain push trusts what the remote already holds (a blob of the right size counts
as there, an existing manifest means "nothing to do"), so a damaged or deleted blob,
a deleted manifest or a lost SHA256SUMS would stay broken. A repair re-reads every
blob of the version back through the backend, hashing it, and:

- replaces a missing or damaged blob with the cache's verified copy. A blob's content is
  fixed by its name, so overwriting a wrong copy with the right bytes is safe (not
  create-only: the wrong copy must go);
- restores a missing manifest create-only, after the blobs; a *different* manifest under
  the version is refused (`AlreadyExists`) before anything is written: versions are immutable;
- rewrites a missing or wrong SHA256SUMS (derived from the manifest);
- restores a missing model.sig from the cache's copy (or the new signature), create-only,
  and never replaces one that is there.

The result lists every blob checked, with what was found and done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelreg.errors import AlreadyExists, NotFound
from modelreg.hashing import HashingSink
from modelreg.layout import SIGNATURE_NAME, SUMS_NAME, blob_key, version_key
from modelreg.manifest import FileEntry, Manifest
from modelreg.progress import ProgressReporter
from modelreg.refs import Ref
from modelreg.remote.index import read_small
from modelreg.storage.base import Storage

GOOD, MISSING, DAMAGED = "good", "missing", "damaged"


def repair_command(ref: Ref | str) -> str:
    """The command that repairs `ref` on a remote, for messages that tell the user to run it."""
    return f"modelreg push {ref} --repair"


@dataclass(frozen=True)
class BlobCheck:
    """One blob read back from the remote: `state` is GOOD, MISSING or DAMAGED (`detail` says how)."""

    entry: FileEntry
    state: str
    detail: str = ""


@dataclass
class RepairResult:
    """What a repair checked and did; `metadata` maps manifest.json, SHA256SUMS and model.sig to
    "good", "restored", "rewritten", "kept" or "none"."""

    blobs: list[BlobCheck] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def repaired(self) -> list[BlobCheck]:
        return [check for check in self.blobs if check.state != GOOD]

    @property
    def good(self) -> list[BlobCheck]:
        return [check for check in self.blobs if check.state == GOOD]


class _Discard:
    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        return len(data)


def check_remote_blob(storage: Storage, entry: FileEntry, reporter: ProgressReporter) -> BlobCheck:
    """Read the remote copy of `entry` through the backend, hashing every byte (nothing is kept)."""
    sink = HashingSink(_Discard(), limit=entry.size, progress=reporter.task(f"check {entry.path}", entry.size))
    try:
        storage.read(blob_key(entry.sha256), sink)
    except NotFound:
        return BlobCheck(entry, MISSING, "missing")
    except OverflowError:
        return BlobCheck(entry, DAMAGED, f"larger than the {entry.size} bytes the manifest declares")
    if sink.hexdigest() != entry.sha256 or sink.size != entry.size:
        return BlobCheck(entry, DAMAGED, f"sha256 {sink.hexdigest()[:12]}, {sink.size} bytes "
                                         f"(expected {entry.sha256[:12]}, {entry.size} bytes)")
    return BlobCheck(entry, GOOD)


def repair_metadata(storage: Storage, ref: Ref, manifest: Manifest, manifest_bytes: bytes,
                    signature: bytes | None, manifest_present: bool, result: RepairResult) -> None:
    """Restore manifest (create-only), SHA256SUMS and model.sig; call once every blob is good."""
    if manifest_present:
        result.metadata["manifest.json"] = GOOD
    else:
        try:
            storage.write(version_key(ref.name, ref.version), manifest_bytes, create_only=True)
            result.metadata["manifest.json"] = "restored"
        except AlreadyExists:
            result.metadata["manifest.json"] = GOOD  # another repair or push won; the caller re-checks
    sums_key = version_key(ref.name, ref.version, SUMS_NAME)
    expected_sums = manifest.sha256sums().encode()
    current_sums = read_small(storage, sums_key)
    if current_sums == expected_sums:
        result.metadata[SUMS_NAME] = GOOD
    else:
        storage.write(sums_key, expected_sums)
        result.metadata[SUMS_NAME] = "restored" if current_sums is None else "rewritten"
    signature_key = version_key(ref.name, ref.version, SIGNATURE_NAME)
    if storage.stat(signature_key) is not None:
        result.metadata[SIGNATURE_NAME] = "kept"
    elif signature is None:
        result.metadata[SIGNATURE_NAME] = "none"
    else:
        try:
            storage.write(signature_key, signature, create_only=True)
            result.metadata[SIGNATURE_NAME] = "restored"
        except AlreadyExists:
            result.metadata[SIGNATURE_NAME] = "kept"
