"""Without --offline, `modelreg.load` of something the cache holds goes on when the remote is down."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import modelreg
from modelreg.config import add_remote
from modelreg.errors import RemoteError, RemoteUnreachableWarning
from tests.helpers import run_cli
from tests.test_speed_offline import UNREACHABLE


@pytest.fixture
def tagged_files_bundle(settings, tmp_path: Path) -> Path:
    """A `files` bundle v1 pushed to a file:// remote 'home', tagged production there, pulled by tag."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"w" * 4096)
    run_cli("ingest", "v1", "--family", "files", "--from", str(source))
    add_remote(settings, "home", (tmp_path / "registry").as_uri())
    run_cli("push", "v1", "--remote", "home")
    run_cli("tag", "v1", "production", "--remote", "home")
    run_cli("pull", "production", "--remote", "home")  # records where the tag pointed
    return source


@pytest.mark.parametrize("kind", ["ssh-closed-port", "s3-closed-port", "ssh-unroutable-name"])
def test_load_of_a_tag_last_seen_goes_on_with_a_warning(kind, settings, tagged_files_bundle):
    spec = UNREACHABLE[kind]()
    add_remote(settings, "far", spec.url, options=spec.options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = modelreg.load("production", "far", workspace=settings.workspace)
    assert (Path(loaded) / "weights.bin").read_bytes() == b"w" * 4096
    [warning] = [w for w in caught if issubclass(w.category, RemoteUnreachableWarning)]
    text = str(warning.message)
    assert "could not be reached" in text and "emotion:v1" in text and "resolved to v1" in text


def test_load_of_something_not_cached_still_fails_with_the_remote_error(settings, tagged_files_bundle):
    spec = UNREACHABLE["ssh-closed-port"]()
    add_remote(settings, "far", spec.url, options=spec.options)
    with pytest.raises(RemoteError):
        modelreg.load("staging", "far", workspace=settings.workspace)


def test_offline_show_uses_the_cache_and_list_refuses_without_connecting(settings, tagged_files_bundle):
    from tests.test_speed_offline import GUARD

    log = tagged_files_bundle.parent / "network.log"
    site = tagged_files_bundle.parent / "guard"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GUARD.format(log=str(log)))
    env = {"PYTHONPATH": str(site)}
    spec = UNREACHABLE["ssh-unroutable-name"]()
    add_remote(settings, "far", spec.url, options=spec.options)
    shown = run_cli("--offline", "show", "production", "--remote", "far", "--json", env=env)
    assert '"version": "v1"' in shown.stdout and "not asked" in shown.stdout
    missing = run_cli("--offline", "show", "v7", "--remote", "far", env=env, expect=1)
    assert "not in the local cache" in missing.stderr
    listed = run_cli("--offline", "list", "--remote", "far", env=env, expect=2)
    assert "cache list" in listed.stderr
    assert not log.exists()
