"""Ingest existing v9 artifacts and load them back verified, through the CLI and `modelreg.load`.

Models here are tiny members of the v9 family built by the tests themselves: one
saved by Keras 3, one by Keras 2 (tf_keras) as a full-model `.h5`, as the seed's
`best_model_v9.h5` was.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import modelreg
from modelreg.config import Settings
from modelreg.errors import IntegrityError
from modelreg.families.v9.architecture import build_model, validate_hyperparameters
from modelreg.local.cache import Cache
from modelreg.refs import Ref
from tests.helpers import MODELREG, reference_inputs, run_cli

pytestmark = pytest.mark.tf

TINY = validate_hyperparameters(dict(sequence_length=12, feature_dim=6, lstm_units=4, attention_units=4,
                                     dense_units=5, num_classes=3))
LABELS = np.array(["angry", "calm", "happy"])


def write_artifacts(directory: Path, *, keras_module=None, version: str = "v9", hp: dict = TINY,
                    labels: np.ndarray = LABELS, std: np.ndarray | None = None):
    """The four seed-named files of a freshly initialized tiny model; returns (dir, model)."""
    directory.mkdir(parents=True, exist_ok=True)
    model = build_model(hp, keras_module=keras_module)
    if keras_module is None:
        import keras

        keras.saving.save_model(model, directory / f"best_model_{version}.h5", include_optimizer=False)
    else:
        model.save(directory / f"best_model_{version}.h5")
    rng = np.random.default_rng(1)
    np.save(directory / f"label_classes_{version}.npy", labels)
    np.save(directory / f"audio_mean_{version}.npy", rng.normal(size=hp["feature_dim"]).astype(np.float32))
    np.save(directory / f"audio_std_{version}.npy",
            std if std is not None else rng.uniform(0.5, 2, size=hp["feature_dim"]).astype(np.float32))
    return directory, model


def utterances(count: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.normal(size=(n, TINY["feature_dim"])).astype(np.float32) for n in (12, 5, 9, 20)[:count]]


def reference_probabilities(model, features, mean, std, hp=TINY):
    return np.asarray(model.predict(reference_inputs(hp, features, mean, std), verbose=0))


def test_ingest_then_load_predicts_like_the_source_model(tmp_path):
    source, model = write_artifacts(tmp_path / "artifacts")
    out = run_cli("ingest", "v9", "--from", str(source))
    assert "Ingested emotion:v9" in out.stdout
    assert (Path.cwd() / "manifests" / "emotion" / "v9.json").is_file()
    bundle = modelreg.load("v9")
    features = utterances()
    expected = reference_probabilities(model, features, bundle.mean, bundle.std)
    predictions = bundle.predict(features)
    got = np.array([[p.probabilities[label] for label in LABELS] for p in predictions])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert bundle.labels == list(LABELS)
    assert bundle.manifest.model["hyperparameters"]["bilstm/layer"] == {"units": 4}
    assert bundle.contract.mask_input is True


def test_keras2_full_model_h5_is_ingested_and_loaded_with_keras3(tmp_path):
    import tf_keras

    hp = {**TINY, "masking": "value"}
    source, keras2_model = write_artifacts(tmp_path / "artifacts", keras_module=tf_keras, hp=hp)
    run_cli("ingest", "v9", "--from", str(source))
    bundle = modelreg.load("v9")
    assert bundle.contract.mask_input is False
    features = utterances()
    expected = reference_probabilities(keras2_model, features, bundle.mean, bundle.std, hp=hp)
    got = np.array([[p.probabilities[label] for label in LABELS] for p in bundle.predict(features)])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_pull_on_another_machine_then_load_after_push(tmp_path, monkeypatch):
    source, _model = write_artifacts(tmp_path / "artifacts")
    run_cli("ingest", "v9", "--from", str(source))
    run_cli("push", "v9")
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "fresh-cache"))
    bundle = modelreg.load("v9")
    assert bundle.manifest.ref == "emotion:v9"
    features = utterances(1)
    assert bundle.predict(features[0])[0].label in LABELS


def test_load_refuses_a_tampered_cached_weights_file_and_removes_it(tmp_path):
    source, _model = write_artifacts(tmp_path / "artifacts")
    run_cli("ingest", "v9", "--from", str(source))
    settings = Settings.resolve()
    cache = Cache(settings.cache_dir)
    weights = cache.load_manifest(Ref("emotion", "v9")).file_for_role("weights")
    path = cache.blob_path(weights.sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as caught:
        modelreg.load("v9")
    assert caught.value.source == "cache" and caught.value.expected == weights.sha256
    assert not path.exists()


def test_ingest_refuses_labels_that_do_not_match_the_output_units(tmp_path):
    source, _ = write_artifacts(tmp_path / "artifacts", labels=np.array(["a", "b"]))
    out = run_cli("ingest", "v9", "--from", str(source), expect=1)
    assert "3 output units but there are 2 labels" in out.stderr and "Traceback" not in out.stderr


def test_ingest_refuses_a_std_with_zeros(tmp_path):
    std = np.ones(TINY["feature_dim"], np.float32)
    std[2] = 0
    source, _ = write_artifacts(tmp_path / "artifacts", std=std)
    out = run_cli("ingest", "v9", "--from", str(source), expect=1)
    assert "zeros" in out.stderr and "audio_std_v9.npy" in out.stderr


def test_ingest_refuses_pickled_npy_files(tmp_path):
    source, _ = write_artifacts(tmp_path / "artifacts")
    np.save(source / "label_classes_v9.npy", np.array(["a", "b", {"x": 1}], dtype=object),
            allow_pickle=True)
    out = run_cli("ingest", "v9", "--from", str(source), expect=1)
    assert "pickled" in out.stderr and "label_classes_v9.npy" in out.stderr


def test_ingest_refuses_mean_of_the_wrong_width(tmp_path):
    source, _ = write_artifacts(tmp_path / "artifacts")
    np.save(source / "audio_mean_v9.npy", np.zeros(7, np.float32))
    out = run_cli("ingest", "v9", "--from", str(source), expect=1)
    assert "7 values but the model expects 6" in out.stderr


def test_ingest_refuses_a_network_outside_the_v9_contract_with_a_clear_error(tmp_path):
    import keras

    source, _ = write_artifacts(tmp_path / "artifacts")
    inputs = keras.Input((12, 6), dtype="int32")
    other = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(
        keras.layers.Flatten()(keras.ops.cast(inputs, "float32"))))
    keras.saving.save_model(other, source / "best_model_v9.h5", include_optimizer=False)
    out = run_cli("ingest", "v9", "--from", str(source), expect=1)
    assert "one float input" in out.stderr and "Traceback" not in out.stderr


def test_ingest_refuses_an_h5_with_a_lambda_layer_without_running_it(tmp_path):
    import tf_keras

    source, _ = write_artifacts(tmp_path / "artifacts")
    marker = tmp_path / "lambda-ran"
    marker_name = str(marker)
    inputs = tf_keras.Input((12, 6))
    hostile = tf_keras.layers.Lambda(lambda x: (open(marker_name, "w").close(), x)[1])(inputs)
    outputs = tf_keras.layers.Dense(3, activation="softmax")(tf_keras.layers.Flatten()(hostile))
    tf_keras.Model(inputs, outputs).save(source / "best_model_v9.h5")
    marker.unlink(missing_ok=True)
    out = run_cli("ingest", "v9", "--from", str(source), expect=1)
    assert "Lambda" in out.stderr and not marker.exists()


def test_ingest_names_the_missing_files(tmp_path):
    source, _ = write_artifacts(tmp_path / "artifacts")
    (source / "audio_std_v9.npy").unlink()
    out = run_cli("ingest", "v9", "--from", str(source), expect=2)
    assert "std" in out.stderr and "--weights/--labels/--mean/--std" in out.stderr


def test_ingesting_the_same_files_twice_keeps_one_manifest(tmp_path):
    source, _ = write_artifacts(tmp_path / "artifacts")
    run_cli("ingest", "v9", "--from", str(source))
    first = (Path.cwd() / "manifests" / "emotion" / "v9.json").read_bytes()
    run_cli("ingest", "v9", "--from", str(source))
    assert (Path.cwd() / "manifests" / "emotion" / "v9.json").read_bytes() == first
    run_cli("push", "v9")
    assert "nothing to do" in run_cli("push", "v9").stdout


def test_include_adds_extra_files_that_push_pull_and_dest_carry(remote, settings, tmp_path, monkeypatch):
    from tests.helpers import register_remote

    source, _model = write_artifacts(tmp_path / "artifacts")
    (source / "MODEL_CARD.md").write_text("# v9\ntrained on synthetic data\n")
    (source / "config").mkdir()
    (source / "config" / "train.yaml").write_text("epochs: 30\n")
    target = register_remote(settings, remote)
    run_cli("ingest", "v9", "--from", str(source), "--include", "*.md", "--include", "config/*")
    run_cli("push", "v9", "--remote", target)
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "fresh-cache"))
    run_cli("pull", "v9", "--remote", target, "--dest", str(tmp_path / "out"))
    assert (tmp_path / "out" / "MODEL_CARD.md").read_text().startswith("# v9")
    assert (tmp_path / "out" / "config" / "train.yaml").read_text() == "epochs: 30\n"
    sums = (tmp_path / "out" / "SHA256SUMS").read_text()
    assert "MODEL_CARD.md" in sums and "config/train.yaml" in sums
    bundle = modelreg.load("v9")
    assert {e.path: e.role for e in bundle.manifest.files}["MODEL_CARD.md"] == "other"


def test_predict_prints_no_tensorflow_start_up_lines(tmp_path):
    source, _model = write_artifacts(tmp_path / "artifacts")
    run_cli("ingest", "v9", "--from", str(source))
    np.savez(tmp_path / "u.npz", features=utterances(1)[0], label="angry")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([str(MODELREG), "predict", "v9", str(tmp_path / "u.npz")], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    for noise in ("cpu_feature_guard", "oneDNN", "absl::InitializeLog", "I0000", "E0000"):
        assert noise not in result.stderr + result.stdout
