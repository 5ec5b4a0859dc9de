"""A cached version pulls without touching the network; `--offline` never does, and says what it did.

Each CLI run here has a socket guard installed through `sitecustomize`: any DNS lookup
or connection attempt is recorded in a log file and refused, so "no connection was
tried" is checked directly, not inferred from timing.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from modelreg.config import RemoteSpec, add_remote
from tests.helpers import make_bundle, run_cli
from tests.servers.ssh import free_port

GUARD = """
import socket

LOG = {log!r}


def _refuse(what):
    def refuse(*args, **kwargs):
        with open(LOG, "a") as out:
            out.write(f"{{what}} {{args!r}}\\n")
        raise OSError(f"network use refused by the test guard: {{what}}")
    return refuse


socket.getaddrinfo = _refuse("getaddrinfo")
socket.gethostbyname = _refuse("gethostbyname")
socket.create_connection = _refuse("create_connection")
socket.socket.connect = _refuse("connect")
socket.socket.connect_ex = _refuse("connect_ex")
"""


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[dict, Path]:
    """(environment for run_cli, log file): the CLI runs with every network call refused and logged."""
    site = tmp_path / "guard"
    site.mkdir()
    log = tmp_path / "network-attempts.log"
    (site / "sitecustomize.py").write_text(GUARD.format(log=str(log)))
    return {"PYTHONPATH": str(site)}, log


def closed_port() -> int:
    return free_port()


UNREACHABLE = {
    "ssh-closed-port": lambda: RemoteSpec(url=f"ssh://user@127.0.0.1:{closed_port()}/x"),
    "ssh-unroutable-name": lambda: RemoteSpec(url="ssh://user@unroutable.invalid/x"),
    "s3-closed-port": lambda: RemoteSpec(url="s3://b/p",
                                         options={"endpoint_url": f"http://127.0.0.1:{closed_port()}"}),
}


def add_unreachable(settings, kind: str) -> str:
    spec = UNREACHABLE[kind]()
    add_remote(settings, "far", spec.url, options=spec.options)
    return "far"


def published_on_far(settings, yank_checked: bool = True) -> None:
    """What a pull from `far` records: that remote holds emotion:v9 and (just now) had not yanked it."""
    from modelreg.config import Settings
    from modelreg.local.cache import Cache
    from modelreg.refs import Ref
    from modelreg.yanking import remember_yank

    cache, url = Cache(settings.cache_dir), Settings.resolve().remote("far").url
    cache.remember_published(Ref("emotion", "v9"), url)
    if yank_checked:
        remember_yank(cache, Ref("emotion", "v9"), url, None)


@pytest.fixture
def cached_v9(settings, tmp_path):
    return make_bundle(settings, "v9", {"weights.h5": b"w" * 5000, "labels.npy": b"labels"}, tmp_path)


def test_guard_really_refuses_network_use(guarded, settings):
    env, log = guarded
    add_unreachable(settings, "ssh-unroutable-name")
    result = run_cli("pull", "v10", "--remote", "far", env=env, expect=None)
    assert result.returncode != 0
    assert "getaddrinfo" in log.read_text() or "connect" in log.read_text()


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_offline_pull_of_a_cached_version_tries_no_connection(kind, cached_v9, settings, guarded, tmp_path):
    env, log = guarded
    add_unreachable(settings, kind)
    dest = tmp_path / "dest"
    out = run_cli("--offline", "pull", "v9", "--remote", "far", "--dest", str(dest), env=env)
    assert "without contacting" in out.stdout
    assert (dest / "weights.h5").read_bytes() == b"w" * 5000
    assert not log.exists(), log.read_text()


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_cached_version_pulls_without_connecting_even_online(kind, cached_v9, settings, guarded):
    env, log = guarded
    add_unreachable(settings, kind)
    published_on_far(settings)
    out = run_cli("pull", "v9", "--remote", "far", env=env)
    assert "0 blob(s) downloaded, 2 already cached" in out.stdout
    assert not log.exists(), log.read_text()


def test_a_cached_version_whose_yank_answer_is_stale_asks_the_remote(cached_v9, settings, guarded):
    """Past yank_check_interval, one small read asks whether it was yanked; unreachable: the cached
    version is used with a warning saying the remote was not asked (as `modelreg.load` does)."""
    env, log = guarded
    add_unreachable(settings, "ssh-unroutable-name")
    published_on_far(settings, yank_checked=False)
    result = run_cli("pull", "v9", "--remote", "far", env=env)
    assert "could not be reached to ask whether emotion:v9 was yanked" in result.stderr
    assert "network use refused by the test guard" in result.stderr
    assert log.exists()
    run_cli("pull", "v9", "--remote", "far", "--offline", env=env)


def test_a_remembered_yank_still_refuses_when_the_remote_is_unreachable(cached_v9, settings, guarded):
    """Unreachable is not "not yanked": a yank the cache learned earlier keeps refusing (exit 4)."""
    from modelreg.local.cache import Cache
    from modelreg.refs import Ref
    from modelreg.remote.yanks import Yank
    from modelreg.yanking import remember_yank

    env, _log = guarded
    add_unreachable(settings, "ssh-unroutable-name")
    published_on_far(settings, yank_checked=False)
    yank = Yank.from_dict({"format_version": 1, "name": "emotion", "version": "v9", "manifest_sha256": "0" * 64,
                           "reason": "bad labels", "yanked_by": "a@b", "yanked_at": "2026-01-01T00:00:00.000000Z"})
    remember_yank(Cache(settings.cache_dir), Ref("emotion", "v9"), "http://elsewhere.invalid/", yank)
    result = run_cli("pull", "v9", "--remote", "far", env=env, expect=4)
    assert "bad labels" in result.stderr


def test_a_local_version_never_published_there_asks_the_remote(cached_v9, settings, guarded):
    """A version only made here may share its name with a tag on the remote: online, ask it."""
    env, _log = guarded
    add_unreachable(settings, "ssh-unroutable-name")
    result = run_cli("pull", "v9", "--remote", "far", env=env, expect=5)
    assert "network use refused by the test guard" in result.stderr


def test_offline_from_the_environment(cached_v9, settings, guarded):
    env, log = guarded
    add_unreachable(settings, "s3-closed-port")
    run_cli("pull", "v9", "--remote", "far", env={**env, "MODELREG_OFFLINE": "1"})
    assert not log.exists()


def test_offline_pull_of_an_uncached_version_fails_listing_what_is_cached(cached_v9, settings, guarded):
    env, log = guarded
    add_unreachable(settings, "ssh-unroutable-name")
    result = run_cli("--offline", "pull", "v10", "--remote", "far", env=env, expect=1)
    assert "emotion:v10 is not in the local cache" in result.stderr
    assert "Cached: emotion:v9" in result.stderr
    assert not log.exists()


def test_offline_tag_resolves_through_the_version_last_seen(cached_v9, settings, guarded, tmp_path,
                                                            monkeypatch):
    registry = RemoteSpec(url=(tmp_path / "registry").as_uri())
    add_remote(settings, "home", registry.url)
    run_cli("push", "v9", "--remote", "home")
    run_cli("tag", "v9", "production", "--remote", "home")
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "other-cache"))
    run_cli("pull", "production", "--remote", "home")  # online: records where the tag pointed
    env, log = guarded
    add_unreachable(settings, "ssh-unroutable-name")
    out = run_cli("--offline", "pull", "production", "--remote", "far", env=env)
    assert "Pulled emotion:v9" in out.stdout
    assert "tag emotion:production resolved to v9" in out.stderr and "not asked" in out.stderr
    assert not log.exists()


def test_tag_online_still_asks_the_remote(cached_v9, settings, guarded):
    env, log = guarded
    add_unreachable(settings, "ssh-closed-port")
    result = run_cli("pull", "production", "--remote", "far", env=env, expect=None)
    assert result.returncode != 0 and log.exists()


def test_offline_push_is_refused_before_connecting(cached_v9, settings, guarded):
    env, log = guarded
    add_unreachable(settings, "ssh-unroutable-name")
    result = run_cli("--offline", "push", "v9", "--remote", "far", env=env, expect=2)
    assert "--offline" in result.stderr
    assert not log.exists()


def test_free_port_is_really_closed():
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", closed_port()), timeout=2).close()
