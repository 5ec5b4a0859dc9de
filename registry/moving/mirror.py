"""Mirror a registry: copy every version the destination lacks, each through `copy_version`.

Guarantees: each version is copied whole or not at all (blobs first, manifest last,
create-only), so an interrupted or partly failed mirror leaves the destination with
complete versions only and a rerun copies the rest. Every version is attempted; the
first failure is raised at the end with the others (and what was copied) attached as
notes. With `tags`, every readable source tag whose version the destination then holds
with the same manifest is set there too (tags move; versions never change).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import RegistryError
from modelreg.hashing import hash_bytes
from modelreg.layout import version_key
from modelreg.moving.copy import CopyResult, copy_version, set_tag
from modelreg.progress import ProgressReporter, SilentProgress
from modelreg.refs import Ref
from modelreg.remote.index import Tag, list_model_names, list_tags, list_versions, read_small, read_tag
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.transfer import require_online


@dataclass
class MirrorResult:
    source: str
    dest: str
    missing: list[Ref] = field(default_factory=list)
    """Versions on the source that the destination lacked (with `dry_run`: what would be copied)."""
    copied: list[CopyResult] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    dry_run: bool = False

    def to_json(self) -> dict:
        return {"from": self.source, "to": self.dest, "dry_run": self.dry_run,
                "missing": [str(ref) for ref in self.missing],
                "copied": [result.to_json() for result in self.copied],
                "tags": [f"{t.name}:{t.tag}" for t in self.tags]}


def missing_versions(source: Storage, dest: Storage) -> list[Ref]:
    """Every version on `source` (by name, then version) whose manifest `dest` does not have."""
    return [Ref(name, version) for name in list_model_names(source) for version in list_versions(source, name)
            if dest.stat(version_key(name, version)) is None]


def mirror(settings: Settings, from_spec: RemoteSpec, to_spec: RemoteSpec, *, dry_run: bool = False,
           tags: bool = False, reporter: ProgressReporter | None = None) -> MirrorResult:
    """Copy every version `to_spec` lacks from `from_spec` (see the module docstring)."""
    reporter = reporter or SilentProgress()
    require_online(settings, "mirror from", from_spec)
    require_online(settings, "mirror to", to_spec)
    result = MirrorResult(source=from_spec.label, dest=to_spec.label, dry_run=dry_run)
    failures: list[RegistryError] = []
    with open_storage(from_spec) as source, open_storage(to_spec) as dest:
        result.missing = missing_versions(source, dest)
        if dry_run:
            return result
        for ref in result.missing:
            reporter.message(f"copying {ref} to {to_spec.label}")
            try:
                result.copied.append(copy_version(settings, ref, source, dest, reporter=reporter,
                                                  source_label=from_spec.label))
            except RegistryError as exc:
                exc.add_note(f"(while copying {ref})")
                failures.append(exc)
        if tags:
            result.tags = _mirror_tags(source, dest, failures, reporter)
    if failures:
        first = failures[0]
        for other in failures[1:]:
            first.add_note(f"Also: {other}")
        first.add_note(f"{len(result.copied)} version(s) were copied completely; run the mirror again "
                       f"to retry the rest.")
        raise first
    return result


def _mirror_tags(source: Storage, dest: Storage, failures: list[RegistryError],
                 reporter: ProgressReporter) -> list[Tag]:
    """Set on `dest` every source tag whose version `dest` holds with the same manifest."""
    moved = []
    for name in list_model_names(source):
        broken: list = []
        for tag in list_tags(source, name, broken=broken):
            data = read_small(dest, version_key(tag.name, tag.version))
            if data is None or hash_bytes(data) != tag.manifest_sha256 or _tag_on(dest, tag) == tag:
                continue
            try:
                set_tag(dest, tag)
            except RegistryError as exc:
                failures.append(exc)
                continue
            moved.append(tag)
        for key, error in broken:
            reporter.message(f"Warning: tag {key} on {source.url} is unreadable and was not mirrored: {error}")
    return moved


def _tag_on(storage: Storage, tag: Tag) -> Tag | None:
    """The tag of that name on `storage`, or None when absent or unreadable (then it is rewritten)."""
    try:
        return read_tag(storage, tag.name, tag.tag)
    except RegistryError:
        return None
