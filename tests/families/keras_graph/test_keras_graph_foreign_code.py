"""Files carrying code or layers outside the allowlist: refused without running anything, or plugged in."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from modelreg.families.keras_graph import UnsupportedGraph, load_model_from_h5, read_graph

pytestmark = pytest.mark.tf


def test_lambda_layer_is_refused_and_its_code_never_runs(k2, tmp_path):
    marker = tmp_path / "marker"
    marker_name = str(marker)
    inputs = k2.Input((4,))
    out = k2.layers.Lambda(lambda x: (open(marker_name, "w").close(), x)[1], name="sneaky")(inputs)
    path = tmp_path / "lambda.h5"
    k2.Model(inputs, k2.layers.Dense(2)(out)).save(path)
    assert marker.exists()
    marker.unlink()
    for load in (read_graph, load_model_from_h5):
        with pytest.raises(UnsupportedGraph) as caught:
            load(path)
        assert caught.value.layer == "sneaky" and caught.value.class_name == "Lambda"
        assert "never runs" in str(caught.value)
    assert not marker.exists()


def _scale_model(k2):
    class MyLayer(k2.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],),
                                         initializer="random_normal")

        def call(self, x):
            return x * self.scale * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    inputs = k2.Input((4,))
    return k2.Model(inputs, k2.layers.Dense(2)(MyLayer(factor=3.0, name="mine")(inputs)))


def test_custom_layer_is_refused_without_a_plugin_and_built_with_one(k2, k3, roundtrip, tmp_path):
    model = _scale_model(k2)
    path = tmp_path / "custom.h5"
    model.save(path)
    with pytest.raises(UnsupportedGraph) as caught:
        read_graph(path)
    assert caught.value.layer == "mine" and "MyLayer" in str(caught.value)

    class PluginScale(k3.layers.Layer):
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],))

        def call(self, x):
            return x * self.scale * self.factor

    seen = []

    def factory(config):
        seen.append(config)
        return PluginScale(factor=float(config["factor"]), name=config["name"])

    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    roundtrip(model, x, "custom-roundtrip.h5", custom_layers={"MyLayer": factory})
    assert seen and seen[0]["factor"] == 3.0


def test_tf_op_outside_the_table_is_refused_naming_the_op(k2, tmp_path):
    import tensorflow as tf

    inputs = k2.Input((6,))
    path = tmp_path / "cumsum.h5"
    k2.Model(inputs, tf.math.cumsum(inputs, axis=-1)).save(path)
    with pytest.raises(UnsupportedGraph) as caught:
        read_graph(path)
    assert "math.cumsum" in str(caught.value) and caught.value.class_name == "TFOpLambda"


def _edit_layer(path, layer_name, change):
    with h5py.File(path, "r+") as file:
        config = json.loads(file.attrs["model_config"])
        entry = next(e for e in config["config"]["layers"] if e["name"] == layer_name)
        change(entry)
        file.attrs["model_config"] = json.dumps(config)


@pytest.mark.parametrize("change, fragment", [
    (lambda e: e.update(registered_name="MyPkg>Dense"), "MyPkg>Dense"),
    (lambda e: e.update(module="os"), "'os'"),
    (lambda e: e["config"].update(unroll_everything=True), "unroll_everything"),
    (lambda e: e.update(class_name="Embedding"), "not allowlisted"),
])
def test_keras3_file_edited_to_point_elsewhere_is_refused(k3, tmp_path, change, fragment):
    inputs = k3.Input((4,))
    path = tmp_path / "k3.h5"
    k3.Model(inputs, k3.layers.Dense(2, name="head")(inputs)).save(path)
    _edit_layer(path, "head", change)
    with pytest.raises(UnsupportedGraph) as caught:
        load_model_from_h5(path)
    assert fragment in str(caught.value) and caught.value.layer == "head"


def test_stateful_rnn_and_training_mode_calls_are_refused(k2, tmp_path):
    inputs = k2.Input((5, 3))
    path = tmp_path / "rnn.h5"
    k2.Model(inputs, k2.layers.LSTM(2, name="rnn")(inputs)).save(path)
    _edit_layer(path, "rnn", lambda e: e["config"].update(stateful=True))
    with pytest.raises(UnsupportedGraph, match="stateful=True"):
        read_graph(path)
    _edit_layer(path, "rnn", lambda e: e["config"].update(stateful=False))
    _edit_layer(path, "rnn", lambda e: e["inbound_nodes"][0][0][3].update(training=True))
    with pytest.raises(UnsupportedGraph, match="training=True"):
        read_graph(path)
