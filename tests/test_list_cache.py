"""`modelreg list` reuses manifests and tags read before, and never shows a replaced one as current."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelreg.config import RemoteSpec
from modelreg.layout import version_key
from modelreg.manifest import FileEntry, Manifest
from modelreg.remote.index import Tag, write_tag
from modelreg.storage import open_storage
from modelreg.transfer import run_all
from tests.helpers import register_remote, run_cli

BLOB = "ab" * 32


def manifest_bytes(version: str, accuracy: float = 0.5) -> bytes:
    """A small valid manifest; all versions name the same (absent) blob: `list` reads no blob."""
    return Manifest(name="emotion", version=version, files=(FileEntry("w.bin", "weights", 10, BLOB),),
                    model={"family": "files", "input_shape": [], "labels": ["a"], "hyperparameters": {}},
                    metrics={"accuracy": accuracy}, provenance={"modelreg_version": "test"},
                    created="2026-01-01T00:00:00Z").to_bytes()


def publish_versions(spec: RemoteSpec, count: int) -> dict[str, bytes]:
    """`count` versions written straight to the remote (as a push's last step does), and tag `prod`."""
    versions = {f"v{index}": manifest_bytes(f"v{index}") for index in range(count)}
    with open_storage(spec) as storage:
        run_all(storage, lambda item: storage.write(version_key("emotion", item[0]), item[1],
                                                    create_only=True), list(versions.items()))
        write_tag(storage, Tag("emotion", "prod", "v1", Manifest.from_bytes(
            versions["v1"], source="test").digest))
    return versions


def listed(target: str, env: dict | None = None) -> dict[str, dict]:
    result = run_cli("list", "--remote", target, "--json", env=env)
    data = json.loads(result.stdout)
    assert data["broken"] == []
    return {row["version"]: row for row in data["versions"]}


def age_remote_files(spec: RemoteSpec, seconds: float) -> None:
    """Set back the mtimes of a file:// or ssh:// registry (a directory on this machine in the tests),
    as if it had been pushed long ago; S3 needs nothing (its ETags come from the content)."""
    if spec.url.startswith("s3://"):
        return
    root = Path(urlsplit(spec.url).path)
    past = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))


def test_second_list_of_200_versions_reads_no_object(settings, s3_remote, seaweed):
    target = register_remote(settings, s3_remote)
    versions = publish_versions(s3_remote, 200)
    first = listed(target)
    assert sorted(first) == sorted(versions)
    assert first["v1"]["tags"] == ["prod"] and first["v2"]["tags"] == []

    # The list-only key may list the bucket but every GET is refused: a list that needs to
    # read one manifest or tag fails with it, so this one succeeding proves it read none.
    list_only = {"AWS_ACCESS_KEY_ID": seaweed.list_only.access_key,
                 "AWS_SECRET_ACCESS_KEY": seaweed.list_only.secret_key}
    assert listed(target, env=list_only) == first

    fresh_cache = {**list_only, "MODELREG_CACHE": str(settings.cache_dir.parent / "other-cache")}
    refused = run_cli("list", "--remote", target, env=fresh_cache, expect=None)
    assert refused.returncode == 5, refused.stderr


def test_list_shows_a_version_deleted_and_pushed_again_with_other_content(target, remote):
    publish_versions(remote, 3)
    age_remote_files(remote, 3600)
    before = listed(target)
    replacement = manifest_bytes("v2", accuracy=0.9)  # the same size, other content
    assert len(replacement) == len(manifest_bytes("v2"))
    with open_storage(remote) as storage:
        storage.delete(version_key("emotion", "v2"))
        storage.write(version_key("emotion", "v2"), replacement, create_only=True)
    after = listed(target)
    assert after["v2"]["manifest"]["metrics"] == {"accuracy": 0.9}
    assert after["v2"]["digest"] != before["v2"]["digest"]
    assert after["v0"] == before["v0"]


def test_list_follows_a_moved_tag_and_a_deleted_version(target, remote):
    versions = publish_versions(remote, 3)
    age_remote_files(remote, 3600)
    assert listed(target)["v1"]["tags"] == ["prod"]
    with open_storage(remote) as storage:
        write_tag(storage, Tag("emotion", "prod", "v2", Manifest.from_bytes(versions["v2"], source="t").digest))
        storage.delete(version_key("emotion", "v0"))
    after = listed(target)
    assert sorted(after) == ["v1", "v2"]
    assert after["v1"]["tags"] == [] and after["v2"]["tags"] == ["prod"]


@pytest.mark.parametrize("damage", ["index", "object"])
def test_a_damaged_listing_cache_is_read_again_from_the_remote(settings, file_remote, file_target, damage):
    publish_versions(file_remote, 3)
    age_remote_files(file_remote, 3600)
    first = listed(file_target)
    if damage == "index":
        for index in (settings.cache_dir / "listings").iterdir():
            index.write_text('{"format": 1, "objects": 7}')
    else:
        for path in (settings.cache_dir / "metadata").rglob("*"):
            if path.is_file():
                path.write_bytes(manifest_bytes("v0", accuracy=0.1))
    assert listed(file_target) == first


def test_list_says_which_versions_the_local_cache_holds_byte_for_byte(settings, file_remote, file_target):
    from modelreg.local.cache import Cache
    from modelreg.refs import Ref

    versions = publish_versions(file_remote, 3)
    cache = Cache(settings.cache_dir)
    cache.save_manifest_bytes(Ref("emotion", "v1"), versions["v1"])
    cache.save_manifest_bytes(Ref("emotion", "v2"), manifest_bytes("v2", accuracy=0.9))  # not the remote's
    rows = listed(file_target)
    assert {version: row["cached"] for version, row in rows.items()} == {"v0": False, "v1": True, "v2": False}
