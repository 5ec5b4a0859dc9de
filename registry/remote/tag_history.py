"""Tag move records on a remote: `tag-history/<name>/<tag>/<id>.json` (+ `<id>.sig`).

Every move of a tag writes one record, create-only, before the tag file itself is
replaced: previous and new version with their manifest digests, the action (`tag` or
`rollback`), who (user@host) and when (UTC). Ids start with the UTC time to the
microsecond, so listing the prefix sorts them; a random suffix keeps two moves in the
same microsecond apart. History lives outside `tags/`, where every key is a tag.
A crash between the record and the tag file leaves a record of a move that did not
happen; `History.applied` says which records the current tag agrees with.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from modelreg.config import Settings
from modelreg.errors import RegistryError
from modelreg.layout import record_ids_from_keys, tag_history_key, tag_history_prefix
from modelreg.manifest import canonical_json
from modelreg.remote.index import Tag, read_small
from modelreg.remote.records import MAX_RECORD_BYTES, parse_record, utc_now_precise, who_am_i
from modelreg.storage.base import Storage
from modelreg.trust.record_signing import check_record_signature


@dataclass(frozen=True)
class Target:
    version: str
    manifest_sha256: str

    @classmethod
    def of(cls, tag: Tag) -> Target:
        return cls(tag.version, tag.manifest_sha256)


@dataclass(frozen=True)
class TagMove:
    """One recorded move of a tag; `verified_by` is set only when a trusted key signed the record."""

    record_id: str
    name: str
    tag: str
    action: str
    previous: Target | None
    new: Target
    who: str
    when: str
    signature: str = "unsigned"
    verified_by: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.record_id, "name": self.name, "tag": self.tag, "action": self.action,
                "previous": self.previous.__dict__ if self.previous else None, "new": self.new.__dict__,
                "who": self.who, "when": self.when, "signature": self.signature}


@dataclass
class History:
    """The records of one tag, newest first, and the ones that could not be read (key, error)."""

    moves: list[TagMove] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)


def read_history(settings: Settings, storage: Storage, name: str, tag: str) -> History:
    """Every move record of `name:tag`, newest first (one listing, then one read per record)."""
    keys = storage.list(tag_history_prefix(name, tag))
    listed = set(keys)
    history = History()
    for record_id in record_ids_from_keys(name, tag, keys):
        key = tag_history_key(name, tag, record_id)
        try:
            data = read_small(storage, key, limit=MAX_RECORD_BYTES)
            if data is None:
                continue
            signature_key = tag_history_key(name, tag, record_id, ".sig")
            signature = read_small(storage, signature_key) if signature_key in listed else None
            history.moves.append(parse_move(settings, data, signature, record_id, name, tag,
                                            f"{key} on {storage.url}"))
        except RegistryError as exc:
            history.broken.append((key, str(exc)))
    return history


def parse_move(settings: Settings, data: bytes, signature: bytes | None, record_id: str, name: str, tag: str,
               where: str) -> TagMove:
    """A move record from its bytes; InvalidArtifact naming `where` when malformed or about another tag."""
    from modelreg.errors import InvalidArtifact

    fix = "it is ignored; 'modelreg tag-history' lists the readable records."
    raw = parse_record(data, "tag-move-v1.schema.json", f"The tag move record {where}", "modelreg tag move", fix)
    if (raw["name"], raw["tag"]) != (name, tag):
        raise InvalidArtifact(f"The tag move record {where} describes {raw['name']}:{raw['tag']}, not "
                              f"{name}:{tag}: it was copied there by hand; {fix}")
    signed = check_record_signature(settings, data, f"{record_id}.json", signature, f"the record {where}")
    previous = raw["previous"]
    return TagMove(record_id=record_id, name=name, tag=tag, action=raw["action"],
                   previous=Target(**previous) if previous else None, new=Target(**raw["new"]),
                   who=raw["who"], when=raw["when"], signature=signed.description,
                   verified_by=signed.verified_by)


def new_move(previous: Tag | None, new: Tag, action: str) -> tuple[TagMove, bytes]:
    """A move record for `previous` -> `new` made now by this user@host, and its exact bytes."""
    when = utc_now_precise()
    record_id = f"{when.replace('-', '').replace(':', '')}-{secrets.token_hex(4)}"
    move = TagMove(record_id=record_id, name=new.name, tag=new.tag, action=action,
                   previous=Target.of(previous) if previous else None, new=Target.of(new),
                   who=who_am_i(), when=when)
    data = canonical_json({"format_version": 1, "name": move.name, "tag": move.tag, "action": action,
                           "previous": move.previous.__dict__ if move.previous else None,
                           "new": move.new.__dict__, "who": move.who, "when": move.when})
    return move, data


def write_move(storage: Storage, move: TagMove, data: bytes, signature: bytes | None) -> None:
    """Store a move record create-only, its signature first (the record is the commit point)."""
    if signature is not None:
        storage.write(tag_history_key(move.name, move.tag, move.record_id, ".sig"), signature, create_only=True)
    storage.write(tag_history_key(move.name, move.tag, move.record_id), data, create_only=True)
