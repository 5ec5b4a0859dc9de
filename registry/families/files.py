"""The `files` family: any set of regular files, shipped verified and loaded as a directory.

`modelreg ingest NAME:VERSION --from DIR --family files` bundles every regular file
under DIR by its relative path, with role `other`. Symlinks, FIFOs, sockets and
devices are refused (naming them), never followed: what is shipped is exactly what
is in DIR. `modelreg.load` of such a bundle materializes it, verified, into the
cache's snapshot directory for the version and returns that path.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path
from typing import Any

from modelreg.errors import InvalidArtifact, UsageError
from modelreg.families import IngestPlan, IngestRequest, VerifiedBundle
from modelreg.manifest import check_bundle_path


def collect_files(directory: Path, patterns: tuple[str, ...] = ("*",)) -> dict[str, Path]:
    """{bundle path: file} for every regular file under `directory` matching a pattern (fnmatch on the
    relative POSIX path). Raises InvalidArtifact naming the first link or special file met."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory; pass --from DIR with the files to bundle.")
    found: dict[str, Path] = {}
    for root, dirs, names in os.walk(directory, followlinks=False):
        for name in sorted([*dirs, *names]):
            path = Path(root, name)
            relative = path.relative_to(directory).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
                if not any(fnmatch.fnmatchcase(relative, p) for p in patterns):
                    continue
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
                raise InvalidArtifact(
                    f"{path} is {kind}. modelreg bundles only regular files and never follows links; "
                    f"copy the real file into {directory} or remove it, then ingest again.")
            if any(fnmatch.fnmatchcase(relative, p) for p in patterns):
                found[check_bundle_path(relative)] = path
    return found


def include_files(directory: Path | None, patterns: tuple[str, ...], taken: set[str]) -> dict[str, tuple[str, Path]]:
    """Extra files (`--include PATTERN`) for any family's bundle, with role `other`."""
    if not patterns:
        return {}
    if directory is None:
        raise UsageError("--include needs --from DIR: patterns are matched against paths under DIR.")
    extra: dict[str, tuple[str, Path]] = {}
    for pattern in patterns:
        matched = collect_files(directory, (pattern,))
        if not matched:
            raise UsageError(f"--include {pattern!r} matches no file under {directory}.")
        for relative, path in matched.items():
            if relative not in taken:
                extra[relative] = ("other", path)
    return extra


class FilesFamily:
    """Arbitrary files; no model semantics, so nothing to check beyond what the files are."""

    name = "files"
    roles: tuple[str, ...] = ()

    def plan_ingest(self, request: IngestRequest) -> IngestPlan:
        if request.files_by_role:
            raise UsageError("--family files takes --from DIR only (every file under it is bundled); "
                             "--weights/--labels/--mean/--std belong to the v9 family.")
        if request.source_dir is None:
            raise UsageError("--family files needs --from DIR.")
        files = {path: ("other", local) for path, local in
                 collect_files(request.source_dir, request.includes or ("*",)).items()}
        if not files:
            raise UsageError(f"{request.source_dir} holds no regular file to bundle.")
        return IngestPlan(files=files, model={"family": self.name, "input_shape": [], "labels": [],
                                              "hyperparameters": {}})

    def load(self, bundle: VerifiedBundle, *, private_dir: Path, snapshot_dir: Path) -> Any:
        return bundle.materialize(snapshot_dir)
