"""Shared fixtures: every test gets its own MODELREG_HOME and workspace directory.

Backend server fixtures live in fixtures_s3.py (SeaweedFS) and fixtures_ssh.py
(OpenSSH sshd); each provides a function-scoped `<backend>_remote` fixture that
yields a `RemoteSpec` for a fresh, empty registry root on a real server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelreg.config import RemoteSpec, Settings

pytest_plugins = ["fixtures_s3", "fixtures_ssh"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point config, cache and the local registry at a fresh directory; run in a fresh workspace."""
    home = tmp_path / "modelreg-home"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for name in list(os.environ):
        if name.startswith("MODELREG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MODELREG_HOME", str(home))
    monkeypatch.chdir(workspace)
    return home


@pytest.fixture
def settings(isolated_home: Path) -> Settings:
    return Settings.resolve()


@pytest.fixture
def file_remote(tmp_path: Path) -> RemoteSpec:
    """A fresh file:// registry root."""
    root = tmp_path / "file-registry"
    return RemoteSpec(url=root.as_uri())


@pytest.fixture(params=["file", "s3", "ssh"])
def remote(request: pytest.FixtureRequest) -> RemoteSpec:
    """The same behavioural test against every backend, each on a real server."""
    return request.getfixturevalue(f"{request.param}_remote")
