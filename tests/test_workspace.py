"""Where pins and trusted keys come from: found like git finds its repository, never silently absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import modelreg
from modelreg.config import Settings, find_workspace
from modelreg.errors import ManifestMismatch
from tests.helpers import make_bundle, run_cli


def test_nearest_parent_with_manifests_is_the_workspace(tmp_path: Path):
    project = tmp_path / "project"
    (project / "manifests").mkdir(parents=True)
    notebook_dir = project / "notebooks" / "deep"
    notebook_dir.mkdir(parents=True)
    workspace, origin = find_workspace(None, None, notebook_dir)
    assert workspace == project
    assert "parent" in origin


def test_explicit_workspace_beats_the_environment_which_beats_discovery(tmp_path: Path):
    (tmp_path / "manifests").mkdir()
    assert find_workspace(tmp_path / "given", str(tmp_path / "env"), tmp_path)[0] == tmp_path / "given"
    assert find_workspace(None, str(tmp_path / "env"), tmp_path)[0] == tmp_path / "env"


def test_without_manifests_anywhere_the_current_directory_is_used_and_said(tmp_path: Path):
    workspace, origin = find_workspace(None, None, tmp_path)
    assert workspace == tmp_path
    assert "no manifests/ found" in origin


def test_load_from_a_subdirectory_still_enforces_the_projects_pin(settings, tmp_path, monkeypatch):
    manifest = make_bundle(settings, "v9", {"w.bin": b"weights"}, tmp_path)
    pin = settings.workspace / "manifests" / "emotion" / "v9.json"
    pinned = json.loads(pin.read_bytes())
    pinned["created"] = "2000-01-01T00:00:00Z"  # same version, another digest
    pin.write_bytes(json.dumps(pinned, sort_keys=True, separators=(",", ":")).encode())
    subdirectory = settings.workspace / "notebooks"
    subdirectory.mkdir()
    monkeypatch.chdir(subdirectory)
    with pytest.raises(ManifestMismatch, match="pin"):
        modelreg.load("v9", settings=Settings.resolve())
    assert manifest.ref == "emotion:v9"


def test_verify_of_a_cached_version_checks_the_pin_too(settings, tmp_path):
    make_bundle(settings, "v9", {"w.bin": b"weights"}, tmp_path)
    pin = settings.workspace / "manifests" / "emotion" / "v9.json"
    pinned = json.loads(pin.read_bytes())
    pinned["created"] = "2000-01-01T00:00:00Z"
    pin.write_bytes(json.dumps(pinned, sort_keys=True, separators=(",", ":")).encode())
    result = run_cli("verify", "v9", expect=3)
    assert "pin" in result.stderr


def test_paths_command_says_which_workspace_was_used(settings, tmp_path):
    (settings.workspace / "manifests").mkdir(exist_ok=True)
    nested = settings.workspace / "a" / "b"
    nested.mkdir(parents=True)
    shown = json.loads(run_cli("paths", "--json", cwd=nested).stdout)
    assert shown["workspace"] == str(settings.workspace)
    assert "parent" in shown["workspace_origin"]
    other = json.loads(run_cli("--workspace", str(tmp_path), "paths", "--json").stdout)
    assert other["workspace"] == str(tmp_path)
