"""Families as plugins: `--family files`, `--include`, and third-party families from entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelreg
from modelreg.errors import InvalidArtifact
from modelreg.families import family_for
from tests.helpers import register_remote, run_cli


def write_tree(root: Path) -> dict[str, bytes]:
    contents = {"config.json": b'{"a": 1}', "weights/part-0.bin": os.urandom(3000),
                "weights/part-1.bin": os.urandom(10), "README.md": b"# model card\n"}
    for relative, data in contents.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return contents


def test_files_family_round_trips_every_file_through_each_backend(remote, settings, tmp_path, monkeypatch):
    contents = write_tree(tmp_path / "src")
    target = register_remote(settings, remote)
    out = run_cli("ingest", "tok:v1", "--from", str(tmp_path / "src"), "--family", "files")
    assert "(files): 4 files" in out.stdout
    run_cli("push", "tok:v1", "--remote", target)
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "fresh-cache"))
    run_cli("pull", "tok:v1", "--remote", target, "--dest", str(tmp_path / "out"))
    for relative, data in contents.items():
        assert (tmp_path / "out" / relative).read_bytes() == data
    sums = (tmp_path / "out" / "SHA256SUMS").read_text()
    assert all(relative in sums for relative in contents)
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "out", capture_output=True)
    assert check.returncode == 0
    run_cli("verify", "tok:v1")


def test_load_of_a_files_bundle_returns_a_verified_directory(settings, tmp_path):
    contents = write_tree(tmp_path / "src")
    run_cli("ingest", "tok:v1", "--from", str(tmp_path / "src"), "--family", "files")
    directory = modelreg.load("tok:v1")
    assert isinstance(directory, Path)
    assert {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()} >= set(contents)
    assert (directory / "weights" / "part-0.bin").read_bytes() == contents["weights/part-0.bin"]


def test_files_family_refuses_a_symlink_naming_it(tmp_path):
    write_tree(tmp_path / "src")
    (tmp_path / "secret.txt").write_text("not for shipping")
    (tmp_path / "src" / "link.txt").symlink_to(tmp_path / "secret.txt")
    result = run_cli("ingest", "tok:v1", "--from", str(tmp_path / "src"), "--family", "files", expect=1)
    assert "link.txt" in result.stderr and "symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path.cwd() / "manifests" / "tok").exists()


def test_files_family_refuses_a_fifo(tmp_path):
    write_tree(tmp_path / "src")
    os.mkfifo(tmp_path / "src" / "pipe")
    result = run_cli("ingest", "tok:v1", "--from", str(tmp_path / "src"), "--family", "files", expect=1)
    assert "pipe" in result.stderr and "not a regular file" in result.stderr


def test_include_selects_files_for_the_files_family(tmp_path):
    write_tree(tmp_path / "src")
    run_cli("ingest", "tok:v1", "--from", str(tmp_path / "src"), "--family", "files",
            "--include", "weights/*")
    pinned = json.loads((Path.cwd() / "manifests" / "tok" / "v1.json").read_text())
    assert sorted(entry["path"] for entry in pinned["files"]) == ["weights/part-0.bin", "weights/part-1.bin"]


def test_unknown_family_is_a_usage_error_listing_the_known_ones(tmp_path):
    write_tree(tmp_path / "src")
    result = run_cli("ingest", "tok:v1", "--from", str(tmp_path / "src"), "--family", "nope", expect=2)
    assert "files" in result.stderr and "v9" in result.stderr


def test_a_manifest_naming_an_uninstalled_family_is_refused_at_load():
    with pytest.raises(InvalidArtifact, match="No model family 'acme-vision'"):
        family_for("acme-vision")


PLUGIN = '''
from pathlib import Path


class NotesFamily:
    """A third-party family: one text file, loaded as its verified text."""

    name = "notes"
    roles = ("other",)

    def plan_ingest(self, request):
        from modelreg.families import IngestPlan
        path = request.source_dir / "notes.txt"
        return IngestPlan(files={"notes.txt": ("other", path)},
                          model={"family": self.name, "input_shape": [], "labels": [], "hyperparameters": {}})

    def load(self, bundle, *, private_dir, snapshot_dir):
        entry = bundle.manifest.files[0]
        return "NOTES:" + bundle.read_bytes(entry).decode()
'''


def install_plugin(site: Path) -> dict:
    """A real distribution on sys.path with an entry point in the modelreg.families group."""
    (site / "notes_family").mkdir(parents=True)
    (site / "notes_family" / "__init__.py").write_text(PLUGIN)
    info = site / "notes_family-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: notes-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[modelreg.families]\nnotes = notes_family:NotesFamily\n")
    return {"PYTHONPATH": str(site)}


def test_an_installed_plugin_family_ingests_and_loads(tmp_path):
    env = install_plugin(tmp_path / "site")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("hello from a plugin")
    run_cli("ingest", "n:v1", "--from", str(tmp_path / "src"), "--family", "notes", env=env)
    loaded = subprocess.run([sys.executable, "-c", "import modelreg; print(modelreg.load('n:v1'))"],
                            capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert loaded.stdout.strip() == "NOTES:hello from a plugin", loaded.stderr
    missing = subprocess.run([sys.executable, "-c", "import modelreg; modelreg.load('n:v1')"],
                             capture_output=True, text=True, timeout=120)
    assert "No model family 'notes'" in missing.stderr
