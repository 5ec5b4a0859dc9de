"""Pinned manifests in a workspace's `manifests/` directory.

`ingest`, `train` and `push` write the manifest of each version they produce to
`manifests/<name>/<version>.json` in the workspace (the current directory by
default), meant to be committed with the code that uses the model. A pinned
manifest wins over anything remote: a pull whose remote manifest has another
digest is refused. This is the freeze half of rollback protection.
"""

from __future__ import annotations

from pathlib import Path

from modelreg.errors import AlreadyExists, ManifestMismatch
from modelreg.hashing import hash_bytes
from modelreg.local.atomic import atomic_write
from modelreg.manifest import Manifest
from modelreg.refs import Ref


def pin_path(workspace: Path, ref: Ref) -> Path:
    return workspace / "manifests" / ref.name / f"{ref.version}.json"


def read_pinned(workspace: Path, ref: Ref) -> Manifest | None:
    path = pin_path(workspace, ref)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return Manifest.from_bytes(data, source=str(path))


def pin(workspace: Path, manifest: Manifest) -> Path:
    """Write the pinned manifest; refuses to replace a pin of the same version with other content."""
    ref = Ref(manifest.name, manifest.version)
    existing = read_pinned(workspace, ref)
    if existing is not None and existing.digest != manifest.digest:
        raise AlreadyExists(
            f"{pin_path(workspace, ref)} already pins {ref} to manifest {existing.digest[:12]}, "
            f"not {manifest.digest[:12]}. Versions are immutable: choose a new version name, or "
            f"delete the pin if that version was never shared.")
    path = pin_path(workspace, ref)
    atomic_write(path, manifest.to_bytes())
    return path


def check_against_pin(workspace: Path, manifest_bytes: bytes, ref: Ref, source: str) -> None:
    """Raise IntegrityError when the workspace pins `ref` to a different manifest digest."""
    pinned = read_pinned(workspace, ref)
    if pinned is None:
        return
    actual = hash_bytes(manifest_bytes)
    if actual != pinned.digest:
        raise ManifestMismatch(
            subject=f"{ref} from {source}", expected=pinned.digest, actual=actual,
            promised_by=f"the pin {pin_path(workspace, ref)}",
            outcome="The version was replaced or is another model; nothing was downloaded or loaded.",
            fix="If the change is intended, delete or update the pinned file and pull again.",
            path=str(pin_path(workspace, ref)), source="remote")
