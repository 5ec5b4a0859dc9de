"""Write a verified bundle into a plain directory under its original file names, all or nothing.

The directory ends up with the bundle files, `SHA256SUMS`, `model.sig` when signed,
and `manifest.json`, so it can be re-checked later with `modelreg verify DIR` or
plain `sha256sum -c SHA256SUMS`.

Guarantees (see `materialize`):
- Every file is first written and verified in `DEST/.modelreg-staging-<host>.<pid>.<random>/`
  (same filesystem), and only then renamed into place, `manifest.json` last. A pull
  that downloads writes that copy while the bytes arrive (`modelreg.download.Tee`)
  and keeps it only once the cache has verified the same bytes; any other file is
  copied from the cache, verified again. Staging left by a killed pull on this host
  is removed by the next one (`_remove_dead_staging`).
- Nothing is ever written through a symlink inside DEST: a link where a bundle
  file goes is replaced by the file (rename over the link, never into its target),
  and a path whose directory components inside DEST are links (or files) is
  refused before anything changes. DEST itself, and its parents, may be links
  the user made: that is the path the user chose.
- Files of the previous bundle that the new one no longer lists are removed only
  when the previous `manifest.json` in DEST listed them; other files are never touched.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from modelreg.errors import InvalidArtifact, LocalIOError, RegistryError
from modelreg.file_writes import open_sliced
from modelreg.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME
from modelreg.local.cache import Cache, open_regular
from modelreg.local.processes import dead_owner, owner_tag
from modelreg.manifest import FileEntry, Manifest, sha256sums

STAGING_PREFIX = ".modelreg-staging-"


def contained_path(root: Path, relative: str) -> Path:
    """`root/relative`, refused when a directory component of `relative` inside `root` is not a real directory.

    Components that do not exist yet are fine (they will be created); a symlink
    (even one pointing inside `root`) or a regular file in the way raises
    InvalidArtifact, so a write can never traverse a link.
    """
    current = root
    parts = relative.split("/")
    for part in parts[:-1]:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory"
            raise InvalidArtifact(
                f"Refusing to write {relative!r} into {root}: {current} is {kind}, and modelreg never "
                f"writes through links or over your files. Move {current} away or choose another --dest.")
    target = root / relative
    try:
        if stat.S_ISDIR(os.lstat(target).st_mode):
            raise InvalidArtifact(f"Refusing to write {relative!r} into {root}: {target} is a directory. "
                                  f"Move it away or choose another --dest.")
    except FileNotFoundError:
        pass
    return target


class DestStaging:
    """The staging directory of a `materialize` that starts before the download (a pull's `--dest`).

    Created by `open` inside DEST (and DEST with it, when missing: removed again by
    `close` if nothing was materialized into it). Downloads write their second copies
    into `tee_path(sha256)`; `materialize(..., staging=)` renames the verified ones
    into place instead of copying the cache blob again. `close` removes the directory.
    """

    def __init__(self, manifest: Manifest, dest: Path) -> None:
        self.manifest, self.dest = manifest, dest
        self.path: Path | None = None
        self.prestaged: dict[str, Path] = {}
        self._created: list[Path] = []

    def open(self) -> DestStaging:
        missing = []
        parent = self.dest
        while not os.path.lexists(parent) and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        self._created = missing
        try:
            self.dest.mkdir(parents=True, exist_ok=True)
            _remove_dead_staging(self.dest)
            self.path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{owner_tag()}.", dir=self.dest))
            (self.path / "tee").mkdir()
        except OSError as exc:
            self.close(kept=False)
            raise _write_error(self.manifest, self.dest, exc) from exc
        return self

    def tee_path(self, sha256: str) -> Path:
        assert self.path is not None
        return self.path / "tee" / sha256

    def close(self, kept: bool) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        if not kept:
            for directory in self._created:
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    continue
                except OSError:
                    break


def _remove_dead_staging(dest: Path) -> None:
    """Remove what killed pulls on this host left in `dest`'s staging directories, but not the user's files.

    A staging directory without `previous/` never started its swap: all of it is
    modelreg's (download copies, staged files) and it goes. One with `previous/` holds
    files the swap moved aside; only its download copies (`tee/`) go, the rest waits
    for the user (see `materialize`).
    """
    try:
        names = [entry.name for entry in os.scandir(dest) if entry.name.startswith(STAGING_PREFIX)]
    except OSError:
        return
    for name in names:
        path = dest / name
        try:
            if not dead_owner(name, STAGING_PREFIX) or not stat.S_ISDIR(os.lstat(path).st_mode):
                continue
            keep = os.path.lexists(path / "previous")
        except OSError:
            continue
        shutil.rmtree(path / "tee" if keep else path, ignore_errors=True)


def materialize(cache: Cache, manifest: Manifest, manifest_bytes: bytes, dest: Path,
                signature: bytes | None = None, files: Sequence[FileEntry] | None = None,
                staging: DestStaging | None = None) -> Path:
    """Copy every file of `manifest` from the cache into `dest`, verified, as one transaction.

    With `files` (a partial pull), only those are copied and `SHA256SUMS` lists only
    them, while `manifest.json` (and `model.sig`) stay the whole bundle's, unchanged,
    so the version's identity and signature remain checkable: `modelreg verify DEST`
    recognizes the subset (`modelreg.verify`).

    `signature` (the bundle's model.sig) is written too, so OpenSSF's own
    `model_signing verify key DEST --signature DEST/model.sig` can check the directory.

    "Exactly as before" on failure: when any step raises (a corrupt cache blob, a
    refused path, a full disk, a failed rename, Ctrl-C), the files already moved
    are moved back, directories this call created are removed, and the staging
    directory is deleted, so DEST has the same names with the same contents (a
    replaced symlink is restored as the same link). What cannot be promised: if
    the process is killed (SIGKILL, power loss) during the swap itself, DEST may
    hold some new files beside the previous `manifest.json` (which is renamed
    last, so `modelreg verify DEST` reports the mix), and the replaced files are
    left in `DEST/.modelreg-staging-*/previous/`; pulling again completes the swap.
    Raises LocalIOError for local write failures, InvalidArtifact for refused
    paths, and what `Cache.read_verified` raises for a bad cached blob.

    With `staging` (opened before the download by the caller, who closes it), its
    directory is used and the verified copies the download made there are renamed
    into place rather than copied from the cache.
    """
    owned = staging is None
    staging = staging or DestStaging(manifest, dest).open()
    assert staging.path is not None
    done = False
    try:
        moves = _stage(cache, manifest, manifest_bytes, dest, staging.path, signature,
                       list(manifest.files if files is None else files), staging.prestaged)
        _swap(moves, dest, staging.path)
        done = True
    except OSError as exc:
        if isinstance(exc, RegistryError):
            raise
        raise _write_error(manifest, dest, exc) from exc
    finally:
        if owned:
            staging.close(kept=done)
    return dest


def _write_error(manifest: Manifest, dest: Path, exc: OSError) -> LocalIOError:
    return LocalIOError(f"Cannot write {manifest.ref} into {dest} ({exc.strerror or exc}). {dest} was left "
                        f"as it was; free space, fix its permissions or choose another --dest. The "
                        f"verified files stay in the cache, so the next pull copies them without "
                        f"downloading.")


def _stage(cache: Cache, manifest: Manifest, manifest_bytes: bytes, dest: Path, staging: Path,
           signature: bytes | None, files: list[FileEntry],
           prestaged: dict[str, Path]) -> list[tuple[Path | None, Path]]:
    """Write every file under `staging` (verified) and return the moves, manifest last.

    A move is (staged file, target), or (None, target) for a file of the previous
    bundle to remove: one its manifest.json listed and the new bundle does not.
    A verified copy in `prestaged` (by sha256) is used once, by the first file with that blob.
    """
    moves: list[tuple[Path | None, Path]] = []
    (staging / "new").mkdir(exist_ok=True)
    for index, entry in enumerate(files):
        target = contained_path(dest, entry.path)
        staged = staging / "new" / str(index)
        copy = prestaged.pop(entry.sha256, None)
        if copy is not None:
            os.rename(copy, staged)
        else:
            stage_verified_copy(cache, entry, staged)
        moves.append((staged, target))
    keep = {entry.path for entry in files}
    for path in _read_previous_manifest(dest / MANIFEST_NAME):
        if path in keep:
            continue
        try:
            target = contained_path(dest, path)
        except InvalidArtifact:
            continue
        if os.path.lexists(target):
            moves.append((None, target))
    extras: list[tuple[str, bytes | None]] = [(SUMS_NAME, sha256sums(files).encode()),
                                              (SIGNATURE_NAME, signature), (MANIFEST_NAME, manifest_bytes)]
    for name, data in extras:
        target = contained_path(dest, name)
        if data is None:
            if os.path.lexists(target):
                moves.append((None, target))
            continue
        staged = staging / "new" / name
        with _create(staged) as out:
            out.write(data)
        moves.append((staged, target))
    return moves


def _swap(moves: list[tuple[Path | None, Path]], dest: Path, staging: Path) -> None:
    """Rename staged files into place (or remove dropped ones); on any exception put every name back."""
    backup = staging / "previous"
    backup.mkdir()
    done: list[tuple[Path, Path | None]] = []
    created_dirs: list[Path] = []
    try:
        for index, (staged, target) in enumerate(moves):
            if staged is not None:
                created_dirs += _make_parents(dest, target)
            saved = None
            if os.path.lexists(target):
                saved = backup / str(index)
                os.rename(target, saved)
            done.append((target, saved))
            if staged is not None:
                os.rename(staged, target)
    except BaseException:
        for target, saved in reversed(done):
            try:
                if os.path.lexists(target) and (saved is None or os.path.lexists(saved)):
                    os.unlink(target)
                if saved is not None:
                    os.rename(saved, target)
            except OSError:
                pass
        for directory in reversed(created_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass
        raise


def _make_parents(dest: Path, target: Path) -> list[Path]:
    """Create the missing directories between `dest` and `target` (checked by `contained_path`)."""
    created = []
    missing = []
    parent = target.parent
    while parent != dest and not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir()
        created.append(directory)
    return created


def _read_previous_manifest(path: Path) -> list[str]:
    """The file paths the previous manifest.json in DEST listed ([] when absent or unreadable)."""
    try:
        source = open_regular(path)
    except OSError:
        return []
    if source is None:
        return []
    with source:
        data = source.read(64 * 1024 * 1024)
    try:
        previous = Manifest.from_bytes(data, source=str(path))
    except RegistryError:
        return []
    return [entry.path for entry in previous.files]


def _create(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return open_sliced(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))


def stage_verified_copy(cache: Cache, entry: FileEntry, target: Path) -> Path:
    """Copy the cached blob of `entry` to the new file `target` (never through a link), verified.

    Raises what `Cache.read_verified` raises and leaves nothing behind when the bytes differ.
    """
    try:
        with _create(target) as out:
            cache.read_verified(entry, out)
    except BaseException:
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass
        raise
    return target
