"""Partial pulls: which files of a bundle `pull --include/--exclude` fetches.

Patterns are `fnmatch` patterns (`*`, `?`, `[...]`; `*` also crosses `/`) matched
against the bundle paths of the manifest, case-sensitively. With no `include`
every file is included; `exclude` wins over `include`. Every pattern must match
at least one path and the selection may not be empty: a typo is a UsageError
listing the bundle's paths, never a silently different download.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from modelreg.errors import UsageError
from modelreg.manifest import FileEntry, Manifest


def select_files(manifest: Manifest, include: Sequence[str] = (),
                 exclude: Sequence[str] = ()) -> list[FileEntry] | None:
    """The entries of `manifest` the patterns select, or None for the whole bundle (no patterns, or
    patterns that select every file).

    Raises UsageError when a pattern matches no path of the bundle, or when the
    patterns together select nothing.
    """
    if not include and not exclude:
        return None
    paths = [entry.path for entry in manifest.files]
    for flag, patterns in (("--include", include), ("--exclude", exclude)):
        for pattern in patterns:
            if not any(fnmatchcase(path, pattern) for path in paths):
                raise UsageError(f"{flag} {pattern!r} matches no file of {manifest.ref}. Its files are: "
                                 f"{', '.join(paths)}. Patterns are fnmatch patterns on these paths "
                                 f"(e.g. '*.npy'); nothing was downloaded.")
    selected = [entry for entry in manifest.files
                if (not include or any(fnmatchcase(entry.path, p) for p in include))
                and not any(fnmatchcase(entry.path, p) for p in exclude)]
    if len(selected) == len(manifest.files):
        return None
    if not selected:
        raise UsageError(f"The patterns select no file of {manifest.ref} (--exclude removes every file "
                         f"--include chose). Its files are: {', '.join(paths)}; nothing was downloaded.")
    return selected
