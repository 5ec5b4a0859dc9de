"""What the rebuilder refuses, and that it says which file, layer and reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from modelreg.errors import InvalidArtifact, NotFound
from modelreg.families.keras_graph import (
    UnsupportedGraph,
    WeightMismatch,
    check_hdf5_safety,
    load_model_from_h5,
    read_graph,
    supported_keras3_ops,
    supported_layers,
    supported_ops,
)

REPO = Path(__file__).resolve().parents[3]

DENSE_K2 = {"class_name": "Functional", "config": {
    "name": "m", "trainable": True,
    "layers": [
        {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 4], "dtype": "float32", "sparse": False,
                    "ragged": False, "name": "x"}},
        {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["x", 0, 0, {}]]],
         "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 2,
                    "activation": "relu", "use_bias": True, "kernel_initializer": {
                        "class_name": "GlorotUniform", "config": {"seed": None}}}}],
    "input_layers": [["x", 0, 0]], "output_layers": [["dense", 0, 0]]}}


def _write(path: Path, config, keras_version: str = "2.21.0", weights: bool = True) -> Path:
    """A full-model-shaped .h5 written with h5py only: config attr plus Dense weights."""
    with h5py.File(path, "w") as file:
        file.attrs["model_config"] = config if isinstance(config, str) else json.dumps(config)
        file.attrs["keras_version"] = keras_version
        group = file.create_group("model_weights")
        dense = group.create_group("dense")
        if weights:
            dense.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
            dense.create_dataset("dense/kernel:0", data=np.ones((4, 2), "float32"))
            dense.create_dataset("dense/bias:0", data=np.zeros(2, "float32"))
    return path


def _edit(path: Path, change) -> None:
    with h5py.File(path, "r+") as file:
        config = json.loads(file.attrs["model_config"])
        change(config)
        file.attrs["model_config"] = json.dumps(config)


def _refused(path: Path, *fragments: str, error=UnsupportedGraph, call=read_graph) -> str:
    with pytest.raises(error) as caught:
        call(path, source_name="user-model.h5")
    message = str(caught.value)
    assert "user-model.h5" in message
    for fragment in fragments:
        assert fragment in message
    assert isinstance(caught.value, InvalidArtifact)
    return message


def test_hand_written_graph_is_read_without_keras(tmp_path):
    graph = read_graph(_write(tmp_path / "m.h5", DENSE_K2))
    assert graph.inputs == [("x", (None, 4), "float32")]
    assert graph.outputs == ["dense"]
    assert graph.layer_classes == ["Dense", "InputLayer"]
    assert graph.to_json()["hyperparameters"] == {"dense": {"units": 2}}


def test_unknown_config_key_on_dense_is_refused(tmp_path):
    config = json.loads(json.dumps(DENSE_K2))
    config["config"]["layers"][1]["config"]["kernel_scale"] = 2.0
    message = _refused(_write(tmp_path / "m.h5", config), "'dense'", "Dense", "kernel_scale")
    assert "re-export" in message and "plugin" in message


@pytest.mark.parametrize("field, value, fragment", [
    ("registered_name", "MyPkg>MyLayer", "MyPkg>MyLayer"),
    ("module", "os", "module 'os'"),
])
def test_user_code_origin_is_refused(tmp_path, field, value, fragment):
    config = json.loads(json.dumps(DENSE_K2))
    config["config"]["layers"][1][field] = value
    _refused(_write(tmp_path / "m.h5", config), fragment, "'dense'")


@pytest.mark.parametrize("config, fragment", [
    ("[" * 100_000, "nested deeper"),
    ("not json", "not valid JSON"),
    ('["a list"]', "JSON object"),
    ({"class_name": "Functional", "config": {"layers": "abc", "input_layers": [["x", 0, 0]],
                                             "output_layers": [["x", 0, 0]]}}, "layers must be"),
    ({"class_name": "Functional", "config": {"layers": [{"name": 3}], "input_layers": [["x", 0, 0]],
                                             "output_layers": [["x", 0, 0]]}}, "name must be"),
    ({"class_name": "Functional", "config": {"layers": [], "input_layers": [],
                                             "output_layers": []}}, "[layer, node, tensor]"),
    ({"class_name": 7, "config": {}}, "class_name must be"),
])
def test_malformed_json_gives_a_clean_error(tmp_path, config, fragment):
    _refused(_write(tmp_path / "m.h5", config), fragment)


def test_stateful_and_dtype_policy_values_are_refused(tmp_path):
    config = json.loads(json.dumps(DENSE_K2))
    config["config"]["layers"][1]["config"]["dtype"] = {"class_name": "Policy",
                                                        "config": {"name": "mixed_float16"}}
    _refused(_write(tmp_path / "m.h5", config), "mixed_float16")
    config["config"]["layers"][1]["config"]["dtype"] = "float32"
    config["config"]["layers"][1]["config"]["activation"] = "my_activation"
    _refused(_write(tmp_path / "n.h5", config), "my_activation")


def test_weights_only_file_is_refused(tmp_path):
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [b"dense"]
        file.create_group("dense")
    _refused(path, "weights but no stored graph", "model.save(")


def test_not_hdf5_symlink_and_missing_file_are_refused(tmp_path):
    text = tmp_path / "model.h5"
    text.write_text("hello")
    _refused(text, "not HDF5")
    link = tmp_path / "link.h5"
    link.symlink_to(_write(tmp_path / "real.h5", DENSE_K2))
    _refused(link, "symbolic link")
    with pytest.raises(NotFound):
        read_graph(tmp_path / "absent.h5")


def test_external_link_is_refused(tmp_path):
    path = _write(tmp_path / "m.h5", DENSE_K2)
    _write(tmp_path / "other.h5", DENSE_K2)
    with h5py.File(path, "r+") as file:
        file["model_weights/dense"]["stolen"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/")
    _refused(path, "/model_weights/dense/stolen", "external link")
    _refused(path, "external link", call=check_hdf5_safety)


def test_soft_link_is_refused(tmp_path):
    path = _write(tmp_path / "m.h5", DENSE_K2)
    with h5py.File(path, "r+") as file:
        file["alias"] = h5py.SoftLink("/model_weights/dense")
    _refused(path, "/alias", "soft link")


def test_external_dataset_is_refused(tmp_path):
    path = _write(tmp_path / "m.h5", DENSE_K2)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\0" * 64)
    with h5py.File(path, "r+") as file:
        file.create_dataset("model_weights/dense/outside", shape=(4,), dtype="float32",
                            external=[(str(raw), 0, 64)])
    _refused(path, "/model_weights/dense/outside", "external files")


def test_virtual_dataset_is_refused(tmp_path):
    path = _write(tmp_path / "m.h5", DENSE_K2)
    source = _write(tmp_path / "src.h5", DENSE_K2)
    layout = h5py.VirtualLayout(shape=(2,), dtype="float32")
    layout[:] = h5py.VirtualSource(str(source), "model_weights/dense/dense/bias:0", shape=(2,))
    with h5py.File(path, "r+") as file:
        file.create_virtual_dataset("model_weights/virtual", layout)
    _refused(path, "/model_weights/virtual", "virtual dataset")


def test_supported_tables_are_plain_lists():
    layers, ops = supported_layers(), supported_ops()
    assert "Attention" in layers and "Bidirectional" in layers and "Lambda" not in layers
    assert "linalg.matmul" in ops and "__operators__.getitem" in ops
    assert layers == sorted(layers) and ops == sorted(ops)
    assert "NotEqual" in supported_keras3_ops() and "Any" in supported_keras3_ops()


def test_reading_a_graph_imports_neither_keras_nor_tensorflow(tmp_path):
    path = _write(tmp_path / "m.h5", DENSE_K2)
    code = ("import sys\n"
            "from modelreg.families.keras_graph import read_graph, graph_digest\n"
            f"graph = read_graph({str(path)!r})\n"
            "print(graph_digest(graph))\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'tf_keras'))\n"
            "assert not loaded, loaded\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 64


@pytest.mark.tf
def test_leftover_and_missing_weights_are_named(tmp_path):
    leftover = _write(tmp_path / "leftover.h5", DENSE_K2)
    with h5py.File(leftover, "r+") as file:
        file.create_dataset("model_weights/dense/extra:0", data=np.zeros(3, "float32"))
    _refused(leftover, "/model_weights/dense/extra:0", error=WeightMismatch,
             call=load_model_from_h5)
    missing = _write(tmp_path / "missing.h5", DENSE_K2)
    with h5py.File(missing, "r+") as file:
        del file["model_weights/dense/dense/bias:0"]
        file["model_weights/dense"].attrs["weight_names"] = [b"dense/kernel:0"]
    _refused(missing, "'bias'", "'dense'", error=WeightMismatch, call=load_model_from_h5)
    reshaped = _write(tmp_path / "shape.h5", DENSE_K2)
    with h5py.File(reshaped, "r+") as file:
        del file["model_weights/dense/dense/kernel:0"]
        file.create_dataset("model_weights/dense/dense/kernel:0", data=np.ones((5, 2), "float32"))
    _refused(reshaped, "(5, 2)", "(4, 2)", error=WeightMismatch, call=load_model_from_h5)


@pytest.mark.tf
def test_hand_written_graph_rebuilds_and_computes(tmp_path):
    model = load_model_from_h5(_write(tmp_path / "m.h5", DENSE_K2))
    out = model.predict(np.array([[1.0, 2.0, 0.5, 0.0], [-1.0, 0.0, 0.0, 0.0]], "float32"), verbose=0)
    np.testing.assert_allclose(out, [[3.5, 3.5], [0.0, 0.0]])


@pytest.mark.tf
def test_keras_rejecting_a_validated_graph_is_a_refusal(tmp_path):
    config = json.loads(json.dumps(DENSE_K2))
    config["config"]["layers"].append(
        {"class_name": "Add", "name": "add", "config": {"name": "add", "dtype": "float32"},
         "inbound_nodes": [[["x", 0, 0, {}], ["dense", 0, 0, {}]]]})
    config["config"]["output_layers"] = [["add", 0, 0]]
    _refused(_write(tmp_path / "m.h5", config), "'add'", "Keras 3 rejects",
             call=load_model_from_h5)


def test_odd_layer_names_are_refused(tmp_path):
    config = json.loads(json.dumps(DENSE_K2))
    config["config"]["layers"][1]["name"] = "../../etc"
    _refused(_write(tmp_path / "m.h5", config), "layer name")


def _keras3_dropout(args, kwargs):
    tensor = {"class_name": "__keras_tensor__",
              "config": {"shape": [None, 4], "dtype": "float32", "keras_history": ["x", 0, 0]}}
    return {"class_name": "Functional", "config": {
        "name": "m", "trainable": True,
        "layers": [
            {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
             "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "x"}},
            {"class_name": "Dropout", "name": "drop",
             "config": {"name": "drop", "rate": 0.5, "dtype": {
                 "module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                 "registered_name": None}},
             "inbound_nodes": [{"args": [tensor, *args], "kwargs": kwargs}]}],
        "input_layers": ["x", 0, 0], "output_layers": ["drop", 0, 0]}}


def test_keras3_calls_forcing_training_are_refused(tmp_path):
    assert read_graph(_write(tmp_path / "ok.h5", _keras3_dropout([], {"training": False}),
                             "3.15.1", weights=False)).layer("drop").calls[0].kwargs == {}
    _refused(_write(tmp_path / "kw.h5", _keras3_dropout([], {"training": True}), "3.15.1",
                    weights=False), "training=True", "'drop'")
    _refused(_write(tmp_path / "pos.h5", _keras3_dropout([True], {}), "3.15.1", weights=False),
             "positionally", "'drop'")


def test_keras2_explicit_mask_none_is_refused(tmp_path):
    config = json.loads(json.dumps(DENSE_K2))
    config["config"]["layers"][1] = {
        "class_name": "GlobalAveragePooling1D", "name": "pool",
        "config": {"name": "pool", "dtype": "float32", "data_format": "channels_last",
                   "keepdims": False},
        "inbound_nodes": [[["x", 0, 0, {"mask": None}]]]}
    config["config"]["output_layers"] = [["pool", 0, 0]]
    _refused(_write(tmp_path / "m.h5", config, weights=False), "mask=None", "'pool'")


def test_digest_ignores_initializers_and_dtype_policy_spelling(tmp_path):
    from modelreg.families.keras_graph import graph_digest

    plain = _keras3_dropout([], {})
    noisy = json.loads(json.dumps(plain))
    noisy["config"]["layers"][1]["config"]["dtype"] = "float32"
    noisy["config"]["layers"][1]["config"]["seed"] = 1234
    noisy["config"]["name"] = "functional_17"
    changed = json.loads(json.dumps(plain))
    changed["config"]["layers"][1]["config"]["rate"] = 0.25
    digests = [graph_digest(read_graph(_write(tmp_path / f"{i}.h5", config, "3.15.1",
                                              weights=False)))
               for i, config in enumerate((plain, noisy, changed))]
    assert digests[0] == digests[1] != digests[2]
