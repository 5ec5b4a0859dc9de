"""What differs between two bundles: files, labels, model, hyper-parameters, metrics, provenance.

`compare(a, b)` is a pure function over two `DiffSide`s; `modelreg.diff_sources`
makes a side from a ref (cache or remote) or a directory. A side from a plain
directory has files but no manifest, so only its files can be compared; the other
sections are then reported as not comparable instead of as differences.

Two bundles are *identical* when their files (path, sha256, size), labels, model
description, hyper-parameters, metrics and provenance are equal; name, version and
creation time are shown but do not count (a version re-published under another name
is identical). Against a plain directory, identical means the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelreg.manifest import Manifest

FileMap = dict[str, tuple[str, int]]
"""path -> (sha256, size)."""


@dataclass(frozen=True)
class DiffSide:
    label: str
    """What the user named, resolved: `emotion:v2 (s3://bucket/team)` or a directory path."""
    files: FileMap
    manifest: Manifest | None = None
    """None for a directory without manifest.json."""
    digest: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str
    """`added` (only in B), `removed` (only in A) or `changed`."""
    a: tuple[str, int] | None
    b: tuple[str, int] | None

    def to_dict(self) -> dict:
        def side(value):
            return None if value is None else {"sha256": value[0], "size": value[1]}
        return {"path": self.path, "status": self.status, "a": side(self.a), "b": side(self.b)}


@dataclass(frozen=True)
class ValueRow:
    """One key of a section side by side; `in_a`/`in_b` say whether the key is present at all."""

    key: str
    a: object
    b: object
    in_a: bool
    in_b: bool

    @property
    def changed(self) -> bool:
        return (self.in_a, self.a) != (self.in_b, self.b) or type(self.a) is not type(self.b)

    @property
    def delta(self) -> float | None:
        """b - a when both are numbers (not booleans), for metrics."""
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.a, self.b))
        return self.b - self.a if numbers and self.in_a and self.in_b else None  # type: ignore[operator]

    def to_dict(self) -> dict:
        return {"key": self.key, "a": self.a, "b": self.b, "in_a": self.in_a, "in_b": self.in_b,
                "changed": self.changed, "delta": self.delta}


@dataclass(frozen=True)
class LabelChange:
    a: list[str]
    b: list[str]

    @property
    def added(self) -> list[str]:
        return [label for label in self.b if label not in self.a]

    @property
    def removed(self) -> list[str]:
        return [label for label in self.a if label not in self.b]

    @property
    def reordered(self) -> bool:
        """The labels both sides have are in a different order (class indices moved)."""
        return [x for x in self.a if x in self.b] != [x for x in self.b if x in self.a]

    @property
    def changed(self) -> bool:
        return self.a != self.b

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "added": self.added, "removed": self.removed,
                "reordered": self.reordered, "changed": self.changed}


@dataclass
class BundleDiff:
    a: DiffSide
    b: DiffSide
    files: list[FileChange] = field(default_factory=list)
    unchanged_files: int = 0
    labels: LabelChange | None = None
    sections: dict[str, list[ValueRow]] = field(default_factory=dict)
    """`model`, `hyperparameters`, `metrics`, `provenance`: every key of either side."""
    not_comparable: list[str] = field(default_factory=list)
    """Sections one side (a plain directory) cannot tell; `identical` then means the same files."""

    @property
    def identical(self) -> bool:
        return (not self.files and not (self.labels and self.labels.changed)
                and not any(row.changed for rows in self.sections.values() for row in rows))

    def to_dict(self) -> dict:
        def side(s: DiffSide) -> dict:
            return {"label": s.label, "ref": s.manifest.ref if s.manifest else None, "digest": s.digest,
                    "created": s.manifest.created if s.manifest else None, "notes": list(s.notes)}
        return {"identical": self.identical, "a": side(self.a), "b": side(self.b),
                "files": [change.to_dict() for change in self.files], "unchanged_files": self.unchanged_files,
                "labels": self.labels.to_dict() if self.labels else None,
                "sections": {name: [row.to_dict() for row in rows] for name, rows in self.sections.items()},
                "not_comparable": self.not_comparable}


SECTIONS = ("model", "hyperparameters", "metrics", "provenance")


def compare(a: DiffSide, b: DiffSide) -> BundleDiff:
    """Everything that differs from A to B (see the module docstring for what counts)."""
    result = BundleDiff(a=a, b=b)
    for path in sorted(a.files.keys() | b.files.keys()):
        old, new = a.files.get(path), b.files.get(path)
        if old == new:
            result.unchanged_files += 1
            continue
        status = "added" if old is None else "removed" if new is None else "changed"
        result.files.append(FileChange(path, status, old, new))
    if a.manifest is None or b.manifest is None:
        result.not_comparable = ["labels", *SECTIONS]
        return result
    result.labels = LabelChange(list(a.manifest.model.get("labels", [])), list(b.manifest.model.get("labels", [])))
    for name in SECTIONS:
        result.sections[name] = side_by_side(_section(a.manifest, name), _section(b.manifest, name))
    return result


def _section(manifest: Manifest, name: str) -> dict:
    if name == "model":
        return {k: v for k, v in manifest.model.items() if k not in ("labels", "hyperparameters")}
    if name == "hyperparameters":
        return dict(manifest.model.get("hyperparameters", {}))
    return dict(getattr(manifest, name))


def side_by_side(a: dict, b: dict) -> list[ValueRow]:
    """One row per key of either mapping, sorted by key."""
    return [ValueRow(key, a.get(key), b.get(key), key in a, key in b) for key in sorted(a.keys() | b.keys())]


def manifest_files(manifest: Manifest) -> FileMap:
    return {entry.path: (entry.sha256, entry.size) for entry in manifest.files}
