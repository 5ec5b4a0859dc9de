"""Tag history (`tag-history`), `rollback`, and how a machine's rollback protection treats a
deliberate rollback, through the real CLI on every backend."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from modelreg.config import Settings
from modelreg.remote.index import Tag
from modelreg.remote.tag_history import new_move, write_move
from modelreg.storage import open_storage
from modelreg.trust.keys import generate_keypair, key_fingerprint, load_public_key
from tests.helpers import make_bundle, run_cli
from tests.test_trust import new_consumer, trust

EXIT_UNTRUSTED = 4


def history(target: str, tag: str = "production") -> dict:
    return json.loads(run_cli("tag-history", tag, "--remote", target, "--json").stdout)


@pytest.fixture
def two_versions(settings: Settings, target: str, tmp_path: Path) -> str:
    """emotion:v1 and a newer emotion:v2 on the target, production moved v1 -> v2."""
    make_bundle(settings, "v1", {"w.bin": b"one"}, tmp_path)
    time.sleep(1.1)  # manifests record creation time to the second; the downgrade check orders by it
    make_bundle(settings, "v2", {"w.bin": b"two"}, tmp_path)
    for version in ("v1", "v2"):
        run_cli("push", version, "--remote", target)
    run_cli("tag", "v1", "production", "--remote", target)
    run_cli("tag", "v2", "production", "--remote", target)
    return target


def test_every_tag_move_is_recorded_newest_first_outside_the_tags(two_versions, remote):
    moves = history(two_versions)["moves"]
    assert [(m["previous"] and m["previous"]["version"], m["new"]["version"]) for m in moves] == [
        ("v1", "v2"), (None, "v1")]
    assert all(m["action"] == "tag" and "@" in m["who"] and m["when"].endswith("Z") for m in moves)
    run_cli("tag", "v2", "production", "--remote", two_versions)  # already there: no record
    assert len(history(two_versions)["moves"]) == 2
    listed = json.loads(run_cli("list", "--remote", two_versions, "--json").stdout)
    assert {v["version"]: v["tags"] for v in listed["versions"]} == {"v1": [], "v2": ["production"]}
    assert listed["broken"] == []
    with open_storage(remote) as storage:
        assert len([k for k in storage.list("tag-history/emotion/production/") if k.endswith(".json")]) == 2


def test_tag_json_names_the_record_it_wrote(two_versions):
    moved = json.loads(run_cli("tag", "v1", "production", "--remote", two_versions, "--json").stdout)
    assert (moved["tag"], moved["version"]) == ("production", "v1")
    assert moved["record"]["id"] == history(two_versions)["moves"][0]["id"]
    again = json.loads(run_cli("tag", "v1", "production", "--remote", two_versions, "--json").stdout)
    assert again["record"] is None


def test_rollback_moves_the_tag_back_and_a_second_rollback_undoes_it(two_versions):
    out = run_cli("rollback", "production", "--remote", two_versions)
    assert "from v2 to v1" in out.stdout
    shown = json.loads(run_cli("show", "production", "--remote", two_versions, "--json").stdout)
    assert shown["version"] == "v1"
    newest = history(two_versions)["moves"][0]
    assert newest["action"] == "rollback" and newest["previous"]["version"] == "v2"
    again = json.loads(run_cli("rollback", "production", "--remote", two_versions, "--json").stdout)
    assert again["tag"]["version"] == "v2" and len(history(two_versions)["moves"]) == 4


def test_rollback_of_a_tag_created_at_its_version_is_refused(two_versions):
    run_cli("tag", "v1", "staging", "--remote", two_versions)
    out = run_cli("rollback", "staging", "--remote", two_versions, expect=1)
    assert "no earlier version" in out.stderr
    assert "does not exist" in run_cli("rollback", "nightly", "--remote", two_versions, expect=1).stderr


def test_rollback_onto_a_yanked_version_is_refused_unless_allowed(two_versions):
    run_cli("yank", "v1", "--reason", "bad labels", "--remote", two_versions)
    out = run_cli("rollback", "production", "--remote", two_versions, expect=EXIT_UNTRUSTED)
    assert "bad labels" in out.stderr
    assert len(history(two_versions)["moves"]) == 2  # nothing recorded
    run_cli("rollback", "production", "--remote", two_versions, "--allow-yanked")


def test_an_unsigned_rollback_is_a_downgrade_for_machines_that_saw_the_newer_version(two_versions, tmp_path,
                                                                                       monkeypatch):
    new_consumer(tmp_path, monkeypatch, "server")
    run_cli("pull", "production", "--remote", two_versions)
    run_cli("rollback", "production", "--remote", two_versions)
    refused = run_cli("pull", "production", "--remote", two_versions, expect=EXIT_UNTRUSTED)
    assert "deliberate rollback" in refused.stderr and "--allow-downgrade" in refused.stderr
    run_cli("pull", "production", "--remote", two_versions, "--allow-downgrade")


def test_a_rollback_signed_by_a_trusted_key_is_accepted_without_allow_downgrade(two_versions, tmp_path,
                                                                               monkeypatch):
    private, public = generate_keypair(tmp_path / "keys" / "release")
    for version in ("v1", "v2"):
        run_cli("push", version, "--remote", two_versions, "--sign", str(private))
    trust(public, new_consumer(tmp_path, monkeypatch, "server"))
    run_cli("pull", "production", "--remote", two_versions)
    run_cli("rollback", "production", "--remote", two_versions, "--sign", str(private))
    accepted = run_cli("pull", "production", "--remote", two_versions)
    fingerprint = key_fingerprint(load_public_key(public))
    assert "emotion:v1" in accepted.stdout and f"signed by trusted key {fingerprint}" in accepted.stderr
    assert history(two_versions)["moves"][0]["signature"].startswith(f"signed by {fingerprint} (verified")


def test_a_record_whose_tag_move_did_not_happen_is_shown_as_not_applied(two_versions, remote):
    """The record is written before the tag file: a crash in between leaves a record the tag disagrees with."""
    with open_storage(remote) as storage:
        current = Tag("emotion", "production", "v2", history(two_versions)["current"]["manifest_sha256"])
        move, data = new_move(current, Tag("emotion", "production", "v1", "0" * 64), "tag")
        write_move(storage, move, data, None)
        storage.write(f"tag-history/emotion/production/{move.record_id[:-8]}00000000.json", b"{broken")
    report = history(two_versions)
    assert [m["applied"] for m in report["moves"]] == [False, True, True]
    assert len(report["broken"]) == 1 and "not valid UTF-8 JSON" in report["broken"][0]["error"]
    text = run_cli("tag-history", "production", "--remote", two_versions)
    assert "not applied" in text.stdout and "skipped" in text.stderr
