"""Manifests and tags of a remote read before, reused while the remote's listing shows them unchanged.

    <cache>/metadata/sha256/<2 hex>/<64 hex>        exact bytes of a manifest or tag file, by sha256
    <cache>/listings/<sha256 of the remote URL>.json {"format": 1, "remote": URL,
                                                      "objects": {KEY: [FINGERPRINT, SHA256]}}

A manifest is immutable but its key is not: a version can be deleted and pushed
again with other content, and a tag file moves. So an entry is found by the key
*and* the fingerprint the listing gives for it now (`object_info`: size, ETag or
mtime...); a different fingerprint, or none, means the object is read again.

Nothing here is trusted: an index that does not match
`schemas/listing-index-v1.schema.json` is ignored (everything is read again),
the bytes are re-hashed to the digest the index names, and the caller parses
and validates them as if they had just come from the remote. Writes are atomic
(temp + rename); two commands saving an index at once leave one of them whole.
The index keeps only the keys of the latest listing, so deleted versions drop
out of it; the bytes by digest stay (they are small) until the cache is cleared.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from modelreg.hashing import hash_bytes, is_sha256_hex
from modelreg.local.atomic import atomic_write
from modelreg.local.cache import read_regular

INDEX_FORMAT = 1


class ListingCache:
    """The cached metadata objects of one remote (see the module docstring)."""

    def __init__(self, cache_root: Path, remote_url: str) -> None:
        self.remote_url = remote_url
        self._objects = str(cache_root / "metadata" / "sha256")
        self.index_path = cache_root / "listings" / f"{hash_bytes(remote_url.encode())}.json"
        self._previous = self._load_index()
        self._current: dict[str, tuple[str, str]] = {}

    def _load_index(self) -> dict[str, tuple[str, str]]:
        try:
            raw = json.loads(read_regular(self.index_path) or b"null")
        except (OSError, ValueError, RecursionError):
            return {}
        if not (_conforms(raw) or _index_validator().is_valid(raw)) or raw["remote"] != self.remote_url:
            return {}
        return {key: (entry[0], entry[1]) for key, entry in raw["objects"].items()}

    def _path(self, sha256: str) -> str:
        return f"{self._objects}/{sha256[:2]}/{sha256}"  # a plain string: 10,000 of them per list

    def previous(self, prefix: str) -> dict[str, str]:
        """{key: fingerprint} of the keys under `prefix` the last listing read or reused."""
        return {key: entry[0] for key, entry in self._previous.items() if key.startswith(prefix)}

    def get(self, key: str, fingerprint: str | None, *, keep: bool = True) -> bytes | None:
        """The bytes read from `key` when it had this fingerprint, re-hashed; None when not cached.

        With `keep=False` (a read ahead of the listing) the key is not carried into the next
        index until `keep(key)` confirms the listing still shows it with that fingerprint.
        """
        entry = self._previous.get(key)
        if fingerprint is None or entry is None or entry[0] != fingerprint:
            return None
        try:
            data = read_regular(self._path(entry[1]))
        except OSError:
            return None
        if data is None or hash_bytes(data) != entry[1]:
            return None
        if keep:
            self._current[key] = entry
        return data

    def keep(self, key: str) -> None:
        """Carry `key`, read with `get(keep=False)`, into the next index as it was."""
        self._current[key] = self._previous[key]

    def put(self, key: str, fingerprint: str | None, data: bytes) -> None:
        """Remember the bytes read from `key`, listed with `fingerprint` just before they were read.

        Were the object replaced in between, its fingerprint differs next time and it is
        read again. Best effort: a cache that cannot be written only costs a re-read.
        """
        if fingerprint is None:
            return
        digest = hash_bytes(data)
        path = self._path(digest)
        try:
            if read_regular(path) != data:
                atomic_write(Path(path), data)
        except OSError:
            return
        self._current[key] = (fingerprint, digest)

    def save(self) -> None:
        """Write the index of what this listing read or reused (only those keys); best effort."""
        document = {"format": INDEX_FORMAT, "remote": self.remote_url,
                    "objects": {key: list(entry) for key, entry in sorted(self._current.items())}}
        try:
            atomic_write(self.index_path, json.dumps(document, separators=(",", ":")).encode())
        except OSError:
            pass


def _conforms(raw) -> bool:
    """True only when `raw` certainly matches listing-index-v1.schema.json, checked without jsonschema
    (importing it and validating 10,000 entries took 0.4 s of a 2 s list); anything else is left
    to jsonschema."""
    if type(raw) is not dict or raw.keys() != {"format", "remote", "objects"} or raw["format"] != 1 \
            or type(raw["format"]) is not int or type(raw["remote"]) is not str or type(raw["objects"]) is not dict:
        return False
    return all(type(entry) is list and len(entry) == 2 and type(entry[0]) is str and 0 < len(entry[0]) <= 1024
               and type(entry[1]) is str and is_sha256_hex(entry[1]) for entry in raw["objects"].values())


@lru_cache(maxsize=1)
def _index_validator():
    import jsonschema

    text = resources.files("modelreg.schemas").joinpath("listing-index-v1.schema.json").read_text("utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))
