"""Specification of h5config: configs and weight shapes read as data, clear incompatibility errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from modelreg.errors import InvalidArtifact, NotFound
from modelreg.families.v9 import h5config
from modelreg.families.v9.architecture import build_model, validate_hyperparameters

TINY = validate_hyperparameters(dict(sequence_length=7, feature_dim=5, lstm_units=4, attention_units=6,
                                     dense_units=3, num_classes=4, recurrent_dropout=0.1, dropout=0.25,
                                     l2=0.01))


def save_keras3(hp: dict, path):
    import keras

    keras.saving.save_model(build_model(hp), path, include_optimizer=False)
    return path


def save_keras2(hp: dict, path, *, weights_only: bool = False):
    import tf_keras

    model = build_model(hp, keras_module=tf_keras)
    if weights_only:
        model.save_weights(str(path))
    else:
        model.save(str(path))
    return path


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        h5config.read_model_config(tmp_path / "nope.h5")


def test_non_hdf5_file_is_invalid(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("hello")

    with pytest.raises(InvalidArtifact, match=r"text\.h5 is not an HDF5 file"):
        h5config.weight_layout(path)


def test_config_is_read_as_plain_json(tmp_path):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {"layers": []}})

    assert h5config.read_model_config(path)["class_name"] == "Functional"


def test_weights_only_file_has_no_config(tmp_path):
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [b"dense"]

    with pytest.raises(InvalidArtifact, match="no model_config attribute"):
        h5config.read_model_config(path)


def test_lambda_layers_are_found_anywhere_in_a_config():
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"name": "d"}},
        {"class_name": "TimeDistributed", "config": {"name": "td", "layer": {
            "class_name": "Lambda", "config": {"name": "sneaky", "function": "..."}}}},
    ]}}

    assert h5config.contains_lambda_layer(config) == ["sneaky"]
    assert h5config.contains_lambda_layer({"config": {"layers": []}}) == []


@pytest.mark.tf
@pytest.mark.parametrize("masking", ["lengths", "value"])
@pytest.mark.parametrize("writer", [save_keras3, save_keras2], ids=["keras3", "keras2"])
def test_hyperparameters_round_trip_through_keras2_and_keras3_files(tmp_path, writer, masking):
    hp = {**TINY, "masking": masking}
    path = writer(hp, tmp_path / "model.h5")

    assert h5config.hyperparameters_from_config(h5config.read_model_config(path)) == hp


@pytest.mark.tf
def test_weight_layout_reads_keras2_full_and_weights_only_files(tmp_path):
    full = h5config.weight_layout(save_keras2(TINY, tmp_path / "full.h5"))
    weights_only = h5config.weight_layout(save_keras2(TINY, tmp_path / "w.h5", weights_only=True))

    assert [layer.shapes for layer in full] == [layer.shapes for layer in weights_only]
    assert [layer.name for layer in full][:2] == ["bilstm", "layer_norm"]
    assert full[0].class_name == "Bidirectional" and weights_only[0].class_name is None
    assert h5config.check_compatible(tmp_path / "w.h5", TINY)


@pytest.mark.tf
def test_different_lstm_units_are_named(tmp_path):
    path = save_keras3({**TINY, "lstm_units": 8}, tmp_path / "other.h5")

    with pytest.raises(InvalidArtifact, match=r"other\.h5 does not fit.*LSTM units 8 in the file vs 4 expected"):
        h5config.check_compatible(path, TINY)


@pytest.mark.tf
def test_different_classes_and_feature_width_are_named(tmp_path):
    path = save_keras2({**TINY, "num_classes": 7, "feature_dim": 9}, tmp_path / "other.h5")

    with pytest.raises(InvalidArtifact) as error:
        h5config.check_compatible(path, TINY)

    assert "input feature width 9 in the file vs 5 expected" in str(error.value)
    assert "classes (units of the last Dense) 7 in the file vs 4 expected" in str(error.value)


@pytest.mark.tf
def test_plain_dense_model_is_another_architecture(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    path = tmp_path / "dense.h5"
    keras.saving.save_model(model, path)

    with pytest.raises(InvalidArtifact, match=r"the file has 2 layers with weights .* where the family has 7"):
        h5config.check_compatible(path, TINY)
    with pytest.raises(InvalidArtifact, match="does not describe a wav2vec-bilstm-attention model"):
        h5config.hyperparameters_from_config(h5config.read_model_config(path))


@pytest.mark.tf
def test_layer_class_the_family_lacks_is_named(tmp_path):
    import keras

    inputs = keras.Input((7, 5))
    x = keras.layers.Conv1D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    path = tmp_path / "conv.h5"
    keras.saving.save_model(keras.Model(inputs, keras.layers.Dense(4)(x)), path)

    with pytest.raises(InvalidArtifact, match=r"the file has a conv \(Conv1D\) layer the wav2vec-bilstm"):
        h5config.check_compatible(path, TINY)


@pytest.mark.tf
def test_keras3_native_weights_file_is_explained(tmp_path):
    path = tmp_path / "model.weights.h5"
    build_model(TINY).save_weights(path)

    with pytest.raises(InvalidArtifact, match="Keras 3 native weights file"):
        h5config.weight_layout(path)


def test_stored_hyperparameters_are_read_back(tmp_path):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs[h5config.HYPERPARAMETERS_ATTR] = json.dumps(TINY)

    assert h5config.read_stored_hyperparameters(path) == TINY
    assert np.isscalar(h5config.read_stored_hyperparameters(path)["l2"])


def seed_style_sequential_config() -> dict:
    """A Keras-2-era Sequential config with auto names, as the seed's v9 model would have."""
    def layer(kind, **config):
        return {"class_name": kind, "config": config}

    lstm = layer("LSTM", name="lstm", units=128, return_sequences=True, recurrent_dropout=0.2)
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        layer("Masking", name="masking", mask_value=0.0, batch_input_shape=[None, 221, 768]),
        layer("Bidirectional", name="bidirectional", layer=lstm),
        layer("LayerNormalization", name="layer_normalization"),
        layer("Dense", name="dense", units=64),
        layer("Dense", name="dense_1", units=64),
        layer("Dense", name="dense_2", units=64),
        layer("GlobalAveragePooling1D", name="global_average_pooling1d"),
        layer("Dense", name="dense_3", units=64, activation="relu",
              kernel_regularizer={"class_name": "L2", "config": {"l2": 0.0010000000474974513}}),
        layer("Dropout", name="dropout", rate=0.5),
        layer("Dense", name="dense_4", units=13, activation="softmax"),
    ]}}


def test_hyperparameters_are_recovered_from_a_seed_style_keras2_sequential_config():
    hp = h5config.hyperparameters_from_config(seed_style_sequential_config())

    assert hp == {"sequence_length": 221, "feature_dim": 768, "lstm_units": 128,
                  "recurrent_dropout": 0.2, "attention_units": 64, "dense_units": 64, "dropout": 0.5,
                  "l2": 0.001, "num_classes": 13, "masking": "value"}
