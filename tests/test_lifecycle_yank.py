"""Withdrawn versions (`yank`, `unyank`, `--allow-yanked`) through the real CLI, on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import modelreg
from modelreg.errors import Yanked
from modelreg.layout import YANK_NAME, YANK_SIGNATURE_NAME, version_key
from modelreg.storage import open_storage
from modelreg.trust.keys import generate_keypair, key_fingerprint, load_public_key
from tests.helpers import run_cli
from tests.test_trust import new_consumer, trust

EXIT_UNTRUSTED = 4


WEIGHTS = b"one" * 1000


@pytest.fixture
def published(target: str, tmp_path: Path) -> str:
    """emotion:v1 (family `files`, so it loads as a directory) pushed to the target, pinned here."""
    source = tmp_path / "files-v1"
    source.mkdir()
    (source / "weights.bin").write_bytes(WEIGHTS)
    run_cli("ingest", "v1", "--from", str(source), "--family", "files")
    run_cli("push", "v1", "--remote", target)
    return target


def test_pull_of_a_yanked_version_is_refused_with_the_reason(published, tmp_path, monkeypatch):
    out = run_cli("yank", "v1", "--reason", "labels shifted by one", "--remote", published, "--json")
    record = json.loads(out.stdout)["yanked"]
    assert record["reason"] == "labels shifted by one" and "@" in record["yanked_by"]
    new_consumer(tmp_path, monkeypatch, "a")
    refused = run_cli("pull", "v1", "--remote", published, expect=EXIT_UNTRUSTED)
    assert "labels shifted by one" in refused.stderr and "--allow-yanked" in refused.stderr
    allowed = run_cli("pull", "v1", "--remote", published, "--allow-yanked")
    assert "Pulled emotion:v1" in allowed.stdout and "labels shifted by one" in allowed.stderr


def test_a_pinned_cached_version_is_refused_after_its_yank(published, tmp_path):
    """The publisher's own workspace pins v1 and its cache holds it: neither makes it usable."""
    assert (Path.cwd() / "manifests" / "emotion" / "v1.json").is_file()
    run_cli("yank", "v1", "--reason", "leaks test data", "--remote", published)
    refused = run_cli("pull", "v1", "--remote", published, expect=EXIT_UNTRUSTED)
    assert "leaks test data" in refused.stderr
    with pytest.raises(Yanked, match="leaks test data"):
        modelreg.load("v1", published)
    assert (modelreg.load("v1", published, allow_yanked=True) / "weights.bin").read_bytes() == WEIGHTS


def test_a_cached_version_sees_a_yank_made_elsewhere_once_the_check_interval_passed(published, tmp_path,
                                                                                   monkeypatch):
    new_consumer(tmp_path, monkeypatch, "server")
    run_cli("pull", "v1", "--remote", published)
    server_cache = tmp_path / "cache-server"
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "cache-publisher"))
    run_cli("yank", "v1", "--reason", "wrong normalisation", "--remote", published)
    monkeypatch.setenv("MODELREG_CACHE", str(server_cache))
    within = run_cli("pull", "v1", "--remote", published)
    assert "from the local cache" in within.stdout  # answer from 0 s ago is trusted for an hour
    stale = run_cli("pull", "v1", "--remote", published, expect=EXIT_UNTRUSTED,
                    env={"MODELREG_YANK_CHECK_INTERVAL": "0"})
    assert "wrong normalisation" in stale.stderr
    offline = run_cli("pull", "v1", "--remote", published, "--offline", expect=EXIT_UNTRUSTED)
    assert "wrong normalisation" in offline.stderr  # the cache now remembers the yank


def test_a_tag_pointing_at_a_yanked_version_warns_and_pulls_through_it_are_refused(published, tmp_path,
                                                                                  monkeypatch):
    run_cli("tag", "v1", "production", "--remote", published)
    run_cli("yank", "v1", "--reason", "crashes on empty input", "--remote", published)
    again = run_cli("tag", "v1", "production", "--remote", published)
    assert "withdrawn" in again.stderr
    listed = run_cli("list", "--remote", published)
    assert "YANKED: crashes on empty input" in listed.stdout and "tag emotion:production" in listed.stderr
    versions = json.loads(run_cli("list", "--remote", published, "--json").stdout)["versions"]
    assert versions[0]["yanked"]["reason"] == "crashes on empty input"
    shown = run_cli("show", "production", "--remote", published)
    assert "YANKED" in shown.stdout and "crashes on empty input" in shown.stdout
    assert json.loads(run_cli("show", "v1", "--remote", published, "--json").stdout)["yanked"]["version"] == "v1"
    new_consumer(tmp_path, monkeypatch, "b")
    refused = run_cli("pull", "production", "--remote", published, expect=EXIT_UNTRUSTED)
    assert "Tag emotion:production points at emotion:v1" in refused.stderr


def test_unyank_makes_the_version_usable_again(published, tmp_path, monkeypatch):
    run_cli("yank", "v1", "--reason", "mistake", "--remote", published)
    second = run_cli("yank", "v1", "--reason", "again", "--remote", published, expect=1)
    assert "mistake" in second.stderr and "unyank" in second.stderr
    out = json.loads(run_cli("unyank", "v1", "--remote", published, "--json").stdout)
    assert out["unyanked"]["reason"] == "mistake"
    run_cli("pull", "v1", "--remote", published)  # this machine's record was updated by unyank
    new_consumer(tmp_path, monkeypatch, "c")
    run_cli("pull", "v1", "--remote", published)
    assert "not yanked" in run_cli("unyank", "v1", "--remote", published, expect=1).stderr
    assert json.loads(run_cli("show", "v1", "--remote", published, "--json").stdout)["yanked"] is None


def test_a_signed_yank_names_its_signer_and_a_badly_signed_one_still_refuses(published, remote, tmp_path,
                                                                              monkeypatch):
    private, public = generate_keypair(tmp_path / "keys" / "release")
    run_cli("push", "v1", "--remote", published, "--sign", str(private))  # adds model.sig
    run_cli("yank", "v1", "--reason", "superseded", "--sign", str(private), "--remote", published)
    fingerprint = key_fingerprint(load_public_key(public))
    workspace = new_consumer(tmp_path, monkeypatch, "d")
    shown = json.loads(run_cli("show", "v1", "--remote", published, "--json").stdout)
    assert shown["yanked"]["signature"].startswith(f"signed by {fingerprint} (claimed")
    trust(public, workspace)
    shown = json.loads(run_cli("show", "v1", "--remote", published, "--json").stdout)
    assert shown["yanked"]["signature"].startswith(f"signed by {fingerprint} (verified")
    with open_storage(remote) as storage:
        storage.write(version_key("emotion", "v1", YANK_SIGNATURE_NAME), b"{not a signature")
    refused = run_cli("pull", "v1", "--remote", published, expect=EXIT_UNTRUSTED)
    assert "superseded" in refused.stderr and "NOT TRUSTED" in refused.stderr  # a yank only makes things stricter


def test_a_malformed_yank_record_still_withdraws_the_version(published, remote, tmp_path, monkeypatch):
    with open_storage(remote) as storage:
        storage.write(version_key("emotion", "v1", YANK_NAME), b"[1, 2")
    new_consumer(tmp_path, monkeypatch, "e")
    refused = run_cli("pull", "v1", "--remote", published, expect=EXIT_UNTRUSTED)
    assert "unreadable" in refused.stderr and YANK_NAME in refused.stderr


def test_yank_needs_a_reason_and_the_remote(published):
    assert "reason" in run_cli("yank", "v1", "--reason", "  ", "--remote", published, expect=2).stderr
    assert "--offline" in run_cli("yank", "v1", "--reason", "x", "--remote", published, "--offline",
                                  expect=2).stderr
