"""Remotes with fallbacks: `remote add NAME URL [URL ...]`, pull place by place, `push --all`.

The last place runs on every backend (file, S3, SSH); the first ones are file://
registries arranged to fail in a known way (empty, one blob damaged) or an SSH
URL on a closed port (unreachable).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from modelreg.config import RemoteSpec, Settings, add_remote
from modelreg.layout import blob_key, tag_key, version_key
from modelreg.refs import Ref
from modelreg.storage import open_storage
from modelreg.transfer import push
from tests.helpers import make_bundle, run_cli
from tests.servers.ssh import free_port

FILES = {"weights.h5": os.urandom(200_000), "labels.npy": b"labels", "mean.npy": b"mean" * 100}


@pytest.fixture
def bundle(settings: Settings, tmp_path: Path):
    return make_bundle(settings, "v9", FILES, tmp_path)


def file_place(tmp_path: Path, label: str) -> RemoteSpec:
    return RemoteSpec(url=(tmp_path / label).as_uri())


def closed_port_place() -> RemoteSpec:
    return RemoteSpec(url=f"ssh://user@127.0.0.1:{free_port()}/registry")


def holds(spec: RemoteSpec, manifest) -> bool:
    """Does the registry at `spec` hold the manifest and every blob of `manifest`?"""
    with open_storage(spec) as storage:
        keys = [version_key(manifest.name, manifest.version)] + [blob_key(e.sha256) for e in manifest.files]
        return all(storage.stat(key) is not None for key in keys)


def pull_json(*args: str, env: dict, expect: int = 0) -> dict:
    return json.loads(run_cli("pull", *args, "--json", env=env, expect=expect).stdout)


def fresh(tmp_path: Path, label: str) -> dict:
    return {"MODELREG_CACHE": str(tmp_path / f"cache-{label}")}


def test_remote_add_keeps_urls_in_order_and_copies_a_named_remotes_options(settings, target, remote,
                                                                          tmp_path):
    empty, second = file_place(tmp_path, "empty"), file_place(tmp_path, "second")
    run_cli("remote", "add", "team", empty.url, second.url, target)

    shown = json.loads(run_cli("remote", "show", "team", "--json").stdout)
    listed = json.loads(run_cli("remote", "list", "--json").stdout)

    assert shown["urls"] == [empty.url, second.url, remote.url]
    assert shown["places"][2]["options"] == remote.options
    assert [row["urls"] for row in listed["remotes"] if row["name"] == "team"] == [shown["urls"]]
    text = run_cli("remote", "show", "team").stdout
    assert text.index(f"1. {empty.url}") < text.index(f"2. {second.url}") < text.index(f"3. {remote.url}")


def test_pull_takes_each_blob_from_the_first_place_with_a_good_copy(settings, bundle, target, remote,
                                                                    tmp_path):
    empty, damaged = file_place(tmp_path, "empty"), file_place(tmp_path, "damaged")
    for place in (damaged, remote):
        push(settings, Ref("emotion", "v9"), place)
    weights = next(e for e in bundle.files if e.path == "weights.h5")
    with open_storage(damaged) as storage:
        storage.write(blob_key(weights.sha256), os.urandom(weights.size))  # same size, other bytes
    run_cli("remote", "add", "team", empty.url, damaged.url, target)
    dest = tmp_path / "dest"

    result = pull_json("v9", "--remote", "team", "--dest", str(dest), env=fresh(tmp_path, "a"))

    damaged_label, last_label = f"team ({damaged.url})", f"team ({remote.url})"
    assert result["manifest_from"] == damaged_label
    assert result["served_by"] == {"weights.h5": last_label, "labels.npy": damaged_label,
                                   "mean.npy": damaged_label}
    notes = "\n".join(result["notes"])
    assert f"weights.h5: damaged copy on {damaged_label}" in notes and weights.sha256[:12] in notes
    assert f"missing on team ({empty.url})" in notes
    run_cli("verify", str(dest))
    again = pull_json("v9", "--remote", "team", env=fresh(tmp_path, "a"))
    assert again["from_cache"] is True


def test_pull_prints_which_place_served_what(settings, bundle, remote, tmp_path):
    empty = file_place(tmp_path, "empty")
    push(settings, Ref("emotion", "v9"), remote)
    add_remote(settings, "team", empty.url, fallbacks=(remote,))

    out = run_cli("pull", "v9", "--remote", "team", env=fresh(tmp_path, "b"))

    assert f"Manifest from team ({remote.url}); files downloaded from team ({remote.url}):" in out.stdout
    assert f"missing on team ({empty.url})" in out.stderr


def test_unreachable_primary_falls_through_to_the_next_and_is_asked_once(settings, bundle, remote, tmp_path):
    push(settings, Ref("emotion", "v9"), remote)
    dead = closed_port_place()
    add_remote(settings, "team", dead.url, fallbacks=(remote,))

    started = time.monotonic()
    result = pull_json("v9", "--remote", "team", env=fresh(tmp_path, "c"))
    elapsed = time.monotonic() - started

    assert result["manifest_from"] == f"team ({remote.url})"
    assert set(result["served_by"].values()) == {f"team ({remote.url})"}
    unreachable = [note for note in result["notes"] if "unreachable" in note]
    assert len(unreachable) == 1 and "the manifest of emotion:v9" in unreachable[0]
    assert "connection refused" in unreachable[0]
    assert elapsed < 30


def test_a_mirror_that_is_not_needed_is_never_contacted(settings, bundle, remote, tmp_path):
    push(settings, Ref("emotion", "v9"), remote)
    add_remote(settings, "team", remote.url, options=remote.options,
               fallbacks=(RemoteSpec(url="ssh://user@unroutable.invalid/registry"),))

    result = pull_json("v9", "--remote", "team", env=fresh(tmp_path, "d"))

    assert result["notes"] == [] and len(result["downloaded"]) == 3
    assert set(result["served_by"].values()) == {f"team ({remote.url})"}


def test_push_all_reaches_every_place(settings, bundle, remote, tmp_path):
    first, second = file_place(tmp_path, "first"), file_place(tmp_path, "second")
    add_remote(settings, "team", first.url, fallbacks=(second, remote))

    out = json.loads(run_cli("push", "v9", "--remote", "team", "--all", "--json").stdout)

    assert out["ok"] and [p["place"] for p in out["places"]] == [
        f"team ({spec.url})" for spec in (first, second, remote)]
    assert all(len(place["uploaded"]) == 3 for place in out["places"])
    assert all(holds(spec, bundle) for spec in (first, second, remote))


def test_push_without_all_goes_to_the_first_place_only(settings, bundle, remote, tmp_path):
    second = file_place(tmp_path, "second")
    add_remote(settings, "team", remote.url, options=remote.options, fallbacks=(second,))

    run_cli("push", "v9", "--remote", "team")

    assert holds(remote, bundle) and not (tmp_path / "second").exists()


def test_push_all_reports_a_failed_place_and_still_pushes_the_others(settings, bundle, remote, tmp_path):
    first, dead = file_place(tmp_path, "first"), closed_port_place()
    add_remote(settings, "team", first.url, fallbacks=(dead, remote))

    out = run_cli("push", "v9", "--remote", "team", "--all", expect=5)

    assert holds(first, bundle) and holds(remote, bundle)
    assert f"FAILED: team ({dead.url})" in out.stdout
    assert "1 of 3 place(s) failed" in out.stderr and "connection refused" in out.stderr


def test_every_place_failing_raises_the_most_actionable_error_naming_each(settings, bundle, tmp_path):
    empty, damaged = file_place(tmp_path, "empty"), file_place(tmp_path, "damaged")
    push(settings, Ref("emotion", "v9"), damaged)
    labels = next(e for e in bundle.files if e.path == "labels.npy")
    with open_storage(damaged) as storage:
        storage.write(blob_key(labels.sha256), b"LABELS")
    add_remote(settings, "team", empty.url, fallbacks=(damaged,))

    out = run_cli("pull", "v9", "--remote", "team", env=fresh(tmp_path, "e"), expect=3)

    assert "No place of remote team could supply labels.npy" in out.stderr
    assert f"1. team ({empty.url}) (missing), 2. team ({damaged.url}) (damaged copy)" in out.stderr
    assert not (tmp_path / "cache-e" / "manifests" / "emotion" / "v9.json").exists()


def test_a_tag_that_resolves_differently_on_a_mirror_is_reported(settings, tmp_path, file_remote):
    first, second = file_place(tmp_path, "first"), file_remote
    v1 = make_bundle(settings, "v1", {"a.bin": b"one" * 100, "b.bin": b"shared"}, tmp_path)
    make_bundle(settings, "v2", {"a.bin": b"two" * 100, "b.bin": b"shared"}, tmp_path)
    push(settings, Ref("emotion", "v1"), first)
    for version in ("v1", "v2"):
        push(settings, Ref("emotion", version), second)
    add_remote(settings, "team", first.url, fallbacks=(second,))
    run_cli("tag", "v1", "prod", "--remote", first.url)
    run_cli("tag", "v2", "prod", "--remote", second.url)
    shared = next(e for e in v1.files if e.path == "b.bin")
    with open_storage(first) as storage:
        storage.delete(blob_key(shared.sha256))
        assert storage.stat(tag_key("emotion", "prod")) is not None

    result = pull_json("prod", "--remote", "team", env=fresh(tmp_path, "f"))

    assert result["ref"] == "emotion:v1" and result["served_by"]["b.bin"] == f"team ({second.url})"
    assert any("resolves to emotion:v2" in note and "that one was used" in note for note in result["notes"])


@pytest.mark.parametrize("fallbacks, problem", [
    ('"s3://b/p"', "a list of tables"),
    ('[{ endpoint_url = "http://x" }]', "a table with a url"),
    ('[{ url = 5 }]', "a table with a url"),
    ('[{ url = "s3://b/p", identity_file = "/k" }]', "do not apply to s3://"),
    ('[{ url = "ftp://h/p" }]', "Invalid registry URL"),
])
def test_malformed_fallbacks_in_the_config_are_a_clear_config_error(settings, fallbacks, problem):
    settings.config_path.parent.mkdir(parents=True, exist_ok=True)
    settings.config_path.write_text(f'[remotes.team]\nurl = "file:///r"\nfallbacks = {fallbacks}\n')

    out = run_cli("remote", "list", expect=1)

    assert "remotes.team.fallbacks" in out.stderr and problem in out.stderr
    assert str(settings.config_path) in out.stderr and "Traceback" not in out.stderr


def test_remote_add_refuses_an_option_no_url_takes(settings, tmp_path):
    out = run_cli("remote", "add", "team", (tmp_path / "a").as_uri(), (tmp_path / "b").as_uri(),
                  "--endpoint-url", "http://x", expect=2)

    assert "apply to none of the URLs" in out.stderr and not settings.config_path.exists()
