"""Write a verified bundle into a plain directory under its original file names.

This is what replaces the seed's `download_v9_fixed_model.sh`: the directory ends
up with the bundle files, `SHA256SUMS`, `model.sig` when signed, and `manifest.json` (written last), so it can
be re-checked later with `modelreg verify DIR` or plain `sha256sum -c SHA256SUMS`.
All files are first staged under temp names and verified; only then are they
renamed into place, so a failure leaves the directory as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelreg.errors import InvalidArtifact, LocalIOError, RegistryError
from modelreg.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME
from modelreg.local.atomic import atomic_write, temp_name
from modelreg.local.cache import Cache
from modelreg.manifest import FileEntry, Manifest


def contained_path(root: Path, relative: str) -> Path:
    """`root/relative`, refused unless it really lies inside `root` (resolving symlinks)."""
    base = root.resolve()
    target = (base / relative).resolve()
    if base not in target.parents:
        raise InvalidArtifact(f"Refusing to write {relative!r}: it resolves to {target}, outside {base}.")
    return target


def materialize(cache: Cache, manifest: Manifest, manifest_bytes: bytes, dest: Path,
                signature: bytes | None = None) -> Path:
    """Copy every file of `manifest` from the cache into `dest`, verified, all or nothing.

    `signature` (the bundle's model.sig) is written too, so OpenSSF's own
    `model_signing verify key DEST --signature DEST/model.sig` can check the directory.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for entry in manifest.files:
            target = contained_path(dest, entry.path)
            staged.append((stage_verified_copy(cache, entry, target), target))
        for temp, target in staged:
            os.replace(temp, target)
        staged.clear()
        atomic_write(dest / SUMS_NAME, manifest.sha256sums().encode())
        if signature is not None:
            atomic_write(dest / SIGNATURE_NAME, signature)
        else:
            (dest / SIGNATURE_NAME).unlink(missing_ok=True)
        atomic_write(dest / MANIFEST_NAME, manifest_bytes)
    except OSError as exc:
        if isinstance(exc, RegistryError):
            raise
        raise LocalIOError(f"Cannot write {manifest.ref} into {dest} ({exc.strerror or exc}). "
                           f"Temporary files were removed; free space or choose another --dest. "
                           f"The verified files stay in the cache, so the next pull copies them "
                           f"without downloading.") from exc
    finally:
        for temp, _target in staged:
            temp.unlink(missing_ok=True)
    return dest


def stage_verified_copy(cache: Cache, entry: FileEntry, target: Path) -> Path:
    """Copy the cached blob of `entry` to a temp name beside `target`, verified; returns the temp path.

    Raises what `Cache.read_verified` raises and leaves nothing behind when the bytes differ.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(target, ".incoming")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            cache.read_verified(entry, out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp
