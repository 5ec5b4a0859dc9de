"""Safe Keras graph rebuilder: turn a full-model Keras `.h5` into a Keras 3 model without running its code.

What is read from the file: the `model_config` attribute as JSON text (parsed
with `json.loads`, depth-limited, every value type-checked), the writer's
`keras_version`, and the weight datasets under `model_weights` as numeric
arrays. The file is first checked to be a regular, self-contained HDF5 file (no
external links, soft links, external or virtual datasets).

What is never done: `keras.models.load_model`, `model_from_json/config`,
`layers.deserialize`, `deserialize_keras_object`, `from_config` on file data,
`pickle`, `marshal`, `eval`, or `np.load(allow_pickle=True)`. Lambda layers are
refused. Each layer is constructed by its Keras 3 class with validated keyword
arguments; initializers, regularizers and constraints are dropped (weights are
set afterwards). Reading and parsing a graph does not import Keras or TensorFlow.

Supported layers: the data table `layers.LAYER_RULES` (`supported_layers()`);
supported TF ops (tf.keras 2 `TFOpLambda` / `SlicingOpLambda`): `ops.OP_RULES`
(`supported_ops()`); Keras 3 operation nodes (`keras.ops` calls, including the
mask computations Keras 3 records): `keras3_ops.KERAS3_OP_RULES`
(`supported_keras3_ops()`). Anything else raises `UnsupportedGraph` naming the
layer. Masks: op layers pass none on, as tf.keras 2 op layers and Keras 3
operations do; standard layers use Keras 3's own mask handling, which the
numeric tests check against files written by both Kerases.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from .build import CustomLayers, build_model
from .errors import UnsupportedGraph, WeightMismatch
from .graph import KerasGraph
from .hdf5 import check_hdf5_safety, read_model_config
from .keras3_ops import supported_keras3_ops
from .layers import supported_layers
from .ops import supported_ops
from .parser import parse_model_config
from .summary import describe, graph_digest
from .weights import load_weights

__all__ = ["KerasGraph", "UnsupportedGraph", "WeightMismatch", "build_model", "check_hdf5_safety",
           "describe", "graph_digest", "load_model_from_h5", "load_weights", "read_graph",
           "supported_keras3_ops", "supported_layers", "supported_ops"]


def read_graph(path: Path, source_name: str | None = None,
               custom_classes: Collection[str] = ()) -> KerasGraph:
    """Parse and validate the graph stored in the full-model `.h5` at `path`, without Keras.

    `source_name` is the name to use in messages (the user's file name when
    `path` is a private copy). `custom_classes` are class names a trusted plugin
    will supply to `build_model`; they are accepted unvalidated. Raises
    `UnsupportedGraph` (an `InvalidArtifact`) or `NotFound`.
    """
    name = source_name or str(path)
    config, keras_version = read_model_config(Path(path), name)
    try:
        return parse_model_config(config, keras_version, custom_classes)
    except UnsupportedGraph as exc:
        raise exc.located(name) from None


def load_model_from_h5(path: Path, custom_layers: CustomLayers | None = None,
                       source_name: str | None = None) -> Any:
    """`read_graph` + `build_model` + `load_weights`: a Keras 3 model with the file's weights."""
    name = source_name or str(path)
    graph = read_graph(path, name, custom_classes=tuple(custom_layers or ()))
    try:
        model = build_model(graph, custom_layers)
    except UnsupportedGraph as exc:
        raise exc.located(name) from None
    load_weights(model, graph, Path(path), name)
    return model
