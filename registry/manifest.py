"""The bundle manifest (format 1): what a model version is, byte for byte.

A manifest is written canonically (`canonical_json`: sorted keys, UTF-8, fixed
separators), so the sha256 of its bytes — the *manifest digest* — identifies a
version: two manifests with the same digest describe the same files. Every
manifest read from outside goes through `Manifest.from_bytes`, which validates it
against `registry/schemas/manifest-v1.schema.json` and checks each file path with
`check_bundle_path`, so nothing later needs to re-check.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
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


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""What `json.dumps` builds from these arguments on every call, built once."""


def canonical_json(value) -> bytes:
    """The one serialization of JSON data modelreg hashes: sorted keys, no spaces, UTF-8, no NaN."""
    return _CANONICAL.encode(value).encode("utf-8")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_PLAIN_PATH = re.compile(r"(?!\.\.?(?:/|\Z))[A-Za-z0-9_.+-]+(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9_.+-]+)*")
"""Relative paths of letters, digits, `_.+-` and `/` without empty, `.` or `..` components: all
accepted by `check_bundle_path` (the rest get its full checks and messages)."""


def check_bundle_path(path: str) -> str:
    """Accept only a plain relative name such as `best_model_v9.h5` or `extra/notes.txt`.

    Refuses absolute paths, `..` and `.` components, backslashes, NUL and other
    control characters, empty components and the names of the files modelreg
    writes beside a bundle (manifest.json, SHA256SUMS, model.sig), so that
    materializing a bundle can never write outside its directory.
    """
    if type(path) is str and _PLAIN_PATH.fullmatch(path) and path not in RESERVED_NAMES:
        return path  # the common case, without the character-by-character checks below
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
        """What `dataclasses.asdict` gives (a copy: changing it leaves the manifest alone), built
        directly: asdict's generic recursion took 66 µs a manifest, a second of `list --json`
        for 10,000 versions."""
        return {"name": self.name, "version": self.version,
                "files": [{"path": entry.path, "role": entry.role, "size": entry.size, "sha256": entry.sha256}
                          for entry in self.files],
                "model": _copied(self.model), "metrics": _copied(self.metrics),
                "provenance": _copied(self.provenance), "created": self.created,
                "format_version": self.format_version}

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
        return sha256sums(self.files)

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


def _copied(value):
    """A deep copy of JSON-like data (dicts, lists, tuples of plain values), as `asdict` makes it."""
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_copied(item) for item in value)
    if isinstance(value, (dict, list, tuple)):
        return copy.deepcopy(value)
    return value


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    text = resources.files("modelreg.schemas").joinpath("manifest-v1.schema.json").read_text("utf-8")
    schema = json.loads(text)
    return jsonschema.Draft202012Validator(schema)


def validate_against_schema(raw, source: str) -> None:
    """Raise InvalidArtifact listing the first schema violations of a manifest dict.

    A manifest that `conforms_to_schema` is accepted without importing jsonschema
    (0.1 s of a pull's start-up); any other goes to jsonschema, which has the last
    word and names the violations.
    """
    if conforms_to_schema(raw):
        return
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(p) for p in error.absolute_path) or '(top level)'}: {error.message}"
            for error in errors[:3])
        raise InvalidArtifact(f"The manifest from {source} does not match the modelreg manifest "
                              f"schema (format {FORMAT_VERSION}): {details}.")


_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CREATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TOP_KEYS = frozenset(("format_version", "name", "version", "created", "files", "model", "metrics",
                       "provenance"))
_FILE_KEYS = frozenset(("path", "role", "size", "sha256"))
_OPTIONAL_TEXT = ("numpy_version", "tensorflow_version", "keras_version", "git_commit",
                  "dataset_fingerprint")


def _is_int(value) -> bool:
    return type(value) is int


def _is_text(value, pattern: re.Pattern | None = None) -> bool:
    return type(value) is str and (pattern is None or pattern.fullmatch(value) is not None)


def conforms_to_schema(raw) -> bool:
    """True only when `raw` certainly satisfies manifest-v1.schema.json (stricter than the schema:
    e.g. `1.0` is not taken as an integer here, so such a document is left to jsonschema)."""
    if type(raw) is not dict or raw.keys() != _TOP_KEYS or raw["format_version"] != 1 \
            or not _is_int(raw["format_version"]):
        return False
    model, provenance, files = raw["model"], raw["provenance"], raw["files"]
    if not (_is_text(raw["name"], _IDENTIFIER) and _is_text(raw["version"], _IDENTIFIER)
            and _is_text(raw["created"], _CREATED) and type(raw["metrics"]) is dict
            and type(files) is list and files and type(model) is dict and type(provenance) is dict):
        return False
    for entry in files:
        if not (type(entry) is dict and entry.keys() == _FILE_KEYS and _is_text(entry["path"])
                and 1 <= len(entry["path"]) <= 255 and entry["role"] in ROLES and type(entry["role"]) is str
                and _is_int(entry["size"]) and entry["size"] >= 0 and _is_text(entry["sha256"], _SHA256)):
            return False
    shape, labels = model.get("input_shape"), model.get("labels")
    if not (_is_text(model.get("family")) and type(model.get("hyperparameters")) is dict
            and type(shape) is list and all(item is None or _is_int(item) for item in shape)
            and type(labels) is list and all(_is_text(label) for label in labels)):
        return False
    if not _is_text(provenance.get("modelreg_version")):
        return False
    if any(key in provenance and not _is_text(provenance[key]) for key in ("python_version", "source")):
        return False
    return all(provenance.get(key) is None or _is_text(provenance[key]) for key in _OPTIONAL_TEXT)


def sha256sums(files: Iterable[FileEntry]) -> str:
    """`files` in `sha256sum -c` format (two spaces: text mode), sorted by path."""
    return "".join(f"{entry.sha256}  {entry.path}\n" for entry in sorted(files, key=lambda e: e.path))
