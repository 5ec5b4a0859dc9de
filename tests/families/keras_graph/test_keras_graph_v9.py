"""The modelreg v9 network and the TF-op attention that once loaded green but predicted differently."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from modelreg.families.keras_graph import graph_digest, read_graph
from modelreg.families.v9.architecture import build_model as build_v9

pytestmark = pytest.mark.tf

HP = {"sequence_length": 12, "feature_dim": 16, "lstm_units": 8, "attention_units": 8,
      "dense_units": 8, "num_classes": 3}


@pytest.mark.parametrize("writer", ["k2", "k3"])
def test_v9_with_length_mask_input_rebuilds_exactly(writer, request, roundtrip, sequences):
    keras_module = request.getfixturevalue(writer)
    x, mask = sequences
    model = build_v9(HP, keras_module=keras_module)
    path, _ = roundtrip(model, [x, mask], f"v9-{writer}.h5")
    graph = read_graph(path)
    assert [name for name, _, _ in graph.inputs] == ["features", "mask"]
    assert graph.inputs[1] == ("mask", (None, 12), "bool")
    summary = json.loads(json.dumps(graph.to_json()))
    assert summary["outputs"] == ["classifier"]
    assert summary["hyperparameters"]["classifier"] == {"units": 3}
    assert summary["hyperparameters"]["bilstm/layer"] == {"units": 8}
    assert summary["layers"]["Attention"] == 1


@pytest.mark.parametrize("writer", ["k2", "k3"])
def test_v9_with_value_masking_rebuilds_exactly(writer, request, roundtrip, sequences):
    keras_module = request.getfixturevalue(writer)
    x, _ = sequences
    model = build_v9({**HP, "masking": "value"}, keras_module=keras_module)
    roundtrip(model, x, f"v9-value-{writer}.h5")


def test_explicit_mask_input_matters(k3, roundtrip, sequences):
    """Guard against a test that passes because masks are ignored: masks change the output."""
    x, mask = sequences
    model = build_v9(HP, keras_module=k3)
    _, rebuilt = roundtrip(model, [x, mask], "v9-mask.h5")
    unmasked = rebuilt.predict([x, np.ones_like(mask)], verbose=0)
    assert np.abs(unmasked - rebuilt.predict([x, mask], verbose=0)).max() > 1e-4


def test_tf_op_attention_after_masked_bilstm_rebuilds_exactly(k2, roundtrip, sequences):
    import tensorflow as tf

    layers = k2.layers
    x, _ = sequences
    features = k2.Input((12, 16))
    h = layers.Masking()(features)
    h = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(h)
    h = layers.LayerNormalization()(h)
    q, k, v = layers.Dense(8)(h), layers.Dense(8)(h), layers.Dense(8)(h)
    scores = tf.matmul(q, k, transpose_b=True) / tf.sqrt(8.0)
    weights = tf.nn.softmax(scores, axis=-1)
    attended = tf.matmul(weights, v)
    pooled = layers.GlobalAveragePooling1D()(attended)
    outputs = layers.Dense(3, activation="softmax")(layers.Dense(8, activation="relu")(pooled))
    model = k2.Model(features, outputs)
    path, _ = roundtrip(model, x, "tfop-attention.h5")
    classes = read_graph(path).layer_classes
    assert "TFOpLambda" in classes


def test_digest_is_stable_and_tracks_the_graph(k2, k3, tmp_path):
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    build_v9(HP, keras_module=k3).save(first)
    build_v9({**HP, "num_classes": 4}, keras_module=k3).save(second)
    assert graph_digest(read_graph(first)) == graph_digest(read_graph(first))
    assert graph_digest(read_graph(first)) != graph_digest(read_graph(second))
    with h5py.File(first, "r") as file:
        assert "model_config" in file.attrs
