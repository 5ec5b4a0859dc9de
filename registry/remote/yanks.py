"""Withdrawn versions on a remote: `models/<name>/<version>/yanked.json` (+ `yanked.sig`).

A yank record says who withdrew a version, when and why, and names the manifest digest
it withdraws. It is written create-only (a second yank of the same version is refused,
naming the first) and removed by `modelreg unyank`. Reading is fail-safe: a yank record
that is malformed, describes another version or carries a bad signature still withdraws
the version (a yank can only make things stricter); the reason then says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelreg.config import Settings
from modelreg.errors import InvalidArtifact
from modelreg.layout import YANK_NAME, YANK_SIGNATURE_NAME, version_key
from modelreg.refs import Ref
from modelreg.remote.index import read_small
from modelreg.remote.records import MAX_RECORD_BYTES, parse_record
from modelreg.storage.base import Storage
from modelreg.trust.record_signing import check_record_signature


@dataclass(frozen=True)
class Yank:
    """A withdrawn version as read from a remote (or remembered in the cache)."""

    name: str
    version: str
    reason: str
    yanked_by: str
    yanked_at: str
    manifest_sha256: str | None
    signature: str = "unsigned"
    """Who signed the record, checked against the trusted keys when there are any (display only)."""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def describe(self) -> str:
        return (f"{self.ref} was yanked by {self.yanked_by} at {self.yanked_at}: {self.reason} "
                f"(yank record {self.signature})")

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "reason": self.reason,
                "yanked_by": self.yanked_by, "yanked_at": self.yanked_at,
                "manifest_sha256": self.manifest_sha256, "signature": self.signature}

    @classmethod
    def from_dict(cls, raw: dict) -> Yank:
        return cls(name=str(raw["name"]), version=str(raw["version"]), reason=str(raw["reason"]),
                   yanked_by=str(raw["yanked_by"]), yanked_at=str(raw["yanked_at"]),
                   manifest_sha256=raw.get("manifest_sha256"), signature=str(raw.get("signature", "unsigned")))


def yank_keys(ref: Ref) -> tuple[str, str]:
    """The keys of a version's yank record and of its signature."""
    return version_key(ref.name, ref.version, YANK_NAME), version_key(ref.name, ref.version, YANK_SIGNATURE_NAME)


def read_yank(settings: Settings, storage: Storage, ref: Ref, data: bytes | None = None,
              fetched: bool = False) -> Yank | None:
    """The yank of version `ref` on `storage`, or None when it is not yanked.

    Pass `data` with `fetched=True` when yanked.json was already read (e.g. in
    parallel with the manifest); its signature is read only when the record exists.
    """
    record_key, signature_key = yank_keys(ref)
    if not fetched:
        data = read_small(storage, record_key, limit=MAX_RECORD_BYTES)
    if data is None:
        return None
    signature = read_small(storage, signature_key)
    return parse_yank(settings, ref, data, signature, f"{record_key} on {storage.url}")


def parse_yank(settings: Settings, ref: Ref, data: bytes, signature: bytes | None, where: str) -> Yank:
    """A yank from record bytes; a malformed record still yanks `ref`, its reason saying why."""
    signed = check_record_signature(settings, data, YANK_NAME, signature, f"the yank record {where}")
    try:
        raw = parse_record(data, "yank-v1.schema.json", f"The yank record {where}", "modelreg yank",
                           f"remove it with 'modelreg unyank {ref}' and yank again.")
    except InvalidArtifact as exc:
        return Yank(name=ref.name, version=ref.version, yanked_by="unknown", yanked_at="unknown",
                    reason=f"a yank record is present but unreadable, so the version counts as "
                           f"withdrawn ({exc})", manifest_sha256=None, signature=signed.description)
    reason = raw["reason"]
    if (raw["name"], raw["version"]) != (ref.name, ref.version):
        reason = (f"{reason} [the record describes {raw['name']}:{raw['version']}, not {ref}: it was "
                  f"copied there by hand; the version still counts as withdrawn]")
    return Yank(name=ref.name, version=ref.version, reason=reason, yanked_by=raw["yanked_by"],
                yanked_at=raw["yanked_at"], manifest_sha256=raw["manifest_sha256"],
                signature=signed.description)


def yanks_from_listing(settings: Settings, storage: Storage, name: str, keys: list[str]) -> dict[str, Yank]:
    """{version: Yank} for every version of `name` whose yanked.json appears among listed `keys`."""
    found = {}
    for key in keys:
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "models" and parts[1] == name and parts[3] == YANK_NAME:
            yank = read_yank(settings, storage, Ref(name, parts[2]))
            if yank is not None:
                found[parts[2]] = yank
    return found
