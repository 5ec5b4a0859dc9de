"""Specification of v9 inference: the network is rebuilt from the file's own graph; masks by true length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelreg.errors import InvalidArtifact
from modelreg.families.v9.architecture import build_model, validate_hyperparameters
from modelreg.families.v9.contract import Contract
from modelreg.families.v9.inference import Network, load_network, predict
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
        rows = len(inputs[0]) if isinstance(inputs, list) else len(inputs)
        return np.tile(np.eye(self.classes)[1], (rows, 1))


def recording_network(sequence_length: int | None = 8, feed=("features", "mask")) -> Network:
    contract = Contract(sequence_length=sequence_length, feature_dim=5, num_classes=3,
                        mask_input="mask" in feed)
    return Network(model=RecordingModel(3), graph=None, contract=contract, feed=tuple(feed))


def test_predict_masks_by_true_length_not_by_value():
    mean, std = np.full(5, 2.0, np.float32), np.ones(5, np.float32)
    at_mean = np.full((3, 5), 2.0, np.float32)   # normalizes to all-zero frames
    network = recording_network()

    results = predict(network, LABELS, mean, std, [at_mean])

    batch, mask = network.model.inputs
    assert mask.tolist() == [[True] * 3 + [False] * 5]
    assert not batch.any()
    assert results[0][0] == "calm" and results[0][1].shape == (3,)


def test_inputs_follow_the_order_the_graph_takes_them():
    network = recording_network(feed=("mask", "features"))
    predict(network, LABELS, np.zeros(5, np.float32), np.ones(5, np.float32), [np.ones((2, 5))])
    first, second = network.model.inputs
    assert first.dtype == bool and second.dtype == np.float32


def test_a_graph_with_variable_length_pads_to_the_longest_utterance():
    network = recording_network(sequence_length=None, feed=("features",))
    predict(network, LABELS, np.zeros(5, np.float32), np.ones(5, np.float32),
            [np.ones((4, 5)), np.ones((7, 5))])
    assert network.model.inputs.shape == (2, 7, 5)


def test_predict_reports_truncation_and_refuses_wrong_width():
    warnings: list[str] = []
    mean, std = np.zeros(5, np.float32), np.ones(5, np.float32)

    predict(recording_network(), LABELS, mean, std, [np.ones((12, 5))], on_warning=warnings.append)
    assert "longer than 8 frames" in warnings[0]
    with pytest.raises(InvalidArtifact, match=r"Input #0 has shape \(4, 6\)"):
        predict(recording_network(), LABELS, mean, std, [np.ones((4, 6))])
    with pytest.raises(InvalidArtifact, match="2 labels but the model has 3"):
        predict(recording_network(), LABELS[:2], mean, std, [np.ones((4, 5))])


@pytest.mark.tf
@pytest.mark.parametrize("masking", ["lengths", "value"])
def test_keras2_full_model_h5_predicts_like_the_keras2_model(tmp_path, masking):
    import tf_keras

    hp = {**TINY, "masking": masking}
    reference = build_model(hp, keras_module=tf_keras)
    path = tmp_path / "best_model_v9.h5"
    reference.save(str(path))
    mean, std = np.full(5, 2.0, np.float32), np.full(5, 3.0, np.float32)
    features = utterances()

    network = load_network(path, str(path))
    ours = np.stack([p for _, p in predict(network, LABELS, mean, std, features)])

    expected = reference.predict(reference_inputs(hp, features, mean, std), verbose=0)
    assert network.contract == Contract(sequence_length=8, feature_dim=5, num_classes=3,
                                        mask_input=masking == "lengths")
    np.testing.assert_allclose(ours, expected, atol=1e-5)


@pytest.mark.tf
def test_any_file_name_works_because_weights_are_read_with_h5py(tmp_path):
    import keras

    path = tmp_path / "model.weights.h5"   # a name Keras 3's own load_weights would refuse
    keras.saving.save_model(build_model(TINY), tmp_path / "m.h5")
    (tmp_path / "m.h5").rename(path)
    assert load_network(path, "model.weights.h5").contract.num_classes == 3


@pytest.mark.tf
def test_weights_only_file_is_refused_because_it_stores_no_graph(tmp_path):
    import tf_keras

    path = tmp_path / "weights_only.h5"
    build_model(TINY, keras_module=tf_keras).save_weights(str(path))
    with pytest.raises(InvalidArtifact, match="weights_only.h5"):
        load_network(path, str(path))


@pytest.mark.tf
def test_a_network_with_two_float_inputs_is_not_of_the_v9_contract(tmp_path):
    import keras

    a, b = keras.Input((8, 5)), keras.Input((8, 5))
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling1D()(
        keras.layers.Add()([a, b])))
    path = tmp_path / "two_inputs.h5"
    keras.saving.save_model(keras.Model([a, b], out), path)
    with pytest.raises(InvalidArtifact, match="one float input"):
        load_network(path, "two_inputs.h5")


def lambda_marker_model(tmp_path: Path):
    """A tf_keras v9 model with an identity Lambda that writes a marker file whenever it runs."""
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
    marker.unlink()
    return path, marker


@pytest.mark.tf
def test_lambda_layer_is_refused_and_never_executed(tmp_path):
    import tf_keras

    path, marker = lambda_marker_model(tmp_path)

    with pytest.raises(InvalidArtifact, match="touch") as refused:
        load_network(path, "best_model_v9.h5")
    assert "Lambda" in str(refused.value)
    assert not marker.exists()
    tf_keras.models.load_model(str(path), compile=False)   # deserializing the config would run it
    assert marker.exists()
