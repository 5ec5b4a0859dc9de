"""Cache space: `modelreg cache list`, `modelreg cache prune` and `cache_max_size` after each pull.

Bundles are pushed to a real remote and pulled into a fresh cache and workspace (another machine,
where nothing is pinned unless a test pins it), so every cached version came through a real pull.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelreg.config import Settings
from modelreg.errors import UsageError
from modelreg.local.cache import Cache
from modelreg.refs import Ref
from modelreg.units import parse_duration, parse_size
from tests.helpers import make_bundle, run_cli

SIZE = 100_000
DAY = 24 * 3600


def publish(settings: Settings, tmp_path: Path, target: str, versions: dict[str, dict[str, bytes]]) -> None:
    for version, contents in versions.items():
        make_bundle(settings, version, contents, tmp_path)
        run_cli("push", version, "--remote", target, "-q")


def other_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cache:
    """A fresh cache and a fresh workspace without pins (the same config and remotes)."""
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "cache-b"))
    workspace = tmp_path / "workspace-b"
    (workspace / "manifests").mkdir(parents=True)
    monkeypatch.chdir(workspace)
    return Cache(tmp_path / "cache-b")


def pin_from_cache(cache: Cache, version: str) -> None:
    pin = Path.cwd() / "manifests" / "emotion" / f"{version}.json"
    pin.parent.mkdir(parents=True, exist_ok=True)
    pin.write_bytes(cache.read_manifest_bytes(Ref("emotion", version)) or b"")


def cached(cache: Cache) -> set[str]:
    return {path.stem for path in (cache.root / "manifests" / "emotion").glob("*.json")}


def cache_files(cache: Cache) -> dict[str, int]:
    return {str(p.relative_to(cache.root)): p.lstat().st_size for p in cache.root.rglob("*")
            if p.is_file() or p.is_symlink()}


def listing() -> dict:
    return json.loads(run_cli("cache", "list", "--json").stdout)


def three_versions(settings, tmp_path, target) -> None:
    publish(settings, tmp_path, target, {version: {"w.bin": os.urandom(SIZE)} for version in ("v1", "v2", "v3")})


def set_cache_max_size(settings: Settings, value: str) -> None:
    text = settings.config_path.read_text() if settings.config_path.exists() else ""
    settings.config_path.parent.mkdir(parents=True, exist_ok=True)
    settings.config_path.write_text(f"cache_max_size = {json.dumps(value)}\n" + text)


# -- sizes and durations ------------------------------------------------------------------------

def test_sizes_and_durations_parse_in_the_units_people_type():
    assert parse_size("10G") == 10 * 1000**3
    assert parse_size("500MB") == 500 * 1000**2
    assert parse_size("1.5GiB") == 1536 * 1024**2
    assert parse_size("4096") == 4096
    assert parse_duration("30d") == 30 * DAY
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("90m") == 5400
    for bad in ("ten", "-1G", "10 parsecs", "", "1e9"):
        with pytest.raises(UsageError, match="--max-size"):
            parse_size(bad, "--max-size")
    with pytest.raises(UsageError, match="unit"):
        parse_duration("90", "--older-than")


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--max-size", "10X", "--max-size '10X'"), ("--max-size", "-5G", "--max-size '-5G'"),
    ("--older-than", "30", "--older-than '30'"), ("--older-than", "soon", "--older-than 'soon'")])
def test_prune_refuses_a_bad_size_or_duration_with_exit_2_and_removes_nothing(settings, tmp_path, option, value,
                                                                                expected):
    make_bundle(settings, "v1", {"w.bin": b"weights"}, tmp_path)
    before = cache_files(Cache(settings.cache_dir))
    result = run_cli("cache", "prune", option, value, expect=2)
    assert expected in result.stderr and "e.g." not in result.stdout
    assert "Traceback" not in result.stderr
    assert cache_files(Cache(settings.cache_dir)) == before


def test_an_invalid_cache_max_size_in_the_config_names_the_file_and_key(settings):
    set_cache_max_size(settings, "lots")
    result = run_cli("cache", "list", expect=1)
    assert str(settings.config_path) in result.stderr and "cache_max_size" in result.stderr
    assert "20G" in result.stderr and "Traceback" not in result.stderr
    settings.config_path.unlink()
    from_env = run_cli("cache", "list", env={"MODELREG_CACHE_MAX_SIZE": "huge"}, expect=1)
    assert "MODELREG_CACHE_MAX_SIZE 'huge'" in from_env.stderr and "Traceback" not in from_env.stderr


# -- cache list ---------------------------------------------------------------------------------

def test_cache_list_counts_a_shared_blob_once(settings, file_target, tmp_path, monkeypatch):
    shared = os.urandom(SIZE)
    publish(settings, tmp_path, file_target, {"v1": {"w.bin": os.urandom(1000), "shared.bin": shared},
                                              "v2": {"w.bin": os.urandom(2000), "shared.bin": shared}})
    other_machine(tmp_path, monkeypatch)
    run_cli("pull", "v1", "--remote", file_target)
    run_cli("pull", "v2", "--remote", file_target)
    pin_from_cache(Cache(tmp_path / "cache-b"), "v2")
    data = listing()
    rows = {row["version"]: row for row in data["versions"]}
    assert rows["v1"]["bytes"] == SIZE + 1000 and rows["v2"]["bytes"] == SIZE + 2000
    assert rows["v1"]["shared_bytes"] == rows["v2"]["shared_bytes"] == SIZE
    assert data["blobs"] == 3 and data["total_bytes"] == SIZE + 3000
    assert (rows["v1"]["pinned"], rows["v2"]["pinned"]) == (False, True)
    assert rows["v1"]["last_used"] <= rows["v2"]["last_used"] and rows["v2"]["last_used_from"] == "record"
    text = run_cli("cache", "list").stdout
    assert "3 blob(s), each counted once" in text and "103.0 KB" in text


# -- prune --------------------------------------------------------------------------------------

def test_dry_run_prints_the_plan_and_removes_nothing(settings, file_target, tmp_path, monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    for version in ("v1", "v2", "v3"):
        run_cli("pull", version, "--remote", file_target)
    before = cache_files(cache)
    out = run_cli("cache", "prune", "--max-size", "150KB", "--dry-run")
    assert "WOULD REMOVE  emotion:v1" in out.stdout and "WOULD REMOVE  emotion:v2" in out.stdout
    assert "emotion:v3" not in out.stdout and "nothing was removed (--dry-run)" in out.stdout
    plan = json.loads(run_cli("cache", "prune", "--max-size", "150KB", "--dry-run", "--json").stdout)
    assert [row["version"] for row in plan["removed"]] == ["v1", "v2"] and plan["freed_bytes"] == 0
    assert plan["planned_bytes"] == 2 * SIZE and plan["total_after"] == SIZE
    assert cache_files(cache) == before


def test_prune_evicts_least_recently_used_keeps_pins_and_prints_bytes_freed(settings, file_target, tmp_path,
                                                                            monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    for version in ("v1", "v2", "v3"):
        run_cli("pull", version, "--remote", file_target)
    pin_from_cache(cache, "v1")
    run_cli("pull", "v2", "--remote", file_target)  # v2 used again: v3 is now the least recently used
    out = run_cli("cache", "prune", "--max-size", "250KB")
    assert "REMOVED  emotion:v3  100.0 KB" in out.stdout and "KEPT  emotion:v1  (pinned by" in out.stdout
    assert "Freed 100.0 KB" in out.stdout
    assert cached(cache) == {"v1", "v2"}
    run_cli("verify", "v1")
    run_cli("verify", "v2")
    again = run_cli("pull", "v3", "--remote", file_target)
    assert "1 blob(s) downloaded" in again.stdout


def test_prune_keeps_a_blob_a_remaining_version_still_names(settings, file_target, tmp_path, monkeypatch):
    shared = os.urandom(SIZE)
    publish(settings, tmp_path, file_target, {"v1": {"w.bin": os.urandom(1000), "shared.bin": shared},
                                              "v2": {"w.bin": os.urandom(2000), "shared.bin": shared}})
    cache = other_machine(tmp_path, monkeypatch)
    run_cli("pull", "v1", "--remote", file_target)
    run_cli("pull", "v2", "--remote", file_target)
    result = json.loads(run_cli("cache", "prune", "--max-size", "102500", "--json").stdout)
    assert [row["version"] for row in result["removed"]] == ["v1"]
    assert result["freed_bytes"] == 1000 and result["total_after"] == SIZE + 2000
    assert cached(cache) == {"v2"}
    assert "All 2 file(s)" in run_cli("verify", "v2").stdout


def test_keep_protects_a_version_and_an_unknown_keep_is_refused_before_anything_goes(settings, file_target,
                                                                                     tmp_path, monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    for version in ("v1", "v2", "v3"):
        run_cli("pull", version, "--remote", file_target)
    refused = run_cli("cache", "prune", "--older-than", "0s", "--keep", "v7", expect=2)
    assert "--keep emotion:v7" in refused.stderr and "nothing was removed" in refused.stderr
    assert cached(cache) == {"v1", "v2", "v3"}
    out = run_cli("cache", "prune", "--older-than", "0s", "--keep", "v2")
    assert "KEPT  emotion:v2  (--keep)" in out.stdout
    assert cached(cache) == {"v2"}


def test_older_than_evicts_only_versions_not_used_since(settings, file_target, tmp_path, monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    for version in ("v1", "v2", "v3"):
        run_cli("pull", version, "--remote", file_target)
    record = cache.root / "usage" / "emotion" / "v1.json"
    data = json.loads(record.read_text())
    data["used_at"] = time.time() - 40 * DAY
    record.write_text(json.dumps(data))
    out = run_cli("cache", "prune", "--older-than", "30d")
    assert "REMOVED  emotion:v1" in out.stdout and "more than 30d" in out.stdout
    assert cached(cache) == {"v2", "v3"}


def test_without_criteria_only_old_leftovers_go(settings, file_target, tmp_path, monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    run_cli("pull", "v1", "--remote", file_target)
    prefix = cache.root / "blobs" / "sha256" / "ab"
    prefix.mkdir(parents=True, exist_ok=True)
    old_partial, new_partial = prefix / f"{'ab' * 32}.partial", prefix / f"{'ab' * 31}cd.partial"
    old_temp = cache.root / "tmp" / ".file.0123.incoming"
    old_temp.parent.mkdir(parents=True, exist_ok=True)
    for path in (old_partial, new_partial, old_temp):
        path.write_bytes(b"x" * 5000)
    for path in (old_partial, old_temp):
        os.utime(path, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    out = run_cli("cache", "prune")
    assert "only leftovers are removed" in out.stdout and "Freed 10.0 KB" in out.stdout
    assert not old_partial.exists() and not old_temp.exists() and new_partial.exists()
    assert cached(cache) == {"v1"}


def test_prune_never_follows_a_symlink_planted_in_the_cache(settings, file_target, tmp_path, monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    for version in ("v1", "v2"):
        run_cli("pull", version, "--remote", file_target)
    outside = tmp_path / "precious"
    (outside / "inner").mkdir(parents=True)
    (outside / "inner" / "data.txt").write_text("keep me")
    blob_name = "cd" * 32
    (outside / blob_name).write_text("keep me too")
    snapshot = cache.snapshot_dir(Ref("emotion", "v1"))
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(outside)
    (cache.snapshot_dir(Ref("emotion", "v2"))).mkdir()
    (cache.snapshot_dir(Ref("emotion", "v2")) / "escape").symlink_to(outside)
    (cache.root / "blobs" / "sha256" / "cd").symlink_to(outside)
    (cache.root / "tmp").mkdir(exist_ok=True)
    (cache.root / "tmp" / "link").symlink_to(outside / "inner" / "data.txt")
    (cache.root / "manifests" / "evil").symlink_to(outside)
    out = run_cli("cache", "prune", "--older-than", "0s")
    assert "REMOVED  emotion:v1" in out.stdout and "REMOVED  emotion:v2" in out.stdout
    assert (outside / "inner" / "data.txt").read_text() == "keep me"
    assert (outside / blob_name).read_text() == "keep me too"
    assert not os.path.lexists(snapshot) and not os.path.lexists(cache.root / "blobs" / "sha256" / "cd")
    assert not os.path.lexists(cache.root / "manifests" / "evil") and cached(cache) == set()


# -- holds: a running pull or load --------------------------------------------------------------

HOLDER = """
import sys
from modelreg.config import Settings
from modelreg.local.cache import Cache
from modelreg.local.usage import hold_version
from modelreg.refs import Ref
settings = Settings.resolve()
cache = Cache(settings.cache_dir)
hold_version(cache, cache.load_manifest(Ref("emotion", sys.argv[1])), "pull")
print("holding", flush=True)
sys.stdin.read()
"""

LOADER = """
import sys
import modelreg
directory = modelreg.load(sys.argv[1], remote=sys.argv[2])
print(directory, flush=True)
sys.stdin.read()
"""


def start(script: str, *args: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    assert process.stdout.readline(), "the holding process failed to start"
    return process


def finish(process: subprocess.Popen) -> None:
    process.communicate(timeout=60)
    assert process.returncode == 0


def test_a_version_held_by_a_running_pull_survives_prune_until_that_process_ends(settings, file_target, tmp_path,
                                                                                  monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    for version in ("v1", "v2"):
        run_cli("pull", version, "--remote", file_target)
    holder = start(HOLDER, "v1")
    try:
        out = run_cli("cache", "prune", "--max-size", "0")
        assert f"KEPT  emotion:v1  (in use (pull by pid {holder.pid}" in out.stdout
        assert "REMOVED  emotion:v2" in out.stdout and cached(cache) == {"v1"}
        assert "All 1 file(s)" in run_cli("verify", "v1").stdout
        assert listing()["versions"][0]["in_use"]
    finally:
        finish(holder)
    out = run_cli("cache", "prune", "--max-size", "0")
    assert "REMOVED  emotion:v1" in out.stdout and cached(cache) == set()
    assert list((cache.root / "holds").iterdir()) == []


def test_a_hold_whose_process_died_is_ignored_and_cleaned(settings, file_target, tmp_path, monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    run_cli("pull", "v1", "--remote", file_target)
    holder = start(HOLDER, "v1")
    holder.kill()  # no clean exit: its hold file stays behind
    holder.wait()
    assert len(list((cache.root / "holds").iterdir())) == 1
    out = run_cli("cache", "prune", "--max-size", "0")
    assert "REMOVED  emotion:v1" in out.stdout and "stale hold" in out.stdout
    assert list((cache.root / "holds").iterdir()) == []


def test_a_loaded_files_bundle_keeps_its_snapshot_while_the_loading_process_runs(settings, file_target, tmp_path,
                                                                                 monkeypatch):
    source = tmp_path / "src"
    source.mkdir()
    (source / "config.json").write_text('{"a": 1}')
    run_cli("ingest", "tok:v1", "--from", str(source), "--family", "files")
    run_cli("push", "tok:v1", "--remote", file_target)
    other_machine(tmp_path, monkeypatch)
    loader = start(LOADER, "tok:v1", file_target)
    try:
        snapshot = Cache(tmp_path / "cache-b").snapshot_dir(Ref("tok", "v1"))
        assert (snapshot / "config.json").read_text() == '{"a": 1}'
        out = run_cli("cache", "prune", "--older-than", "0s")
        assert "KEPT  tok:v1  (in use (load by pid" in out.stdout
        assert (snapshot / "config.json").read_text() == '{"a": 1}'
    finally:
        finish(loader)
    out = run_cli("cache", "prune", "--older-than", "0s")
    assert "REMOVED  tok:v1" in out.stdout and not snapshot.exists()


# -- cache_max_size after each pull, on every backend -------------------------------------------

def limited_with_v1_pinned(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str,
                           limit: str) -> Cache:
    """Three versions on `target`; another machine with `cache_max_size = limit` pulled v1 and pinned it."""
    three_versions(settings, tmp_path, target)
    set_cache_max_size(settings, limit)
    cache = other_machine(tmp_path, monkeypatch)
    run_cli("pull", "v1", "--remote", target)
    pin_from_cache(cache, "v1")
    return cache


def test_a_pull_with_cache_max_size_evicts_least_recently_used_and_keeps_pins(settings, target, tmp_path,
                                                                               monkeypatch):
    cache = limited_with_v1_pinned(settings, tmp_path, monkeypatch, target, "250KB")
    run_cli("pull", "v2", "--remote", target)
    assert cached(cache) == {"v1", "v2"}
    out = run_cli("pull", "v3", "--remote", target)
    assert "cache_max_size 250.0 KB: removed emotion:v2 (100.0 KB)" in out.stderr
    assert "freeing 100.0 KB" in out.stderr
    assert cached(cache) == {"v1", "v3"}
    assert listing()["total_bytes"] == 2 * SIZE
    over = run_cli("pull", "v2", "--remote", target)  # v1 pinned, v2 just pulled: v3 goes
    assert "removed emotion:v3" in over.stderr and cached(cache) == {"v1", "v2"}


def test_a_pull_that_cannot_get_under_cache_max_size_says_so_and_succeeds(settings, file_target, tmp_path,
                                                                          monkeypatch):
    cache = limited_with_v1_pinned(settings, tmp_path, monkeypatch, file_target, "50KB")
    out = run_cli("pull", "v2", "--remote", file_target)
    assert "Pulled emotion:v2" in out.stdout
    assert "stays at 200.0 KB, above 50.0 KB" in out.stderr and "emotion:v1 pinned by" in out.stderr
    assert cached(cache) == {"v1", "v2"}


def test_without_cache_max_size_a_pull_evicts_nothing(settings, file_target, tmp_path, monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    for version in ("v1", "v2", "v3"):
        out = run_cli("pull", version, "--remote", file_target)
        assert "cache_max_size" not in out.stderr
    assert cached(cache) == {"v1", "v2", "v3"}


def test_finished_pulls_and_pushes_leave_no_hold_and_record_their_use(settings, file_target, tmp_path,
                                                                       monkeypatch):
    three_versions(settings, tmp_path, file_target)
    pushed = json.loads((Cache(settings.cache_dir).root / "usage" / "emotion" / "v1.json").read_text())
    assert pushed["action"] == "push" and list((settings.cache_dir / "holds").iterdir()) == []
    cache = other_machine(tmp_path, monkeypatch)
    run_cli("pull", "v1", "--remote", file_target)
    first = json.loads((cache.root / "usage" / "emotion" / "v1.json").read_text())["used_at"]
    again = run_cli("pull", "v1", "--remote", file_target)
    assert "from the local cache" in again.stdout
    assert json.loads((cache.root / "usage" / "emotion" / "v1.json").read_text())["used_at"] > first
    assert list((cache.root / "holds").iterdir()) == []
    assert listing()["versions"][0]["in_use"] == []


def test_a_recent_hold_from_another_host_protects_its_version_and_an_old_one_does_not(settings, file_target,
                                                                                     tmp_path, monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    run_cli("pull", "v1", "--remote", file_target)
    manifest = cache.load_manifest(Ref("emotion", "v1"))
    assert manifest is not None
    hold = cache.root / "holds" / "gpu-7.4242.0123456789ab.json"
    hold.parent.mkdir(parents=True, exist_ok=True)
    record = {"format": 1, "host": "gpu-7.elsewhere", "pid": 4242, "process_start": "1", "created": time.time(),
              "name": "emotion", "version": "v1", "action": "load", "blobs": [e.sha256 for e in manifest.files]}
    hold.write_text(json.dumps(record))
    out = run_cli("cache", "prune", "--max-size", "0")
    assert "KEPT  emotion:v1  (in use (load by pid 4242 on gpu-7.elsewhere))" in out.stdout
    hold.write_text(json.dumps({**record, "created": time.time() - 2 * DAY}))
    out = run_cli("cache", "prune", "--max-size", "0")
    assert "REMOVED  emotion:v1" in out.stdout and not hold.exists()


def test_a_blob_no_version_has_named_for_a_day_goes_with_its_fingerprint(settings, file_target, tmp_path,
                                                                         monkeypatch):
    three_versions(settings, tmp_path, file_target)
    cache = other_machine(tmp_path, monkeypatch)
    for version in ("v1", "v2"):
        run_cli("pull", version, "--remote", file_target)
    blobs = {version: json.loads(cache.read_manifest_bytes(Ref("emotion", version)) or b"")["files"][0]["sha256"]
             for version in ("v1", "v2")}
    for version in ("v1", "v2"):
        cache.manifest_path(Ref("emotion", version)).unlink()  # as a crash between blobs and manifest leaves it
    old = cache.blob_path(blobs["v1"])
    os.utime(old, (time.time() - 2 * DAY, time.time() - 2 * DAY), follow_symlinks=False)
    fingerprint = cache.root / "fingerprints" / blobs["v1"][:2] / f"{blobs['v1']}.json"
    assert fingerprint.exists()
    out = json.loads(run_cli("cache", "prune", "--json").stdout)
    assert {"kind": "blob no cached version names", "bytes": SIZE, "path": str(old)} in out["leftovers"]
    assert not old.exists() and not fingerprint.exists()
    assert cache.blob_path(blobs["v2"]).exists()  # too recent: may belong to a running ingest
