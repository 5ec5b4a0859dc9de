"""Shared fixtures: every test gets its own MODELREG_HOME and workspace directory.

Backend fixtures start real servers once per session (the classes in tests/servers/:
SeaweedFS for S3, OpenSSH sshd for SSH) and give each test a `<backend>_remote`: a
`RemoteSpec` for a fresh, empty registry root. `remote` runs a test once per backend.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from modelreg.config import RemoteSpec, Settings
from tests.servers.s3 import S3Server, SeaweedServer, keys_for_tests, use_s3_keys
from tests.servers.ssh import SshdServer

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


@pytest.fixture(params=["file", "s3", "ssh"])
def remote(request: pytest.FixtureRequest) -> RemoteSpec:
    """The same behavioural test against every backend, each on a real server."""
    return request.getfixturevalue(f"{request.param}_remote")


# -- file:// ------------------------------------------------------------------------------------

@pytest.fixture
def file_remote(tmp_path: Path) -> RemoteSpec:
    """A fresh file:// registry root."""
    root = tmp_path / "file-registry"
    return RemoteSpec(url=root.as_uri())


# -- s3:// (SeaweedFS) --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory):
    """One SeaweedFS for the whole session; fails (never skips) when `weed` is missing."""
    try:
        server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


@pytest.fixture(scope="session")
def s3_server(seaweed: SeaweedServer) -> S3Server:
    """Endpoint and keys (valid, read-only, wrong secret, unknown key) for error tests."""
    return keys_for_tests(seaweed)


@pytest.fixture(scope="session")
def s3_bucket(seaweed: SeaweedServer) -> str:
    return seaweed.ensure_bucket("modelreg-test")


@pytest.fixture
def s3_remote(s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> RemoteSpec:
    """A fresh, empty registry root (unique prefix) on the session's SeaweedFS bucket."""
    use_s3_keys(monkeypatch, s3_server.admin)
    return RemoteSpec(url=f"s3://{s3_bucket}/t-{uuid.uuid4().hex[:12]}",
                      options={"endpoint_url": s3_server.endpoint_url})


# -- ssh:// (OpenSSH sshd) ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def sshd_server():
    """One sshd for the whole session: exposes `port`, `user`, `host_key`, `client_key`.

    Its directory is not under pytest's (0700) temp root, so that the unprivileged
    account of the permission test can reach authorized_keys.
    """
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-sshd-"))
    server = SshdServer(workdir)
    try:
        server.start()
    except RuntimeError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def ssh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $HOME (so ~/.ssh is empty) and no ssh-agent: only the keys a test names are used."""
    home = tmp_path / "ssh-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture
def ssh_remote(sshd_server: SshdServer, ssh_home: Path, tmp_path: Path) -> RemoteSpec:
    """A fresh, empty registry directory on the session's sshd, trusted through a modelreg known_hosts."""
    known_hosts = sshd_server.write_known_hosts(tmp_path / "modelreg_known_hosts")
    root = tmp_path / f"ssh-registry-{uuid.uuid4().hex[:8]}"
    return RemoteSpec(url=sshd_server.url(str(root)),
                      options={"identity_file": str(sshd_server.client_key),
                               "known_hosts": str(known_hosts)})


@pytest.fixture
def target(settings: Settings, remote: RemoteSpec) -> str:
    """The backend under test, registered as the named remote 'target' (for CLI calls)."""
    from tests.helpers import register_remote

    return register_remote(settings, remote)


@pytest.fixture
def file_target(settings: Settings, file_remote: RemoteSpec) -> str:
    """The file:// backend, registered as the named remote 'target'."""
    from tests.helpers import register_remote

    return register_remote(settings, file_remote)
