"""`modelreg diff A B`: refs from the cache or a remote, and directories, side by side."""

from __future__ import annotations

import json
from pathlib import Path

from modelreg.bundle import create_bundle
from modelreg.hashing import hash_bytes
from modelreg.refs import Ref
from tests.helpers import run_cli

LABELS = ["angry", "calm", "happy"]


def bundle(settings, tmp: Path, version: str, files: dict[str, bytes], *, labels=LABELS,
           hyperparameters=None, metrics=None, commit="a" * 40) -> None:
    """A cached, pinned version with these files, labels, hyper-parameters, metrics and git commit."""
    source = tmp / f"src-{version}"
    source.mkdir()
    for name, data in files.items():
        (source / name).write_bytes(data)
    create_bundle(settings, Ref("emotion", version), {name: ("other", source / name) for name in files},
                  model={"family": "test-files", "input_shape": [], "labels": list(labels),
                         "hyperparameters": hyperparameters or {"learning_rate": 0.001, "epochs": 10}},
                  metrics=metrics or {"accuracy": 0.7},
                  provenance={"modelreg_version": "test", "git_commit": commit,
                              "dataset_fingerprint": "d" * 64})


def diff_json(*args: str, expect: int = 1, env: dict | None = None) -> dict:
    return json.loads(run_cli("diff", *args, "--json", expect=expect, env=env).stdout)


def rows(result: dict, section: str) -> dict[str, dict]:
    return {row["key"]: row for row in result["sections"][section]}


def test_versions_with_the_same_content_are_identical_and_exit_0(settings, tmp_path):
    bundle(settings, tmp_path, "v1", {"w.bin": b"weights"})
    bundle(settings, tmp_path, "v2", {"w.bin": b"weights"})
    out = run_cli("diff", "v1", "v2", expect=0).stdout
    assert "identical: emotion:v1" in out and "emotion:v2" in out
    assert diff_json("v1", "v2", expect=0)["identical"] is True


def test_diff_of_a_remote_version_and_a_pulled_directory(settings, target, tmp_path):
    bundle(settings, tmp_path, "v1", {"w.bin": b"weights-1", "notes.txt": b"same", "old.txt": b"gone"},
           hyperparameters={"learning_rate": 0.001, "epochs": 10}, metrics={"accuracy": 0.70})
    bundle(settings, tmp_path, "v2", {"w.bin": b"weights-22", "notes.txt": b"same", "new.txt": b"new"},
           hyperparameters={"learning_rate": 0.01, "epochs": 10, "dropout": 0.2},
           metrics={"accuracy": 0.75}, commit="b" * 40)
    run_cli("push", "v1", "--remote", target)
    run_cli("push", "v2", "--remote", target)
    dest = tmp_path / "pulled-v1"
    elsewhere = {"MODELREG_CACHE": str(tmp_path / "second-cache")}  # a machine that has neither cached
    run_cli("pull", "v1", "--remote", target, "--dest", str(dest), env=elsewhere)

    result = diff_json(str(dest), "v2", "--remote", target, env=elsewhere)
    files = {change["path"]: change for change in result["files"]}
    assert files["w.bin"]["status"] == "changed"
    assert files["w.bin"]["a"] == {"sha256": hash_bytes(b"weights-1"), "size": 9}
    assert files["w.bin"]["b"] == {"sha256": hash_bytes(b"weights-22"), "size": 10}
    assert files["old.txt"]["status"] == "removed" and files["new.txt"]["status"] == "added"
    assert "notes.txt" not in files and result["unchanged_files"] == 1
    hyper = rows(result, "hyperparameters")
    assert (hyper["learning_rate"]["a"], hyper["learning_rate"]["b"]) == (0.001, 0.01)
    assert hyper["learning_rate"]["changed"] and not hyper["epochs"]["changed"]
    assert hyper["dropout"]["in_a"] is False and hyper["dropout"]["b"] == 0.2
    assert abs(rows(result, "metrics")["accuracy"]["delta"] - 0.05) < 1e-9
    provenance = rows(result, "provenance")
    assert provenance["git_commit"]["changed"] and not provenance["dataset_fingerprint"]["changed"]
    assert result["a"]["ref"] == "emotion:v1" and result["b"]["ref"] == "emotion:v2"
    assert target in result["b"]["label"]

    text = run_cli("diff", str(dest), "v2", "--remote", target, expect=1, env=elsewhere).stdout
    assert "~ w.bin" in text and "+ new.txt" in text and "- old.txt" in text
    assert "learning_rate" in text and "0.001" in text and "0.01" in text


def test_reordered_labels_are_a_difference(settings, tmp_path):
    bundle(settings, tmp_path, "v1", {"w.bin": b"w"}, labels=["angry", "calm", "happy"])
    bundle(settings, tmp_path, "v2", {"w.bin": b"w"}, labels=["calm", "angry", "happy"])
    result = diff_json("v1", "v2")
    assert result["files"] == [] and result["identical"] is False
    assert result["labels"]["reordered"] is True
    assert result["labels"]["added"] == [] and result["labels"]["removed"] == []
    assert "reordered" in run_cli("diff", "v1", "v2", expect=1).stdout


def test_a_plain_directory_compares_files_only(settings, tmp_path):
    bundle(settings, tmp_path, "v1", {"w.bin": b"weights", "x.txt": b"x"})
    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    (plain / "w.bin").write_bytes(b"weights")
    (plain / "sub" / "y.txt").write_bytes(b"y")
    result = diff_json("v1", str(plain))
    assert {c["path"]: c["status"] for c in result["files"]} == {"x.txt": "removed", "sub/y.txt": "added"}
    assert "hyperparameters" in result["not_comparable"] and result["b"]["digest"] is None


def test_a_directory_edited_after_pull_is_compared_as_it_is(settings, file_target, tmp_path):
    bundle(settings, tmp_path, "v1", {"w.bin": b"weights"})
    run_cli("push", "v1", "--remote", file_target)
    dest = tmp_path / "dest"
    run_cli("pull", "v1", "--remote", file_target, "--dest", str(dest))
    assert diff_json("v1", str(dest), "--remote", file_target, expect=0)["identical"] is True
    (dest / "w.bin").chmod(0o644)
    (dest / "w.bin").write_bytes(b"edited")
    result = diff_json("v1", str(dest), "--remote", file_target)
    assert [c["path"] for c in result["files"]] == ["w.bin"]
    assert "differ from its manifest.json" in result["b"]["notes"][0]


def test_offline_diff_uses_the_cache_and_refuses_what_is_not_cached(settings, file_target, tmp_path):
    bundle(settings, tmp_path, "v1", {"w.bin": b"one"})
    bundle(settings, tmp_path, "v2", {"w.bin": b"two"})
    result = diff_json("--offline", "v1", "v2", "--remote", file_target)
    assert [c["path"] for c in result["files"]] == ["w.bin"]
    refused = run_cli("--offline", "diff", "v1", "v9", "--remote", file_target, expect=1)
    assert "--offline" in refused.stderr and "emotion:v9" in refused.stderr
    assert refused.stdout == ""


def test_a_path_that_is_not_a_directory_is_refused(settings, tmp_path):
    bundle(settings, tmp_path, "v1", {"w.bin": b"one"})
    refused = run_cli("diff", "v1", str(tmp_path / "missing" / "dir"), expect=1)
    assert "is not a directory" in refused.stderr
