"""Where things live in a registry root, the same for every backend.

    blobs/sha256/<2 hex>/<64 hex>          file contents, named by their sha256
    models/<name>/<version>/manifest.json  the immutable manifest (the commit point)
    models/<name>/<version>/SHA256SUMS     `sha256sum -c` view of the manifest
    models/<name>/<version>/model.sig      optional signature (OpenSSF model signing)
    models/<name>/<version>/yanked.json    the version was withdrawn: who, when, why (create-only)
    models/<name>/<version>/yanked.sig     optional signature over yanked.json's exact bytes
    tags/<name>/<tag>.json                 {"name", "version", "manifest_sha256"}
    tag-history/<name>/<tag>/<stamp>-<random>.json  one create-only record per tag move (+ .sig)

Pure functions only, so a user can browse a registry with `ls` and `cat`.
"""

from __future__ import annotations

import re

from modelreg.errors import UsageError
from modelreg.hashing import is_sha256_hex

MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
SIGNATURE_NAME = "model.sig"
YANK_NAME = "yanked.json"
YANK_SIGNATURE_NAME = "yanked.sig"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(value: str, what: str) -> str:
    """Validate a model name, version or tag: letters, digits, `.`, `_`, `-`, not starting with a dot."""
    if not _NAME.fullmatch(value) or value in {".", ".."}:
        raise UsageError(
            f"Invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (for example 'v9' or 'production')."
        )
    return value


def blob_key(sha256: str) -> str:
    """The key of the blob holding content with this digest."""
    if not is_sha256_hex(sha256):
        raise UsageError(f"Not a sha256 hex digest: {sha256!r}.")
    return f"blobs/sha256/{sha256[:2]}/{sha256}"


def version_prefix(name: str) -> str:
    return f"models/{check_name(name, 'model name')}/"


def version_key(name: str, version: str, filename: str = MANIFEST_NAME) -> str:
    """The key of a version's manifest (or of a file beside it: SHA256SUMS, model.sig)."""
    return f"models/{check_name(name, 'model name')}/{check_name(version, 'version')}/{filename}"


def tag_key(name: str, tag: str) -> str:
    return f"tags/{check_name(name, 'model name')}/{check_name(tag, 'tag')}.json"


def tag_history_prefix(name: str, tag: str) -> str:
    """Where the move records of one tag live: outside tags/, which holds only tag files."""
    return f"tag-history/{check_name(name, 'model name')}/{check_name(tag, 'tag')}/"


_RECORD_ID = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{8}")


def tag_history_key(name: str, tag: str, record_id: str, suffix: str = ".json") -> str:
    """The key of one move record (`suffix` ".sig" for its signature); ids sort by time."""
    if not _RECORD_ID.fullmatch(record_id):
        raise UsageError(f"Not a tag history record id: {record_id!r}.")
    return f"{tag_history_prefix(name, tag)}{record_id}{suffix}"


def record_ids_from_keys(name: str, tag: str, keys: list[str]) -> list[str]:
    """The ids of the move records among `keys` listed under `tag_history_prefix`, newest first."""
    prefix = tag_history_prefix(name, tag)
    found = [key[len(prefix):-len(".json")] for key in keys if key.startswith(prefix) and key.endswith(".json")]
    return sorted((record_id for record_id in found if _RECORD_ID.fullmatch(record_id)), reverse=True)


def versions_from_keys(name: str, keys: list[str]) -> list[str]:
    """The versions whose manifest appears among `keys` listed under `version_prefix(name)`."""
    prefix = version_prefix(name)
    found = []
    for key in keys:
        rest = key[len(prefix):] if key.startswith(prefix) else ""
        parts = rest.split("/")
        if len(parts) == 2 and parts[1] == MANIFEST_NAME:
            found.append(parts[0])
    return sorted(found)


def digest_of_blob_key(key: str) -> str | None:
    """The sha256 a key under `blobs/` stores (the inverse of `blob_key`), or None for any other key."""
    parts = key.split("/")
    if len(parts) == 4 and parts[:2] == ["blobs", "sha256"] and is_sha256_hex(parts[3]) \
            and parts[2] == parts[3][:2]:
        return parts[3]
    return None


def version_of_key(key: str) -> tuple[str, str, str] | None:
    """(name, version, file name) of a key inside a version directory, or None for any other key."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "models" and all(_NAME.fullmatch(part) for part in parts[1:3]):
        return parts[1], parts[2], parts[3]
    return None
