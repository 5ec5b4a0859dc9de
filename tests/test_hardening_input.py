"""Malformed input from outside (remote files, local files, config) ends in a clear error, never a bug.

Every case names the file, exits with the code of its error class, and shows no
traceback; `list` reports broken entries and lists the rest; a signature is only
claimed for what it covers.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from modelreg.errors import InvalidArtifact
from modelreg.families.v9 import artifacts
from modelreg.layout import SIGNATURE_NAME, tag_key, version_key
from modelreg.manifest import canonical_json
from modelreg.storage import open_storage
from modelreg.trust.keys import generate_keypair
from tests.helpers import make_bundle, run_cli

DEEP = b"[" * 20_000 + b"]" * 20_000


@pytest.fixture
def bundle(settings, tmp_path):
    return make_bundle(settings, "v9", {"weights.h5": os.urandom(20_000), "labels.npy": b"labels"}, tmp_path)


def assert_clean_failure(out, *names: str) -> None:
    assert "Traceback" not in out.stderr and "Internal error" not in out.stderr, out.stderr
    for name in names:
        assert name in out.stderr, out.stderr


def write_remote(spec, key: str, data: bytes) -> None:
    storage = open_storage(spec)
    storage.write(key, data)
    storage.close()


# -- 9. malformed remote files ------------------------------------------------------

def test_a_tag_file_with_non_string_fields_is_a_clear_error(bundle, target, remote):
    run_cli("push", "v9", "--remote", target)
    write_remote(remote, tag_key("emotion", "production"), canonical_json(
        {"name": "emotion", "tag": "production", "version": 5, "manifest_sha256": ["x"]}))
    out = run_cli("pull", "production", "--remote", target, expect=1)
    assert_clean_failure(out, "tags/emotion/production.json", "schema")


@pytest.mark.parametrize("where", ["tag", "manifest"])
def test_deeply_nested_json_is_a_clear_error(bundle, file_target, file_remote, where):
    run_cli("push", "v9", "--remote", file_target)
    key = tag_key("emotion", "deep") if where == "tag" else version_key("emotion", "deep")
    write_remote(file_remote, key, DEEP)
    out = run_cli("pull", "deep", "--remote", file_target, expect=1)
    assert_clean_failure(out, "nested too deeply")


def test_a_garbage_signature_warns_without_trusted_keys(bundle, target, remote, tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", target)
    write_remote(remote, version_key("emotion", "v9", SIGNATURE_NAME), DEEP)
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "consumer-cache"))
    out = run_cli("pull", "v9", "--remote", target)
    assert "signature present but unreadable" in out.stdout and "nested too deeply" in out.stdout


def test_a_garbage_signature_is_untrusted_with_trusted_keys(bundle, file_target, file_remote, settings,
                                                           tmp_path, monkeypatch):
    run_cli("push", "v9", "--remote", file_target)
    write_remote(file_remote, version_key("emotion", "v9", SIGNATURE_NAME), b"not a signature")
    _private, public = generate_keypair(tmp_path / "release")
    keys = settings.workspace / "manifests" / "trusted_keys"
    keys.mkdir(parents=True, exist_ok=True)
    shutil.copy(public, keys / "release.pub")
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "consumer-cache"))
    out = run_cli("pull", "v9", "--remote", file_target, expect=4)
    assert_clean_failure(out, "model.sig", "unreadable")


def test_verify_directory_without_keys_claims_only_what_the_signature_covers(bundle, file_target, tmp_path):
    private, _public = generate_keypair(tmp_path / "release")
    run_cli("push", "v9", "--remote", file_target, "--sign", str(private))
    dest = tmp_path / "out"
    run_cli("pull", "v9", "--remote", file_target, "--dest", str(dest))
    out = run_cli("verify", str(dest))
    assert "not verified" in out.stdout and "covers 4 of 4 files" in out.stdout
    (dest / "extra.txt").write_text("not signed")
    out = run_cli("verify", str(dest))
    assert "signed by" not in out.stdout and "covers 4 of 5 files" in out.stdout


# -- 9. malformed local files -------------------------------------------------------

def test_labels_saved_as_npz_are_an_invalid_artifact(tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, labels=np.array(["a", "b"]))
    with pytest.raises(InvalidArtifact, match=r"\.npz archive"):
        artifacts.read_npy(path, "labels")
    with pytest.raises(InvalidArtifact, match=r"\.npz archive"):
        artifacts.read_npy(path.read_bytes(), "labels")
    with pytest.raises(InvalidArtifact, match="1-D array of strings"):
        artifacts.check_labels({"labels": 1}, str(path))


def test_ingest_of_npz_labels_names_the_file(tmp_path):
    for name in ("w.h5", "mean.npy", "std.npy"):
        (tmp_path / name).write_bytes(b"x")
    np.savez(tmp_path / "labels.npz", labels=np.array(["a", "b"]))
    out = run_cli("ingest", "v9", "--weights", str(tmp_path / "w.h5"), "--labels",
                  str(tmp_path / "labels.npz"), "--mean", str(tmp_path / "mean.npy"), "--std",
                  str(tmp_path / "std.npy"), expect=1)
    assert_clean_failure(out, str(tmp_path / "labels.npz"), ".npz archive")


@pytest.mark.parametrize("text", [
    "remotes = 5\n",
    '[remotes.team]\nurl = "file:///tmp/x"\nmax_attempts = "abc"\n',
    'trusted_keys = "/etc/modelreg/release.pub"\n',
    "default_model = 3\n",
    '[remotes.team]\nurl = 7\n',
])
def test_config_values_of_the_wrong_type_are_a_config_error(settings, text):
    settings.config_path.parent.mkdir(parents=True, exist_ok=True)
    settings.config_path.write_text(text)
    out = run_cli("list", expect=1)
    assert_clean_failure(out, str(settings.config_path), "invalid")


# -- 10. list survives broken entries --------------------------------------------------

def test_list_reports_broken_entries_and_lists_the_rest(bundle, settings, target, remote, tmp_path):
    run_cli("push", "v9", "--remote", target)
    make_bundle(settings, "v10", {"weights.h5": b"other"}, tmp_path)
    run_cli("push", "v10", "--remote", target)
    run_cli("tag", "v9", "production", "--remote", target)
    write_remote(remote, tag_key("emotion", "staging"), b'{"name": 1}')
    write_remote(remote, version_key("emotion", "v10"), b"garbage")
    out = run_cli("list", "--remote", target)
    assert "v9" in out.stdout and "production" in out.stdout
    assert "tags/emotion/staging.json" in out.stderr and "models/emotion/v10/manifest.json" in out.stderr
    assert "2 entries" in out.stderr and "Traceback" not in out.stderr
    listed = json.loads(run_cli("list", "--remote", target, "--json").stdout)
    assert [v["version"] for v in listed["versions"]] == ["v9"]
    assert sorted(b["key"] for b in listed["broken"]) == ["models/emotion/v10/manifest.json",
                                                          "tags/emotion/staging.json"]
