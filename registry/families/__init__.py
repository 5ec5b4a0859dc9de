"""Model families: what a bundle's files mean, how they are checked at ingest and loaded.

A family is named in every manifest (`model.family`). modelreg's core never
interprets files itself: ingest asks the family to validate the files and describe
them (the manifest's `model` section), and `modelreg.load` hands the family a
`VerifiedBundle` whose every read is re-hashed against the manifest.

Built-in families (one table, `BUILTIN`):
- `wav2vec-bilstm-attention` (alias `v9`): the speech-emotion contract around any
  allowlisted Keras graph (see `modelreg.families.v9.family`);
- `files`: any regular files, loaded as a verified directory.

Third-party families come from installed packages through the `modelreg.families`
entry-point group: `[project.entry-points."modelreg.families"] my-family =
"my_pkg.family:MyFamily"`. A team whose model has a custom layer ships that
layer's code in a package it installs on purpose, never in the model file. An
entry point is only imported when a manifest or `--family` names it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from modelreg.errors import InvalidArtifact, UsageError
from modelreg.manifest import FileEntry, Manifest

ENTRY_POINT_GROUP = "modelreg.families"

BUILTIN = {
    "wav2vec-bilstm-attention": "modelreg.families.v9.family:V9Family",
    "files": "modelreg.families.files:FilesFamily",
}
ALIASES = {"v9": "wav2vec-bilstm-attention"}
DEFAULT_FAMILY = "wav2vec-bilstm-attention"


@dataclass(frozen=True)
class IngestRequest:
    """What the user handed to `modelreg ingest`: a version, a directory and/or files by role."""

    version: str
    source_dir: Path | None
    files_by_role: dict[str, Path]
    includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestPlan:
    """A family's verdict on an ingest: the files to store ({bundle path: (role, local path)}) and
    the manifest's `model` section."""

    files: dict[str, tuple[str, Path]]
    model: dict
    metrics: dict | None = None


class VerifiedBundle(Protocol):
    """Read access to a bundle whose manifest passed the gate; every read is verified against it."""

    @property
    def manifest(self) -> Manifest:
        """The gated manifest."""

    def read_bytes(self, entry: FileEntry) -> bytes:
        """The exact bytes of a (small) file, after checking them against the manifest."""

    def private_copy(self, entry: FileEntry, directory: Path, name: str) -> Path:
        """A verified copy of `entry` at `directory/name` (e.g. a correctly suffixed `.h5` for Keras)."""

    def materialize(self, directory: Path) -> Path:
        """Every file of the bundle, verified, under its bundle path in `directory`."""


@runtime_checkable
class Family(Protocol):
    """The roles a family needs, how it validates and describes files at ingest, and how it loads."""

    name: str
    roles: Sequence[str]

    def plan_ingest(self, request: IngestRequest) -> IngestPlan:
        """Validate the user's files (nothing stored yet); raise InvalidArtifact/UsageError naming the file."""

    def load(self, bundle: VerifiedBundle, *, private_dir: Path, snapshot_dir: Path) -> Any:
        """The loaded object: `private_dir` is deleted after this returns; `snapshot_dir` is kept."""


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def family_for(name: str) -> Family:
    """The family named in a manifest or by `--family`; InvalidArtifact when none is installed."""
    name = canonical_name(name)
    target = BUILTIN.get(name)
    if target is None:
        target = _entry_point_target(name)
    if target is None:
        known = sorted({*BUILTIN, *ALIASES, *_entry_point_names()})
        raise InvalidArtifact(
            f"No model family {name!r} is installed (known: {', '.join(known)}). If the bundle needs "
            f"a third-party family, install the package that provides it (entry-point group "
            f"{ENTRY_POINT_GROUP!r}); modelreg never loads code from a model file.")
    module_name, _, attribute = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidArtifact(f"The model family {name!r} points at {target}, which cannot be imported "
                              f"({exc}). Reinstall the package that provides it.") from exc
    family = factory() if isinstance(factory, type) else factory
    if not isinstance(family, Family):
        raise InvalidArtifact(f"{target} (family {name!r}) is not a modelreg Family: it needs name, roles, "
                              f"plan_ingest() and load().")
    return family


def check_family_name(name: str) -> str:
    """A `--family` value: a known built-in, an alias, or an installed entry point."""
    canonical = canonical_name(name)
    if canonical in BUILTIN or canonical in _entry_point_names():
        return canonical
    known = sorted({*BUILTIN, *ALIASES, *_entry_point_names()})
    raise UsageError(f"Unknown --family {name!r}; choose one of {', '.join(known)}.")


def _entry_points():
    from importlib.metadata import entry_points

    return entry_points(group=ENTRY_POINT_GROUP)


def _entry_point_names() -> set[str]:
    return {entry.name for entry in _entry_points()}


def _entry_point_target(name: str) -> str | None:
    for entry in _entry_points():
        if entry.name == name:
            return str(entry.value)
    return None
