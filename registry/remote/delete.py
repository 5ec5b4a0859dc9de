"""Deleting one version from a remote: its manifest first, so it disappears at once.

Guarantees:
- The manifest (`models/<name>/<version>/manifest.json`) is removed first: from then on
  `pull`, `list` and `show` no longer see the version, whatever happens next. Then the
  rest of the version directory goes (SHA256SUMS, model.sig, anything else kept
  beside the manifest). A delete interrupted after the manifest is repeated by running
  it again: a version directory without a manifest is finished off.
- Blobs are never deleted here (another version may share them): `modelreg gc`
  removes the ones no manifest references any more.
- A version a tag points at is refused (`InUse`, naming the tags) unless `force`; so is
  one whose tags cannot all be read (a broken tag file may point at it). With `force`
  the result names the tags left dangling: pulling them fails until they are moved.
- A tag name is refused: tags are not versions (move or re-create the tag instead).
- The local cache keeps its verified copy but no longer counts this remote as holding
  the version, so a pull of it asks the remote again (and fails there).

Deleting frees the version's name on that remote. Workspaces that pinned the deleted
manifest refuse a different bundle pushed later under the same name (pin mismatch),
so a new bundle should get a new version name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import InUse, NotFound, UsageError
from modelreg.hashing import hash_bytes
from modelreg.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME, version_key
from modelreg.local.cache import Cache
from modelreg.refs import Ref
from modelreg.remote.index import list_tags, read_small, read_tag
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.transfer import require_online

DELETE_ORDER = (MANIFEST_NAME, SUMS_NAME, SIGNATURE_NAME)
"""Files of a version directory removed first, in this order; any others follow, sorted."""


@dataclass
class DeleteResult:
    ref: Ref
    remote: str
    manifest_sha256: str | None
    """The digest of the deleted manifest; None when it was already gone (a delete finished off)."""
    deleted: list[str] = field(default_factory=list)
    """Keys removed, in the order they were removed (the manifest first)."""
    dangling_tags: list[str] = field(default_factory=list)
    """With `force`: tags (`name:tag`) that pointed at the version, or could not be read."""

    def to_dict(self) -> dict:
        return {"ref": str(self.ref), "remote": self.remote, "manifest_sha256": self.manifest_sha256,
                "deleted": self.deleted, "dangling_tags": self.dangling_tags}


def delete_version(settings: Settings, ref: Ref, spec: RemoteSpec, *, force: bool = False) -> DeleteResult:
    """Remove version `ref` from `spec` (see the module docstring for the guarantees)."""
    require_online(settings, "delete from", spec)
    storage = open_storage(spec)
    try:
        directory = version_key(ref.name, ref.version, "").rstrip("/")
        keys = storage.list(directory)
        manifest_key = version_key(ref.name, ref.version)
        if not keys:
            raise _not_a_version(storage, ref, spec)
        tags = _tags_in_the_way(storage, ref, spec, force)
        data = read_small(storage, manifest_key) if manifest_key in keys else None
        result = DeleteResult(ref=ref, remote=spec.label, manifest_sha256=hash_bytes(data) if data else None,
                              dangling_tags=tags)
        for key in sorted(keys, key=_delete_rank):
            storage.delete(key)
            result.deleted.append(key)
        for key in storage.list(directory):  # written by a writer racing this delete
            storage.delete(key)
            result.deleted.append(key)
        Cache(settings.cache_dir).forget_published(ref, spec.url)
        return result
    finally:
        storage.close()


def _delete_rank(key: str) -> tuple[int, str]:
    name = key.rsplit("/", 1)[-1]
    return (DELETE_ORDER.index(name) if name in DELETE_ORDER else len(DELETE_ORDER), key)


def _not_a_version(storage: Storage, ref: Ref, spec: RemoteSpec) -> Exception:
    tag = read_tag(storage, ref.name, ref.version)
    if tag is not None:
        return UsageError(f"{ref} is a tag on {spec.label} (pointing at {ref.name}:{tag.version}), not a "
                          f"version; nothing was deleted. Delete the version itself ('modelreg delete "
                          f"{ref.name}:{tag.version}') or point the tag elsewhere ('modelreg tag').")
    return NotFound(f"{ref} is not a version on {spec.label}; nothing was deleted. Run 'modelreg list "
                    f"--remote {spec.label}' to see what is there.")


def _tags_in_the_way(storage: Storage, ref: Ref, spec: RemoteSpec, force: bool) -> list[str]:
    """The tags pointing at `ref` or unreadable; InUse when there are any and not `force`."""
    broken: list = []
    pointing = [f"{tag.name}:{tag.tag}" for tag in list_tags(storage, ref.name, broken=broken)
                if tag.version == ref.version]
    unreadable = [key for key, _error in broken]
    if (pointing or unreadable) and not force:
        reasons = []
        if pointing:
            reasons.append(f"tag(s) {', '.join(pointing)} point at it")
        if unreadable:
            reasons.append(f"tag file(s) {', '.join(unreadable)} cannot be read, so they may point at it")
        raise InUse(f"Refusing to delete {ref} from {spec.label}: {'; '.join(reasons)}. Nothing was "
                    f"deleted. Move the tags to another version first ('modelreg tag VERSION TAG'), or "
                    f"delete anyway with --force (pulling those tags then fails until they are moved).")
    return pointing + unreadable
