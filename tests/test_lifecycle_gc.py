"""`modelreg delete` and `modelreg gc` on every backend, through the real CLI.

Ages: file:// and SSH objects are backdated with os.utime (both servers run on this
machine, so their registry directories are local paths); S3 objects cannot be
backdated, so on SeaweedFS the test waits and uses a grace period of seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelreg import transfer
from modelreg.layout import blob_key, tag_key, version_key
from modelreg.refs import Ref
from modelreg.storage import open_storage
from tests.helpers import make_bundle, run_cli
from tests.storage.test_contract import leave_unfinished_write, scheme

S3_WAIT = 8.0
"""Seconds an S3 object is left to age; older than `S3_GRACE` even with one-second dates."""
S3_GRACE = "5s"


def push(settings, remote, version: str, contents: dict[str, bytes], tmp_path: Path):
    manifest = make_bundle(settings, version, contents, tmp_path)
    transfer.push(settings, Ref("emotion", version), remote)
    return manifest


def age_for_gc(remote, keys: list[str]) -> str:
    """Make `keys` older than the grace period returned, for a gc run soon after.

    file:// and SSH: backdated by two days, grace 1d. S3: waited for (objects created after
    this call are younger than the grace if gc lists them within about three seconds: S3 dates have
    a resolution of one second).
    """
    if scheme(remote) == "s3":
        time.sleep(S3_WAIT)
        return S3_GRACE
    past = time.time() - 2 * 86400
    for key in keys:
        os.utime(Path(urlsplit(remote.url).path).joinpath(*key.split("/")), (past, past))
    return "1d"


def gc_json(*args: str, expect: int = 0) -> dict:
    return json.loads(run_cli("gc", "--remote", "target", "--json", *args, expect=expect).stdout)


def stored(remote, prefix: str = "") -> list[str]:
    with open_storage(remote) as storage:
        return storage.list(prefix)


# -- delete ---------------------------------------------------------------------------------------

def test_delete_removes_the_manifest_first_and_the_version_disappears(settings, remote, target, tmp_path):
    v1 = push(settings, remote, "v1", {"a.bin": b"only in v1", "shared.bin": b"in both"}, tmp_path)
    push(settings, remote, "v2", {"b.bin": b"only in v2", "shared.bin": b"in both"}, tmp_path)

    result = json.loads(run_cli("delete", "v1", "--remote", target, "--json").stdout)

    assert result["deleted"][:2] == [version_key("emotion", "v1"), version_key("emotion", "v1", "SHA256SUMS")]
    assert result["manifest_sha256"] == hashlib.sha256(v1.to_bytes()).hexdigest()
    assert result["dangling_tags"] == []
    assert stored(remote, "models/") == sorted([version_key("emotion", "v2"),
                                                version_key("emotion", "v2", "SHA256SUMS")])
    assert all(blob_key(entry.sha256) in stored(remote, "blobs/") for entry in v1.files)  # left to gc
    listed = json.loads(run_cli("list", "--remote", target, "--json").stdout)
    assert [version["version"] for version in listed["versions"]] == ["v2"]
    failed = run_cli("pull", "v1", "--remote", target, expect=1)  # the cache no longer counts it as there
    assert "emotion:v1 is neither a version nor a tag" in failed.stderr


def test_delete_refuses_a_tagged_version_unless_forced(settings, remote, target, tmp_path):
    push(settings, remote, "v1", {"a.bin": b"tagged"}, tmp_path)
    run_cli("tag", "v1", "production", "--remote", target)

    refused = run_cli("delete", "v1", "--remote", target, expect=1)

    assert "emotion:production point at it" in refused.stderr and "--force" in refused.stderr
    assert version_key("emotion", "v1") in stored(remote)
    forced = run_cli("delete", "v1", "--force", "--remote", target)
    assert "emotion:production pointed at emotion:v1 and now dangle" in forced.stderr
    assert stored(remote, "models/") == []
    assert stored(remote, "tags/") == [tag_key("emotion", "production")]


def test_delete_refuses_a_tag_name_and_a_missing_version(settings, remote, target, tmp_path):
    push(settings, remote, "v1", {"a.bin": b"x"}, tmp_path)
    run_cli("tag", "v1", "production", "--remote", target)

    as_tag = run_cli("delete", "production", "--remote", target, expect=2)
    missing = run_cli("delete", "v7", "--remote", target, expect=1)

    assert "emotion:production is a tag" in as_tag.stderr and "modelreg delete emotion:v1" in as_tag.stderr
    assert "emotion:v7 is not a version" in missing.stderr
    assert version_key("emotion", "v1") in stored(remote)


def test_delete_finishes_a_delete_interrupted_after_the_manifest(settings, remote, target, tmp_path):
    push(settings, remote, "v1", {"a.bin": b"x"}, tmp_path)
    with open_storage(remote) as storage:
        storage.delete(version_key("emotion", "v1"))  # as a delete killed right after its first step

    result = json.loads(run_cli("delete", "v1", "--remote", target, "--json").stdout)

    assert result["manifest_sha256"] is None
    assert result["deleted"] == [version_key("emotion", "v1", "SHA256SUMS")]
    assert stored(remote, "models/") == []


# -- gc -------------------------------------------------------------------------------------------

def test_gc_sweeps_blobs_of_deleted_versions_and_keeps_shared_ones(settings, remote, target, tmp_path):
    push(settings, remote, "v1", {"a.bin": b"only in v1 " * 100, "shared.bin": b"in both"}, tmp_path)
    v2 = push(settings, remote, "v2", {"b.bin": b"only in v2", "shared.bin": b"in both"}, tmp_path)
    run_cli("delete", "v1", "--remote", target)
    only_v1 = blob_key(hashlib.sha256(b"only in v1 " * 100).hexdigest())

    result = gc_json("--grace", "0s")

    assert [(r["key"], r["kind"], r["size"]) for r in result["removed"]] == [(only_v1, "blob", 1100)]
    assert result["bytes_freed"] == 1100 and result["dry_run"] is False
    assert sorted(stored(remote, "blobs/")) == sorted({blob_key(entry.sha256) for entry in v2.files})
    shutil.rmtree(settings.cache_dir)
    pulled = transfer.pull(settings, Ref("emotion", "v2"), remote)  # every byte downloaded and verified
    assert {entry.path for entry in pulled.downloaded} == {"b.bin", "shared.bin"}


def test_gc_keeps_unreferenced_blobs_younger_than_the_grace_period(settings, remote, target, tmp_path):
    old = b"left by a deleted version"
    young = b"uploaded by a push still in flight (no manifest yet)"
    push(settings, remote, "v1", {"old.bin": old}, tmp_path)
    run_cli("delete", "v1", "--remote", target)
    grace = age_for_gc(remote, [blob_key(hashlib.sha256(old).hexdigest())])
    with open_storage(remote) as storage:
        storage.write(blob_key(hashlib.sha256(young).hexdigest()), young)

    result = gc_json("--grace", grace)

    assert [r["key"] for r in result["removed"]] == [blob_key(hashlib.sha256(old).hexdigest())]
    assert [k["key"] for k in result["kept_young"]] == [blob_key(hashlib.sha256(young).hexdigest())]
    assert stored(remote, "blobs/") == [blob_key(hashlib.sha256(young).hexdigest())]
    default = gc_json()  # 24h: the young blob is still kept
    assert default["removed"] == [] and len(default["kept_young"]) == 1


def test_gc_dry_run_prints_the_plan_and_deletes_nothing(settings, remote, target, tmp_path):
    push(settings, remote, "v1", {"a.bin": b"doomed"}, tmp_path)
    run_cli("delete", "v1", "--remote", target)
    with open_storage(remote) as storage:
        before = storage.list("")

    plan = run_cli("gc", "--dry-run", "--grace", "0s", "--remote", target)

    doomed = blob_key(hashlib.sha256(b"doomed").hexdigest())
    assert f"would delete {doomed}  6 B" in plan.stdout
    assert "Dry run, nothing deleted: 1 unreferenced blob(s)" in plan.stdout and "6 B would be freed" in plan.stdout
    assert stored(remote) == before
    done = run_cli("gc", "--grace", "0s", "--remote", target)
    assert f"deleted {doomed}  6 B" in done.stdout and "6 B freed" in done.stdout
    assert stored(remote, "blobs/") == []


def test_gc_sweeps_stale_unfinished_uploads_and_keeps_young_ones(settings, remote, target, request):
    leave_unfinished_write(request, remote, blob_key("ab" * 32))
    with open_storage(remote) as storage:
        stale_keys = [upload.upload_id for upload in storage.list_uploads("")]
    grace = age_for_gc(remote, stale_keys)
    leave_unfinished_write(request, remote, blob_key("cd" * 32))

    result = gc_json("--grace", grace)

    assert [(r["key"], r["kind"], r["size"]) for r in result["removed"]] == [(blob_key("ab" * 32), "upload", 10)]
    assert result["uploads_in_progress"] == 1 and result["bytes_freed"] == 10
    with open_storage(remote) as storage:
        assert [upload.key for upload in storage.list_uploads("")] == [blob_key("cd" * 32)]


def test_gc_refuses_to_sweep_when_a_manifest_is_broken(settings, remote, target, tmp_path):
    push(settings, remote, "v1", {"a.bin": b"orphan"}, tmp_path)
    run_cli("delete", "v1", "--remote", target)
    kept = hashlib.sha256(b"named by the broken manifest").hexdigest()
    with open_storage(remote) as storage:
        storage.write(version_key("emotion", "v3"), f'{{"files": [{{"sha256": "{kept}"'.encode())
        storage.write(blob_key(kept), b"named by the broken manifest")

    refused = run_cli("gc", "--grace", "0s", "--remote", target, expect=1)

    assert "Refusing to collect garbage" in refused.stderr and version_key("emotion", "v3") in refused.stderr
    assert "--allow-broken" in refused.stderr
    assert len(stored(remote, "blobs/")) == 2
    result = gc_json("--grace", "0s", "--allow-broken")
    assert [r["key"] for r in result["removed"]] == [blob_key(hashlib.sha256(b"orphan").hexdigest())]
    assert [b["key"] for b in result["broken_manifests"]] == [version_key("emotion", "v3")]
    assert stored(remote, "blobs/") == [blob_key(kept)]


def test_gc_leaves_keys_under_blobs_that_are_not_blob_keys(settings, remote, target):
    with open_storage(remote) as storage:
        storage.write("blobs/notes.txt", b"someone's file")

    result = gc_json("--grace", "0s")

    assert result["removed"] == [] and result["unknown_keys"] == ["blobs/notes.txt"]
    assert stored(remote, "blobs/") == ["blobs/notes.txt"]


@pytest.mark.parametrize("command", [["gc"], ["delete", "v1"]])
def test_space_commands_refuse_offline(file_target, command):
    result = run_cli("--offline", *command, "--remote", file_target, expect=2)
    assert "--offline" in result.stderr


def test_gc_rejects_a_malformed_grace(file_target):
    result = run_cli("gc", "--grace", "soon", "--remote", file_target, expect=2)
    assert "Invalid --grace 'soon'" in result.stderr


def test_push_uploads_again_a_reused_blob_that_vanished_before_its_manifest(settings, remote, tmp_path,
                                                                             monkeypatch):
    """The race gc's grace cannot cover: a push reuses an old blob, gc sweeps it before the new
    manifest appears. Here the blob is deleted while the push uploads its other blob."""
    push(settings, remote, "v1", {"shared.bin": b"old blob" * 1000}, tmp_path)
    with open_storage(remote) as storage:
        storage.delete(version_key("emotion", "v1"))  # v1 deleted: its blob is now unreferenced
    shared_key = blob_key(hashlib.sha256(b"old blob" * 1000).hexdigest())
    real_upload = transfer.upload_blob

    def upload_while_gc_sweeps(cache, storage, entry, reporter):
        with open_storage(remote) as sweeper:
            sweeper.delete(shared_key)
        return real_upload(cache, storage, entry, reporter)

    monkeypatch.setattr(transfer, "upload_blob", upload_while_gc_sweeps)
    make_bundle(settings, "v2", {"shared.bin": b"old blob" * 1000, "new.bin": b"new"}, tmp_path)

    result = transfer.push(settings, Ref("emotion", "v2"), remote)

    assert [e.path for e in result.skipped] == ["shared.bin"]
    assert [e.path for e in result.restored] == ["shared.bin"]
    with open_storage(remote) as storage:
        assert storage.stat(shared_key) == len(b"old blob" * 1000)
