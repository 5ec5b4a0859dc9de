"""Specification of the v9 data loader: npz keys, labels, rejections, data directory, fingerprint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelreg.errors import InvalidArtifact, NotFound, UsageError
from modelreg.families.v9.data import dataset_fingerprint, load_dataset, load_utterance, resolve_data_dir
from modelreg.families.v9.demo_data import write_demo_dataset

REPO_ROOT = Path(__file__).resolve().parent.parent


def frames(n: int = 5, width: int = 4, value: float = 1.0) -> np.ndarray:
    return np.full((n, width), value, dtype=np.float32)


def write_pairs(directory: Path, per_class: dict[str, int], width: int = 4) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for label, count in per_class.items():
        for i in range(count):
            np.savez(directory / f"{label}_{i}.npz", features=frames(3 + i, width), label=label)


@pytest.mark.parametrize("key", ["features", "wav2vec", "embeddings", "anything"])
def test_features_are_found_under_each_known_key_or_as_the_single_array(tmp_path, key):
    path = tmp_path / "a.npz"
    np.savez(path, **{key: frames(7)}, label="happy")

    utterance = load_utterance(path)

    assert utterance.features.shape == (7, 4)
    assert utterance.features.dtype == np.float32
    assert utterance.label == "happy"


@pytest.mark.parametrize("key", ["label", "emotion"])
def test_label_is_read_from_label_or_emotion(tmp_path, key):
    path = tmp_path / "a.npz"
    np.savez(path, features=frames(), **{key: "sad"})

    assert load_utterance(path).label == "sad"


def test_filename_pattern_gives_the_label(tmp_path):
    path = tmp_path / "0007_angry.npz"
    np.savez(path, features=frames())

    assert load_utterance(path, label_pattern=r"_([a-z]+)\.npz$").label == "angry"


def test_label_pattern_needs_exactly_one_group(tmp_path):
    np.savez(tmp_path / "a_b.npz", features=frames())

    with pytest.raises(UsageError, match="exactly one group"):
        load_dataset(tmp_path, label_pattern=r"(a)_(b)")


def test_missing_label_names_the_keys_found(tmp_path):
    path = tmp_path / "nolabel.npz"
    np.savez(path, features=frames())

    with pytest.raises(InvalidArtifact, match=r"nolabel\.npz.*found keys \['features'\]"):
        load_utterance(path)


def test_unknown_keys_are_listed(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, x=frames(), y=frames(), label="calm")

    with pytest.raises(InvalidArtifact, match=r"odd\.npz has unknown keys: found \['label', 'x', 'y'\]"):
        load_utterance(path)


def test_pickled_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, features=np.array([frames(), frames(2)], dtype=object), label="happy")

    with pytest.raises(InvalidArtifact, match=r"evil\.npz contains a pickled Python object array"):
        load_utterance(path)


def test_nan_and_inf_frames_are_refused(tmp_path):
    bad = frames(6)
    bad[2, 1] = np.nan
    bad[4, 0] = np.inf
    path = tmp_path / "nan.npz"
    np.savez(path, features=bad, label="sad")

    with pytest.raises(InvalidArtifact, match=r"nan\.npz has 2 frame\(s\) with NaN or inf .*frame 2"):
        load_utterance(path)


@pytest.mark.parametrize("array", [np.zeros((0, 4), np.float32), np.zeros((5, 0), np.float32)])
def test_empty_feature_arrays_are_refused(tmp_path, array):
    path = tmp_path / "empty.npz"
    np.savez(path, features=array, label="sad")

    with pytest.raises(InvalidArtifact, match=r"empty\.npz is empty|array of .*empty\.npz is empty"):
        load_utterance(path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "zero.npz"
    path.write_bytes(b"")

    with pytest.raises(InvalidArtifact, match=r"zero\.npz is empty \(0 bytes\)"):
        load_utterance(path)


def test_non_npz_file_is_refused_without_trying_to_unpickle_it(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("not a zip")

    with pytest.raises(InvalidArtifact, match=r"text\.npz is not an \.npz archive"):
        load_utterance(path)


def test_ragged_feature_widths_name_the_files(tmp_path):
    write_pairs(tmp_path, {"happy": 2, "sad": 2}, width=4)
    np.savez(tmp_path / "wide.npz", features=frames(3, width=6), label="sad")

    with pytest.raises(InvalidArtifact, match=r"ragged feature widths: width 4 in .*width 6 in wide\.npz"):
        load_dataset(tmp_path)


def test_classes_with_fewer_than_two_samples_are_named(tmp_path):
    write_pairs(tmp_path, {"happy": 3, "sad": 1, "calm": 1})

    with pytest.raises(InvalidArtifact, match=r"fewer than 2 samples .*'calm' \(1\), 'sad' \(1\)"):
        load_dataset(tmp_path)


def test_every_unusable_file_is_reported_at_once(tmp_path):
    write_pairs(tmp_path, {"happy": 2, "sad": 2})
    (tmp_path / "broken1.npz").write_bytes(b"")
    np.savez(tmp_path / "broken2.npz", features=frames())

    with pytest.raises(InvalidArtifact, match=r"2 of 6 files .*broken1\.npz.*broken2\.npz"):
        load_dataset(tmp_path)


def test_load_dataset_reads_only_the_directory_itself_in_name_order(tmp_path):
    write_pairs(tmp_path, {"happy": 2, "sad": 2})
    write_pairs(tmp_path / "nested", {"ignored": 2})

    dataset = load_dataset(tmp_path)

    assert [p.name for p in dataset.files] == ["happy_0.npz", "happy_1.npz", "sad_0.npz", "sad_1.npz"]
    assert dataset.classes == ["happy", "sad"]
    assert dataset.feature_dim == 4


def test_directory_without_npz_files_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="No .npz feature files"):
        load_dataset(tmp_path)


def test_fingerprint_is_sha256_over_sorted_names_and_digests(tmp_path):
    write_pairs(tmp_path, {"happy": 2, "sad": 2})
    dataset = load_dataset(tmp_path)

    assert dataset.fingerprint == dataset_fingerprint(reversed(dataset.files))
    np.savez(tmp_path / "sad_1.npz", features=frames(9), label="sad")
    assert dataset_fingerprint(dataset.files) != dataset.fingerprint


def test_explicit_data_dir_wins_over_environment_and_config(tmp_path):
    chosen, other = tmp_path / "chosen", tmp_path / "other"
    write_pairs(chosen, {"a": 2, "b": 2})
    write_pairs(other, {"a": 2, "b": 2})

    assert resolve_data_dir(chosen, str(other), [other]) == chosen
    assert resolve_data_dir(None, str(chosen), [other]) == chosen


def test_config_data_dirs_first_one_with_npz_files_is_used(tmp_path):
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    write_pairs(full, {"a": 2, "b": 2})

    assert resolve_data_dir(None, None, [tmp_path / "missing", empty, full]) == full


def test_missing_explicit_directory_is_an_error_not_a_fallback(tmp_path):
    write_pairs(tmp_path / "fallback", {"a": 2, "b": 2})

    with pytest.raises(NotFound, match=r"nope given by MODELREG_DATA_DIR does not exist"):
        resolve_data_dir(None, str(tmp_path / "nope"), [tmp_path / "fallback"])


def test_nothing_found_lists_every_place_looked_at(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(NotFound) as error:
        resolve_data_dir(None, None, [tmp_path / "missing", empty])

    message = str(error.value)
    for place in ("--data (not given)", "MODELREG_DATA_DIR (not set)",
                  f"{tmp_path / 'missing'} (config data_dirs: does not exist)",
                  f"{empty} (config data_dirs: no .npz files)"):
        assert place in message


def test_demo_dataset_is_loadable_small_and_says_it_is_synthetic(tmp_path):
    paths = write_demo_dataset(tmp_path, seed=1, n=96, feature_dim=8, max_len=40)

    dataset = load_dataset(tmp_path)
    counts = {label: dataset.labels.count(label) for label in dataset.classes}
    assert len(paths) == 96 and len(dataset.classes) == 13
    assert min(counts.values()) >= 2 and sum(counts.values()) == 96
    assert max(f.shape[0] for f in dataset.features) == 40
    assert "SYNTHETIC" in (tmp_path / "README.txt").read_text()


def test_demo_dataset_is_reproducible(tmp_path):
    write_demo_dataset(tmp_path / "a", seed=3, n=10, classes=["x", "y"], feature_dim=4, max_len=9)
    write_demo_dataset(tmp_path / "b", seed=3, n=10, classes=["x", "y"], feature_dim=4, max_len=9)

    assert load_dataset(tmp_path / "a").fingerprint == load_dataset(tmp_path / "b").fingerprint


def test_demo_dataset_refuses_fewer_than_two_samples_per_class(tmp_path):
    with pytest.raises(UsageError, match="n >= 26"):
        write_demo_dataset(tmp_path, n=20)


def test_importing_the_family_modules_does_not_import_tensorflow():
    code = ("import sys, modelreg.families.v9.family, modelreg.families.v9.data, modelreg.families.v9.architecture, "
            "modelreg.families.v9.inference, modelreg.families.v9.training; "
            "heavy = [m for m in ('tensorflow', 'keras', 'tf_keras', 'sklearn') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
