"""Specification of v9 inference: weights-only loading (Keras 2 and 3 files), masks, never running code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelreg.errors import InvalidArtifact, UsageError
from modelreg.families.v9 import h5config
from modelreg.families.v9.architecture import build_model, validate_hyperparameters
from modelreg.families.v9.inference import load_weights_into, predict
from tests.helpers import reference_inputs

TINY = validate_hyperparameters(dict(sequence_length=8, feature_dim=5, lstm_units=4, attention_units=6,
                                     dense_units=5, num_classes=3, recurrent_dropout=0.1, dropout=0.2))
LABELS = ["angry", "calm", "happy"]


def utterances(seed: int = 0, lengths=(8, 5, 3, 11)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(2.0, 3.0, size=(n, TINY["feature_dim"])).astype(np.float32) for n in lengths]


class RecordingModel:
    """Stands in for a Keras model and keeps what predict passed to it."""

    def __init__(self, classes: int):
        self.classes, self.inputs = classes, None

    def predict(self, inputs, batch_size=32, verbose=0):
        self.inputs = inputs
        return np.tile(np.eye(self.classes)[1], (len(inputs[0]), 1))


def test_predict_masks_by_true_length_not_by_value():
    mean, std = np.full(5, 2.0, np.float32), np.ones(5, np.float32)
    at_mean = np.full((3, 5), 2.0, np.float32)   # normalizes to all-zero frames
    model = RecordingModel(3)

    results = predict(model, TINY, LABELS, mean, std, [at_mean])

    batch, mask = model.inputs
    assert mask.tolist() == [[True] * 3 + [False] * 5]
    assert not batch.any()
    assert results[0][0] == "calm" and results[0][1].shape == (3,)


def test_predict_reports_truncation_and_refuses_wrong_width():
    warnings = []
    mean, std = np.zeros(5, np.float32), np.ones(5, np.float32)

    predict(RecordingModel(3), TINY, LABELS, mean, std, [np.ones((12, 5))], on_warning=warnings.append)
    assert "longer than 8 frames" in warnings[0]
    with pytest.raises(InvalidArtifact, match=r"Input #0 has shape \(4, 6\)"):
        predict(RecordingModel(3), TINY, LABELS, mean, std, [np.ones((4, 6))])
    with pytest.raises(InvalidArtifact, match="2 labels but the model has 3"):
        predict(RecordingModel(3), TINY, LABELS[:2], mean, std, [np.ones((4, 5))])


@pytest.mark.parametrize("name", ["weights.bin", "model.weights.h5", "best_model_v9"])
def test_file_name_must_end_in_h5_for_the_legacy_reader(tmp_path, name):
    with pytest.raises(UsageError, match=r"named \*\.h5"):
        load_weights_into(tmp_path / name, TINY)


@pytest.mark.tf
@pytest.mark.parametrize("masking", ["lengths", "value"])
def test_keras2_full_model_h5_loads_and_predicts_like_the_keras2_model(tmp_path, masking):
    import tf_keras

    hp = {**TINY, "masking": masking}
    reference = build_model(hp, keras_module=tf_keras)
    path = tmp_path / "best_model_v9.h5"
    reference.save(str(path))
    mean, std = np.full(5, 2.0, np.float32), np.full(5, 3.0, np.float32)
    features = utterances()

    model = load_weights_into(path, hp)
    ours = np.stack([p for _, p in predict(model, hp, LABELS, mean, std, features)])

    expected = reference.predict(reference_inputs(hp, features, mean, std), verbose=0)
    assert np.allclose(ours, expected, atol=1e-5)


@pytest.mark.tf
def test_keras2_value_masking_weights_run_with_length_masks(tmp_path):
    import tf_keras

    reference = build_model({**TINY, "masking": "value"}, keras_module=tf_keras)
    path = tmp_path / "seed_era.h5"
    reference.save(str(path))
    mean, std = np.zeros(5, np.float32), np.ones(5, np.float32)
    features = utterances(seed=3)

    model = load_weights_into(path, TINY)

    ours = np.stack([p for _, p in predict(model, TINY, LABELS, mean, std, features)])
    expected = reference.predict(reference_inputs({**TINY, "masking": "value"}, features, mean, std),
                                 verbose=0)
    assert np.allclose(ours, expected, atol=1e-5)


def rename_layers_like_keras2_defaults(path: Path) -> None:
    """Give the file's layers the auto names a Keras 2 model built without names would have."""
    import h5py

    names = {"bilstm": "bidirectional", "layer_norm": "layer_normalization", "query": "dense",
             "value": "dense_1", "key": "dense_2", "dense": "dense_3", "classifier": "dense_4"}
    with h5py.File(path, "a") as handle:
        group = handle["model_weights"]
        for old in names:
            group.move(old, f"tmp_{old}")
        for old, new in names.items():
            group.move(f"tmp_{old}", new)
        layer_names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
        group.attrs["layer_names"] = [names.get(n, n).encode() for n in layer_names]
        del handle.attrs["model_config"]


@pytest.mark.tf
def test_keras2_file_with_other_layer_names_loads_by_order(tmp_path):
    import tf_keras

    reference = build_model(TINY, keras_module=tf_keras)
    path = tmp_path / "auto_names.h5"
    reference.save(str(path))
    rename_layers_like_keras2_defaults(path)

    model = load_weights_into(path, TINY)

    assert [layer.name for layer in h5config.weight_layout(path)][:2] == ["bidirectional",
                                                                         "layer_normalization"]
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        assert np.array_equal(ours, theirs)


@pytest.mark.tf
def test_keras2_weights_only_h5_loads(tmp_path):
    import tf_keras

    reference = build_model(TINY, keras_module=tf_keras)
    path = tmp_path / "weights_only.h5"
    reference.save_weights(str(path))

    model = load_weights_into(path, TINY)

    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        assert np.array_equal(ours, theirs)


@pytest.mark.tf
def test_wrong_hyperparameters_give_a_clear_error_not_a_keras_traceback(tmp_path):
    import keras

    path = tmp_path / "m.h5"
    keras.saving.save_model(build_model(TINY), path)

    with pytest.raises(InvalidArtifact, match="attention units 6 in the file vs 9 expected"):
        load_weights_into(path, {**TINY, "attention_units": 9})


def lambda_marker_model(tmp_path: Path, features: list[np.ndarray], mean, std):
    """A tf_keras v9 model with an identity Lambda that writes a marker file whenever it runs.

    Returns the file, the marker (deleted: building and predicting did run the
    Lambda) and the tf_keras model's predictions.
    """
    import tf_keras

    marker = tmp_path / "lambda-ran"
    namespace: dict = {}
    exec("def touch(x):\n    import pathlib\n"
         f"    pathlib.Path({str(marker)!r}).write_text('ran')\n    return x\n", namespace)
    base = build_model(TINY, keras_module=tf_keras)
    x = tf_keras.layers.Lambda(namespace["touch"], name="touch")(base.get_layer("pool").output)
    for name in ("dense", "dropout", "classifier"):
        x = base.get_layer(name)(x)
    model = tf_keras.Model(base.inputs, x)
    path = tmp_path / "lambda.h5"
    model.save(str(path))
    expected = model.predict(reference_inputs(TINY, features, mean, std), verbose=0)
    marker.unlink()
    return path, marker, expected


@pytest.mark.tf
def test_lambda_layer_is_detected_and_never_executed(tmp_path):
    import tf_keras

    mean, std = np.zeros(5, np.float32), np.ones(5, np.float32)
    features = utterances(seed=5)
    path, marker, expected = lambda_marker_model(tmp_path, features, mean, std)

    assert h5config.contains_lambda_layer(h5config.read_model_config(path)) == ["touch"]
    with pytest.raises(InvalidArtifact, match=r"Lambda layer\(s\) \['touch'\]"):
        load_weights_into(path, TINY)
    model = load_weights_into(path, TINY, allow_lambda=True)
    ours = np.stack([p for _, p in predict(model, TINY, LABELS, mean, std, features)])

    assert not marker.exists()
    assert np.allclose(ours, expected, atol=1e-5)
    tf_keras.models.load_model(str(path), compile=False)   # deserializing the config would run it
    assert marker.exists()
