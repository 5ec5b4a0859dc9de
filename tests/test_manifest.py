"""The manifest format: canonical bytes, schema validation, path rules, SHA256SUMS."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modelreg.errors import InvalidArtifact
from modelreg.manifest import FileEntry, Manifest, canonical_json, check_bundle_path

DIGEST = "ab" * 32


def sample_manifest(**changes) -> Manifest:
    fields = dict(name="emotion", version="v9",
                  files=(FileEntry("best_model_v9.h5", "weights", 10, DIGEST),
                         FileEntry("label_classes_v9.npy", "labels", 3, "cd" * 32)),
                  model={"family": "wav2vec-bilstm-attention", "input_shape": [221, 768],
                         "labels": ["angry", "happy"], "hyperparameters": {"lstm_units": 64}},
                  metrics={"val_accuracy": 0.85}, provenance={"modelreg_version": "0.1.0"},
                  created="2026-11-25T10:00:00Z")
    fields.update(changes)
    return Manifest(**fields)


def test_manifest_round_trips_through_canonical_bytes():
    manifest = sample_manifest()
    data = manifest.to_bytes()
    again = Manifest.from_bytes(data, source="test")
    assert again == manifest
    assert again.to_bytes() == data
    assert again.digest == manifest.digest


def test_canonical_json_sorts_keys_and_has_no_spaces():
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()


def test_digest_changes_when_any_field_changes():
    assert sample_manifest().digest != sample_manifest(metrics={"val_accuracy": 0.86}).digest


def test_schema_rejects_missing_fields_and_bad_digests():
    raw = sample_manifest().to_dict()
    del raw["provenance"]
    with pytest.raises(InvalidArtifact, match="provenance"):
        Manifest.from_dict(raw, source="test")
    raw = sample_manifest().to_dict()
    raw["files"][0]["sha256"] = "XYZ"
    with pytest.raises(InvalidArtifact, match="does not match the modelreg manifest schema"):
        Manifest.from_dict(raw, source="test")


def test_schema_rejects_unknown_roles():
    raw = sample_manifest().to_dict()
    raw["files"][0]["role"] = "script"
    with pytest.raises(InvalidArtifact):
        Manifest.from_dict(raw, source="test")


def test_invalid_json_names_its_source():
    with pytest.raises(InvalidArtifact, match="remote X"):
        Manifest.from_bytes(b"{not json", source="remote X")


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape.h5", "a/../../b", "a\\b.h5", "a\x00b",
                                  "", "./a", "a//b", "manifest.json", "SHA256SUMS", "model.sig", "C:x"])
def test_bundle_paths_must_be_plain_relative_names(path):
    with pytest.raises(InvalidArtifact, match="Refusing bundle file path"):
        check_bundle_path(path)


@pytest.mark.parametrize("path", ["best_model_v9.h5", "extra/notes.txt", "a-b_c.npy"])
def test_plain_relative_names_are_accepted(path):
    assert check_bundle_path(path) == path


def test_manifest_with_hostile_path_is_refused_on_read():
    raw = sample_manifest().to_dict()
    raw["files"][0]["path"] = "../../.bashrc"
    with pytest.raises(InvalidArtifact, match="'..'"):
        Manifest.from_bytes(canonical_json(raw), source="test")


def test_manifest_with_duplicate_paths_is_refused():
    raw = sample_manifest().to_dict()
    raw["files"][1]["path"] = raw["files"][0]["path"]
    with pytest.raises(InvalidArtifact, match="twice"):
        Manifest.from_bytes(canonical_json(raw), source="test")


def test_schema_is_a_real_file_in_the_package_and_validates_a_manifest():
    from importlib import resources

    import jsonschema

    schema_file = resources.files("modelreg.schemas").joinpath("manifest-v1.schema.json")
    assert not Path(str(schema_file)).is_symlink()
    jsonschema.validate(json.loads(sample_manifest().to_bytes()), json.loads(schema_file.read_text()))


def test_sha256sums_is_checkable_by_coreutils(tmp_path):
    payloads = {"a.bin": b"hello", "b.npy": b"world"}
    import hashlib

    files = tuple(FileEntry(name, "other", len(data), hashlib.sha256(data).hexdigest())
                  for name, data in payloads.items())
    manifest = sample_manifest(files=files)
    for name, data in payloads.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "SHA256SUMS").write_text(manifest.sha256sums())
    result = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a.bin: OK" in result.stdout


def test_to_dict_is_what_asdict_gives_and_a_copy():
    import dataclasses

    manifest = Manifest(name="emotion", version="v1", files=(FileEntry("w.h5", "weights", 3, "ab" * 32),),
                        model={"family": "v9", "input_shape": (None, 300, 40), "labels": ["a", "b"],
                               "hyperparameters": {"layers": [{"units": 8}, (1, 2)]}},
                        metrics={"accuracy": 0.5}, provenance={"modelreg_version": "x"})
    expected = dataclasses.asdict(manifest)
    expected["files"] = [dataclasses.asdict(entry) for entry in manifest.files]
    assert repr(manifest.to_dict()) == repr(expected)
    copy = manifest.to_dict()
    copy["model"]["hyperparameters"]["layers"][0]["units"] = 9
    copy["model"]["labels"].append("c")
    assert manifest.model["hyperparameters"]["layers"][0] == {"units": 8} and manifest.model["labels"] == ["a", "b"]
