"""Where a bundle came from: tool versions and the workspace's git commit.

Versions are read from package metadata, so recording them never imports tensorflow.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import modelreg


def package_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def git_commit(workspace: Path) -> str | None:
    """The HEAD commit of the git work tree containing `workspace`, or None."""
    try:
        out = subprocess.run(["git", "-C", str(workspace), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def collect(workspace: Path, source: str, dataset_fingerprint: str | None = None) -> dict:
    return {
        "modelreg_version": modelreg.__version__,
        "python_version": platform.python_version(),
        "numpy_version": package_version("numpy"),
        "tensorflow_version": package_version("tensorflow", "tensorflow-cpu"),
        "keras_version": package_version("keras"),
        "git_commit": git_commit(workspace),
        "dataset_fingerprint": dataset_fingerprint,
        "source": source,
    }
