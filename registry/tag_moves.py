"""Moving tags with a recorded history: `tag`, `rollback`, `tag-history`, and deliberate downgrades.

Guarantees:
- Every move of a tag first writes a create-only record (`modelreg.remote.tag_history`),
  then replaces the tag file. A crash in between leaves a record the tag does not agree
  with (shown as "not applied" by `tag_history`), never a move without a record.
  Pointing a tag at the version it already names writes nothing.
- `rollback` moves a tag back to the version it pointed at before its current one (the
  `previous` of the record that set it), checking that version's manifest digest against
  the record; a second rollback undoes the first, as `kubectl rollout undo` does.
- A rollback is a downgrade for machines that pulled the newer version. Their pull accepts
  it without `--allow-downgrade` only when the newest record of the tag is a rollback from
  exactly the version this machine last saw to exactly the version the tag names, signed
  by a trusted key. Otherwise the refusal stands and names the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelreg.config import RemoteSpec, Settings
from modelreg.errors import AlreadyExists, InvalidArtifact, ManifestMismatch, NotFound, UntrustedError
from modelreg.hashing import hash_bytes
from modelreg.layout import version_key
from modelreg.local.cache import Cache
from modelreg.manifest import Manifest
from modelreg.refs import Ref
from modelreg.remote.index import Tag, fetch_manifest, read_tag, write_tag
from modelreg.remote.tag_history import History, TagMove, Target, new_move, read_history, write_move
from modelreg.remote.yanks import read_yank
from modelreg.storage import open_storage
from modelreg.storage.base import Storage
from modelreg.trust.policy import check_tag_not_downgraded
from modelreg.trust.record_signing import sign_record
from modelreg.yanking import refuse_if_yanked


@dataclass
class MoveResult:
    tag: Tag
    move: TagMove | None
    """The record written, or None when the tag already pointed there."""
    notes: list[str] = field(default_factory=list)


@dataclass
class TagHistory:
    current: Tag | None
    history: History
    not_applied: list[str] = field(default_factory=list)
    """Ids of the newest records the current tag disagrees with (a move that crashed or lost a race)."""


def move_tag(settings: Settings, ref: Ref, tag_name: str, spec: RemoteSpec) -> MoveResult:
    """Point `tag_name` at the version `ref` names (a version or another tag), recording the move."""
    from modelreg.transfer import require_online

    require_online(settings, "tag on", spec)
    with open_storage(spec) as storage:
        manifest, data = fetch_manifest(storage, ref)
        new_tag = Tag(name=manifest.name, tag=tag_name, version=manifest.version,
                      manifest_sha256=hash_bytes(data))
        if storage.stat(version_key(manifest.name, tag_name)) is not None:
            raise AlreadyExists(f"{manifest.name}:{tag_name} is a version on {spec.label}; a tag "
                                f"cannot share its name. Pick another tag name.")
        result = _move(storage, _current_tag(storage, new_tag), new_tag, "tag", None)
        found = read_yank(settings, storage, Ref(manifest.name, manifest.version))
        if found is not None:
            result.notes.append(f"Tag {manifest.name}:{tag_name} now points at a withdrawn version: "
                                f"{found.describe()}. Pulls and loads through the tag are refused "
                                f"unless --allow-yanked.")
        return result


def rollback(settings: Settings, tag_ref: Ref, spec: RemoteSpec, *, sign_key: Path | None = None,
             passphrase: bytes | None = None, allow_yanked: bool = False) -> MoveResult:
    """Move a tag back to the version it pointed at before its current one; recorded as a rollback.

    NotFound when the tag does not exist or no record says how it got its current
    version; InvalidArtifact when it was created there (nothing to go back to);
    ManifestMismatch when the earlier version's manifest is not the one recorded;
    Yanked when that version is withdrawn (unless `allow_yanked`).
    """
    from modelreg.transfer import require_online

    require_online(settings, "roll back a tag on", spec)
    with open_storage(spec) as storage:
        current = read_tag(storage, tag_ref.name, tag_ref.version)
        if current is None:
            raise NotFound(f"Tag {tag_ref} does not exist on {spec.label}; nothing to roll back.")
        setter = next((move for move in read_history(settings, storage, tag_ref.name, tag_ref.version).moves
                       if move.new == Target.of(current)), None)
        if setter is None:
            raise NotFound(f"No tag history record on {spec.label} says how {tag_ref} came to point at "
                           f"{current.version} (it was moved before modelreg recorded history, or by hand), "
                           f"so there is no known earlier version. Move it explicitly with 'modelreg tag "
                           f"VERSION {tag_ref.version}'.")
        if setter.previous is None:
            raise InvalidArtifact(f"Tag {tag_ref} was created pointing at {current.version} (record "
                                  f"{setter.record_id} by {setter.who} at {setter.when}); there is no earlier "
                                  f"version to roll back to.")
        target = setter.previous
        manifest, data = fetch_manifest(storage, Ref(tag_ref.name, target.version))
        if hash_bytes(data) != target.manifest_sha256:
            raise ManifestMismatch(
                subject=f"{tag_ref.name}:{target.version} on {spec.label}", expected=target.manifest_sha256,
                actual=hash_bytes(data), promised_by=f"tag history record {setter.record_id}",
                outcome="The tag was not moved.", fix="Move the tag explicitly with 'modelreg tag'.",
                path=version_key(tag_ref.name, target.version), source="remote")
        found = read_yank(settings, storage, Ref(manifest.name, manifest.version))
        notes = refuse_if_yanked([(spec.label, found)] if found else [], allow_yanked, tag_ref)
        new_tag = Tag(name=tag_ref.name, tag=tag_ref.version, version=target.version,
                      manifest_sha256=target.manifest_sha256)
        signature_key = sign_key or (Path(settings.signing_key).expanduser() if settings.signing_key else None)
        result = _move(storage, current, new_tag, "rollback", (signature_key, passphrase))
        result.notes += notes
        return result


def write_recorded_tag(storage: Storage, new_tag: Tag) -> MoveResult:
    """Set `new_tag` as copied from elsewhere (`copy --tags`, `mirror`, `import`): recorded as a move."""
    return _move(storage, _current_tag(storage, new_tag), new_tag, "tag", None)


def _current_tag(storage: Storage, new_tag: Tag) -> Tag | None:
    """The tag as it is before a move; a malformed tag file counts as none (the move re-creates it)."""
    try:
        return read_tag(storage, new_tag.name, new_tag.tag)
    except InvalidArtifact:
        return None


def _move(storage: Storage, previous: Tag | None, new_tag: Tag, action: str,
          signing: tuple[Path | None, bytes | None] | None) -> MoveResult:
    """Record the move (signed when `signing` names a key), then replace the tag file."""
    if previous == new_tag:
        return MoveResult(tag=new_tag, move=None)
    move, data = new_move(previous, new_tag, action)
    signature = None
    if signing is not None and signing[0] is not None:
        signature = sign_record(data, f"{move.record_id}.json", signing[0], signing[1])
    write_move(storage, move, data, signature)
    write_tag(storage, new_tag)
    return MoveResult(tag=new_tag, move=move)


def tag_history(settings: Settings, tag_ref: Ref, spec: RemoteSpec) -> TagHistory:
    """Every recorded move of a tag, newest first, with the tag's current target."""
    from modelreg.transfer import require_online

    require_online(settings, "read tag history on", spec)
    with open_storage(spec) as storage:
        current = _current_tag(storage, Tag(tag_ref.name, tag_ref.version, "", ""))
        history = read_history(settings, storage, tag_ref.name, tag_ref.version)
    if current is None and not history.moves and not history.broken:
        raise NotFound(f"Tag {tag_ref} does not exist on {spec.label} and has no recorded history.")
    not_applied = []
    for move in history.moves:
        if current is not None and move.new == Target.of(current):
            break
        not_applied.append(move.record_id)
    return TagHistory(current=current, history=history,
                      not_applied=not_applied if current is not None else [])


def check_tag_downgrade(settings: Settings, cache: Cache, storage: Storage, tag_ref: Ref, manifest: Manifest,
                        manifest_bytes: bytes, allow_downgrade: bool) -> str | None:
    """`check_tag_not_downgraded`, accepting a deliberate rollback that a trusted key signed (module doc)."""
    try:
        return check_tag_not_downgraded(cache, tag_ref, manifest, allow_downgrade)
    except UntrustedError as exc:
        seen = cache.read_tag_seen(tag_ref)
        moves = read_history(settings, storage, tag_ref.name, tag_ref.version).moves
        newest = moves[0] if moves else None
        if seen is None or newest is None or newest.action != "rollback" \
                or newest.new != Target(manifest.version, hash_bytes(manifest_bytes)) \
                or newest.previous != Target(seen["version"], seen["manifest_sha256"]):
            raise
        what = f"a deliberate rollback by {newest.who} at {newest.when} (record {newest.record_id})"
        if newest.verified_by is None:
            exc.add_note(f"The tag history records this as {what}, but that record is "
                         f"{newest.signature}; only a rollback record signed by a trusted key is accepted "
                         f"without --allow-downgrade.")
            raise
        return (f"Tag {tag_ref} moved back from {seen['version']} to {manifest.version}: {what}, "
                f"signed by trusted key {newest.verified_by}; accepted as a rollback.")
