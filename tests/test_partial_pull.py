"""Partial pulls: `pull REF --include/--exclude` fetches only the matching files, on every backend.

The cache never takes a partial bundle for a whole one: its manifest is recorded only
when every blob is there, so `load` (and the cache-only path) fetch the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import modelreg
from modelreg.config import Settings
from modelreg.layout import MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME
from modelreg.local.cache import Cache
from modelreg.refs import Ref
from tests.helpers import run_cli

FILES = {"weights.h5": os.urandom(150_000), "labels.npy": b"labels", "mean.npy": b"mean" * 100,
         "docs/README.txt": b"read me"}


@pytest.fixture
def pushed(settings: Settings, target: str, tmp_path: Path):
    """v9 (a `files` bundle, so `load` can open it) pushed to the backend under test."""
    source = tmp_path / "source"
    for name, data in FILES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    run_cli("ingest", "v9", "--from", str(source), "--family", "files")
    run_cli("push", "v9", "--remote", target)
    return Cache(settings.cache_dir).load_manifest(Ref("emotion", "v9"))


@pytest.fixture
def other_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cache:
    """A fresh, empty cache for what follows (in-process calls and CLI runs alike)."""
    root = tmp_path / "other-cache"
    monkeypatch.setenv("MODELREG_CACHE", str(root))
    return Cache(root)


def cached_blobs(cache: Cache) -> set[str]:
    return {path.name for path in (cache.root / "blobs").rglob("*") if path.is_file()
            and len(path.name) == 64}


def digest(name: str) -> str:
    return hashlib.sha256(FILES[name]).hexdigest()


def pull(*args: str, expect: int = 0) -> dict:
    return json.loads(run_cli("pull", *args, "--json", expect=expect).stdout)


def test_partial_pull_fetches_only_the_matching_files(pushed, target, other_machine, tmp_path):
    dest = tmp_path / "dest"

    result = pull("v9", "--remote", target, "--include", "*.npy", "--include", "docs/*",
                  "--exclude", "mean*", "--dest", str(dest))

    assert sorted(result["selected"]) == ["docs/README.txt", "labels.npy"]
    assert sorted(result["downloaded"]) == ["docs/README.txt", "labels.npy"]
    assert result["complete"] is False
    assert cached_blobs(other_machine) == {digest("labels.npy"), digest("docs/README.txt")}
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted([
        MANIFEST_NAME, SUMS_NAME, "docs/README.txt", "labels.npy"])
    assert (dest / SUMS_NAME).read_text() == (f"{digest('docs/README.txt')}  docs/README.txt\n"
                                              f"{digest('labels.npy')}  labels.npy\n")
    assert (dest / MANIFEST_NAME).read_bytes() == pushed.to_bytes()


def test_the_cache_does_not_take_a_partial_bundle_for_a_whole_one(pushed, target, other_machine):
    pull("v9", "--remote", target, "--include", "labels.npy")

    assert other_machine.read_manifest_bytes(Ref("emotion", "v9")) is None
    out = run_cli("verify", "v9", expect=1)
    assert "not in the local cache" in out.stderr
    offline = run_cli("pull", "v9", "--remote", target, "--offline", expect=1)
    assert "not in the local cache" in offline.stderr


def test_load_after_a_partial_pull_fetches_the_rest(pushed, target, other_machine):
    pull("v9", "--remote", target, "--include", "weights.h5")

    directory = modelreg.load("v9", remote=target)

    assert {name: (Path(directory) / name).read_bytes() for name in FILES} == FILES
    assert cached_blobs(other_machine) == {digest(name) for name in FILES}


def test_a_full_pull_after_a_partial_one_downloads_only_the_rest(pushed, target, other_machine):
    pull("v9", "--remote", target, "--include", "weights.h5")

    result = pull("v9", "--remote", target)

    assert "weights.h5" in result["cached"] + result["reverified"]
    assert sorted(result["downloaded"]) == sorted(set(FILES) - {"weights.h5"})
    assert result["complete"] is True and result["selected"] is None
    assert pull("v9", "--remote", target)["from_cache"] is True


def test_partial_pull_of_a_cached_version_writes_only_the_selection(pushed, target, tmp_path):
    dest = tmp_path / "dest"
    run_cli("pull", "v9", "--remote", target, "--dest", str(dest))

    result = pull("v9", "--remote", target, "--exclude", "weights.h5", "--dest", str(dest))

    assert result["from_cache"] is True
    assert not (dest / "weights.h5").exists() and (dest / "labels.npy").read_bytes() == b"labels"
    assert "weights.h5" not in (dest / SUMS_NAME).read_text()


def test_a_pattern_that_matches_nothing_is_a_usage_error_listing_the_files(pushed, target, other_machine):
    out = run_cli("pull", "v9", "--remote", target, "--include", "*.onnx", expect=2)

    assert "--include '*.onnx' matches no file of emotion:v9" in out.stderr
    assert all(name in out.stderr for name in FILES)
    assert cached_blobs(other_machine) == set()
    excluded_all = run_cli("pull", "v9", "--remote", target, "--exclude", "*", expect=2)
    assert "select no file" in excluded_all.stderr


def test_verify_checks_a_partial_dest_and_says_it_is_partial(pushed, target, other_machine, tmp_path):
    dest = tmp_path / "dest"
    pull("v9", "--remote", target, "--include", "*.npy", "--dest", str(dest))

    report = json.loads(run_cli("verify", str(dest), "--json").stdout)
    assert report["ok"] and sorted(f["path"] for f in report["files"]) == ["labels.npy", "mean.npy"]
    assert "partial pull: 2 of 4 files of emotion:v9" in report["subject"]

    (dest / "labels.npy").write_bytes(b"LABELS")
    damaged = run_cli("verify", str(dest), expect=3)
    assert "labels.npy" in damaged.stderr


def test_verify_refuses_a_partial_dest_whose_sums_disagree_with_its_manifest(pushed, target,
                                                                              other_machine, tmp_path):
    dest = tmp_path / "dest"
    pull("v9", "--remote", target, "--include", "labels.npy", "--dest", str(dest))
    (dest / "labels.npy").write_bytes(b"forged")
    (dest / SUMS_NAME).write_text(f"{hashlib.sha256(b'forged').hexdigest()}  labels.npy\n")

    out = run_cli("verify", str(dest), expect=3)

    assert "disagrees with" in out.stderr


def test_a_signed_partial_dest_verifies_against_the_trusted_key(settings, file_target, tmp_path,
                                                                 other_machine):
    source = tmp_path / "signed-source"
    source.mkdir()
    for name in ("a.bin", "b.bin"):
        (source / name).write_bytes(os.urandom(1000))
    key = tmp_path / "keys" / "release.key"
    run_cli("keygen", str(key))
    run_cli("ingest", "v3", "--from", str(source), "--family", "files")
    run_cli("push", "v3", "--remote", file_target, "--sign", str(key))
    dest = tmp_path / "dest"

    pull("v3", "--remote", file_target, "--include", "a.bin", "--dest", str(dest))
    out = run_cli("verify", str(dest), "--trusted-key", f"{key}.pub")

    assert (dest / SIGNATURE_NAME).is_file() and not (dest / "b.bin").exists()
    assert "All 1 file(s)" in out.stdout and "signed by" in out.stdout and "verified with" in out.stdout
