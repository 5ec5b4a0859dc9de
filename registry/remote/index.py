"""Reading and writing the small metadata objects of a registry: manifests and tags.

Blobs are moved by `modelreg.transfer`; this module knows how a version or tag
name maps to a manifest, and checks that a tag's pointer and the manifest it
names agree, so callers get one verified `(Manifest, bytes)` pair.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from modelreg.errors import (
    InvalidArtifact,
    ManifestMismatch,
    MisplacedManifest,
    NotFound,
    RegistryError,
)
from modelreg.hashing import HashingSink, hash_bytes, is_sha256_hex
from modelreg.layout import tag_key, version_key, version_prefix, versions_from_keys
from modelreg.manifest import MAX_MANIFEST_BYTES, Manifest, canonical_json
from modelreg.refs import Ref
from modelreg.remote.records import parse_record
from modelreg.storage.base import Storage

MAX_TAG_BYTES = 64 * 1024


@dataclass(frozen=True)
class Tag:
    name: str
    tag: str
    version: str
    manifest_sha256: str


def read_small(storage: Storage, key: str, limit: int = MAX_MANIFEST_BYTES) -> bytes | None:
    """Fetch a small object whole, or None when absent; refuses objects over `limit` bytes."""
    buffer = io.BytesIO()
    try:
        storage.read(key, HashingSink(buffer, limit=limit))
    except NotFound:
        return None
    except OverflowError as exc:
        raise InvalidArtifact(f"{key} on {storage.url} is larger than {limit} bytes; it is not a "
                              f"modelreg metadata file.") from exc
    return buffer.getvalue()


def fetch_manifest(storage: Storage, ref: Ref) -> tuple[Manifest, bytes]:
    """Resolve a version or tag on the remote to its validated manifest and exact bytes."""
    data = read_small(storage, version_key(ref.name, ref.version))
    if data is not None:
        return parse_version_manifest(storage, ref, data), data
    tag = read_tag(storage, ref.name, ref.version)
    if tag is None:
        raise NotFound(f"{ref} is neither a version nor a tag on {storage.url}. Run "
                       f"'modelreg list' to see what is there, or push it first.")
    key = version_key(ref.name, tag.version)
    data = read_small(storage, key)
    if data is None:
        raise NotFound(f"Tag {ref} on {storage.url} points to version {tag.version}, whose manifest "
                       f"{key} is missing. Restore it from a good copy with 'modelreg push "
                       f"{ref.name}:{tag.version} --repair', or move the tag.")
    actual = hash_bytes(data)
    if actual != tag.manifest_sha256:
        raise ManifestMismatch(
            subject=f"{ref.name}:{tag.version} on {storage.url}", expected=tag.manifest_sha256,
            actual=actual, promised_by=f"tag {ref}", outcome="The manifest or the tag was tampered "
            "with; nothing was downloaded.", fix="Re-tag from a trusted copy ('modelreg tag').",
            path=key, source="remote")
    manifest = Manifest.from_bytes(data, source=f"{storage.url} ({key})")
    _check_identity(manifest, Ref(ref.name, tag.version), storage)
    return manifest, data


def parse_version_manifest(storage: Storage, ref: Ref, data: bytes) -> Manifest:
    """The manifest stored as version `ref` (bytes read from its key): validated, and naming `ref`."""
    manifest = Manifest.from_bytes(data, source=f"{storage.url} ({version_key(ref.name, ref.version)})")
    _check_identity(manifest, ref, storage)
    return manifest


def _check_identity(manifest: Manifest, ref: Ref, storage: Storage) -> None:
    if (manifest.name, manifest.version) != (ref.name, ref.version):
        raise MisplacedManifest(stored_as=str(ref), describes=manifest.ref, where=storage.url,
                                key=version_key(ref.name, ref.version), source="remote")


def read_tag(storage: Storage, name: str, tag: str) -> Tag | None:
    """The tag `name:tag` on the remote, or None; InvalidArtifact naming the file when it is malformed.

    A tag file must match `registry/schemas/tag-v1.schema.json` and name itself.
    """
    data = read_small(storage, tag_key(name, tag), limit=MAX_TAG_BYTES)
    return None if data is None else parse_tag(storage, name, tag, data)


def parse_tag(storage: Storage, name: str, tag: str, data: bytes) -> Tag:
    """The tag `name:tag` from the bytes of its file; InvalidArtifact naming the file when malformed."""
    where = f"Tag file {tag_key(name, tag)} on {storage.url}"
    raw = parse_record(data, "tag-v1.schema.json", where, "modelreg tag", "re-create it with 'modelreg tag'.")
    parsed = Tag(name=raw["name"], tag=raw["tag"], version=raw["version"],
                 manifest_sha256=raw["manifest_sha256"])
    if not is_sha256_hex(parsed.manifest_sha256) or parsed.name != name or parsed.tag != tag:
        raise InvalidArtifact(f"{where} does not describe {name}:{tag}; re-create it with 'modelreg tag'.")
    return parsed


def write_tag(storage: Storage, tag: Tag) -> None:
    """Point a tag at a version (atomic overwrite: tags move, versions do not)."""
    storage.write(tag_key(tag.name, tag.tag), canonical_json(tag.__dict__))


def list_tags(storage: Storage, name: str, broken: list | None = None) -> list[Tag]:
    """Every readable tag of `name`; with `broken`, unreadable ones are appended there as (key, error)."""
    tags = []
    for key in storage.list(f"tags/{name}/"):
        tag_name = key.rsplit("/", 1)[-1].removesuffix(".json")
        try:
            tag = read_tag(storage, name, tag_name)
        except RegistryError as exc:
            if broken is None:
                raise
            broken.append((key, exc))
            continue
        if tag is not None:
            tags.append(tag)
    return tags


def list_versions(storage: Storage, name: str) -> list[str]:
    return versions_from_keys(name, storage.list(version_prefix(name)))


def list_model_names(storage: Storage) -> list[str]:
    names = set()
    for key in storage.list("models/"):
        parts = key.split("/")
        if len(parts) == 4:
            names.add(parts[1])
    return sorted(names)
