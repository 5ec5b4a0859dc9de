"""The bundle manifest (format 1): what a model version is, byte for byte.

A manifest is written canonically (`canonical_json`: sorted keys, UTF-8, fixed
separators), so the sha256 of its bytes — the *manifest digest* — identifies a
version: two manifests with the same digest describe the same files. Every
manifest read from outside goes through `Manifest.from_bytes`, which validates it
against `registry/schemas/manifest-v1.schema.json` and checks each file path with
`check_bundle_path`, so nothing later needs to re-check.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources

from modelreg.errors import InvalidArtifact
from modelreg.hashing import hash_bytes
from modelreg.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME

FORMAT_VERSION = 1
ROLES = ("weights", "labels", "mean", "std", "other")
RESERVED_NAMES = {MANIFEST_NAME, SUMS_NAME, SIGNATURE_NAME}
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def canonical_json(value) -> bytes:
    """The one serialization of JSON data modelreg hashes: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_bundle_path(path: str) -> str:
    """Accept only a plain relative name such as `best_model_v9.h5` or `extra/notes.txt`.

    Refuses absolute paths, `..` and `.` components, backslashes, NUL and other
    control characters, empty components and the names of the files modelreg
    writes beside a bundle (manifest.json, SHA256SUMS, model.sig), so that
    materializing a bundle can never write outside its directory.
    """
    problem = None
    if not isinstance(path, str) or not path:
        problem = "it is empty"
    elif path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        problem = "it is absolute"
    elif "\\" in path:
        problem = "it contains a backslash"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        problem = "it contains a NUL or control character"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        problem = "it has an empty, '.' or '..' component"
    elif path in RESERVED_NAMES:
        problem = "that name is reserved for modelreg's own files"
    if problem:
        raise InvalidArtifact(f"Refusing bundle file path {path!r}: {problem}. Bundle paths must be "
                              f"plain relative names such as 'best_model_v9.h5'.")
    return path


def check_no_path_prefixes(paths: set[str], source: str) -> None:
    """Refuse a bundle where one path is a directory of another (`zz` and `zz/x` cannot both be files)."""
    for path in sorted(paths):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory in paths:
                raise InvalidArtifact(f"The manifest from {source} lists both {directory!r} and {path!r}; "
                                      f"a file cannot also be a directory, so the bundle cannot be "
                                      f"written to disk. Re-create it with distinct paths.")


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle: its relative path, what it is for, and its exact size and digest."""

    path: str
    role: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """An immutable description of one model version; `digest` is its identity."""

    name: str
    version: str
    files: tuple[FileEntry, ...]
    model: dict
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    created: str = field(default_factory=utc_now)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        data = asdict(self)
        data["files"] = [asdict(entry) for entry in self.files]
        return data

    def to_bytes(self) -> bytes:
        """The canonical bytes; validated so that a manifest modelreg writes is one it can read."""
        data = canonical_json(self.to_dict())
        Manifest.from_bytes(data, source="a manifest being written")
        return data

    @property
    def digest(self) -> str:
        return hash_bytes(self.to_bytes())

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def file_for_role(self, role: str) -> FileEntry:
        """The single file with `role`; InvalidArtifact when there is none or several."""
        matches = [entry for entry in self.files if entry.role == role]
        if len(matches) != 1:
            raise InvalidArtifact(f"{self.ref} has {len(matches)} files with role {role!r}; a loadable "
                                  f"bundle has exactly one each of weights, labels, mean and std.")
        return matches[0]

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.files)

    def sha256sums(self) -> str:
        """The bundle in `sha256sum -c` format (two spaces: text mode), sorted by path."""
        return "".join(f"{entry.sha256}  {entry.path}\n"
                       for entry in sorted(self.files, key=lambda e: e.path))

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> Manifest:
        """Parse and validate manifest bytes; InvalidArtifact names `source` on any problem."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise InvalidArtifact(f"The manifest from {source} is {len(data)} bytes, over the "
                                  f"{MAX_MANIFEST_BYTES} byte limit; it is not a modelreg manifest.")
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArtifact(f"The manifest from {source} is not valid UTF-8 JSON ({exc}).") from exc
        except RecursionError:
            raise InvalidArtifact(f"The manifest from {source} is nested too deeply to be a modelreg "
                                  f"manifest.") from None
        manifest = cls.from_dict(raw, source=source)
        if canonical_json(raw) != data:
            raise InvalidArtifact(
                f"The manifest from {source} is valid JSON but not in canonical form (sorted keys, no "
                f"spaces, UTF-8), so its digest would not identify the version. It was edited by hand "
                f"or written by another tool: re-create it with modelreg instead of editing it.")
        return manifest

    @classmethod
    def from_dict(cls, raw: dict, *, source: str) -> Manifest:
        validate_against_schema(raw, source)
        seen = set()
        for entry in raw["files"]:
            check_bundle_path(entry["path"])
            if entry["path"] in seen:
                raise InvalidArtifact(f"The manifest from {source} lists {entry['path']!r} twice; "
                                      f"each bundle path must be unique.")
            seen.add(entry["path"])
        check_no_path_prefixes(seen, source)
        files = tuple(FileEntry(**entry) for entry in raw["files"])
        fields = {k: v for k, v in raw.items() if k != "files"}
        return cls(files=files, **fields)


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    text = resources.files("modelreg.schemas").joinpath("manifest-v1.schema.json").read_text("utf-8")
    schema = json.loads(text)
    return jsonschema.Draft202012Validator(schema)


def validate_against_schema(raw, source: str) -> None:
    """Raise InvalidArtifact listing the first schema violations of a manifest dict."""
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(p) for p in error.absolute_path) or '(top level)'}: {error.message}"
            for error in errors[:3])
        raise InvalidArtifact(f"The manifest from {source} does not match the modelreg manifest "
                              f"schema (format {FORMAT_VERSION}): {details}.")
