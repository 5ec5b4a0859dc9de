"""Read a Keras HDF5 model file as data: its config JSON and its weight shapes.

Nothing here deserializes Keras objects or imports TensorFlow: the `model_config`
attribute is parsed as plain JSON and weight shapes come from the HDF5 groups, so
an untrusted or foreign file can be inspected safely and fast. `check_compatible`
turns "this file is another architecture" into an `InvalidArtifact` naming what
differs, instead of a Keras traceback in the middle of loading.

Both legacy layouts are understood: full-model files (`model.save("x.h5")`, with
a `model_weights` group) from Keras 2 or Keras 3, and Keras 2 weights-only files
(`model.save_weights("x.h5")`, layers at the root).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py

from modelreg.errors import InvalidArtifact, NotFound, UsageError
from modelreg.families.v9.architecture import FAMILY, expected_weight_layout, validate_hyperparameters
from modelreg.families.v9.model_config import (
    contains_lambda_layer,
    flat_layers,
    hyperparameters_from_config,
    layer_name,
)

__all__ = ["FAMILY_ATTR", "HYPERPARAMETERS_ATTR", "LayerWeights", "check_compatible",
           "contains_lambda_layer", "hyperparameters_from_config", "read_model_config",
           "read_stored_hyperparameters", "weight_layout"]

HYPERPARAMETERS_ATTR = "modelreg_hyperparameters"
"""Root attribute where modelreg's training writes its hyper-parameters as JSON."""

FAMILY_ATTR = "modelreg_family"

_FAMILY_CLASSES = ("Bidirectional", "LayerNormalization", "Dense")


@dataclass(frozen=True)
class LayerWeights:
    """One weighted layer of a file: its name, Keras class (None without a config) and weights."""

    name: str
    class_name: str | None
    weights: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [shape for _, shape in self.weights]


def _open(path: Path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"Model file {path} does not exist. Check the path, or pull the bundle again.")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InvalidArtifact(
            f"{path} is not an HDF5 file ({exc}). The v9 weights must be a Keras .h5 file; "
            f"check that the right file was given and that it was copied completely."
        ) from exc


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _string_list_attr(group: h5py.Group, name: str) -> list[str]:
    """An attribute list Keras may have split into name0, name1, ... when it was large."""
    if name in group.attrs:
        return [_text(item) for item in group.attrs[name]]
    items: list[str] = []
    chunk = 0
    while f"{name}{chunk}" in group.attrs:
        items.extend(_text(item) for item in group.attrs[f"{name}{chunk}"])
        chunk += 1
    return items


def _config_from_file(handle: h5py.File, path: Path) -> dict | None:
    raw = handle.attrs.get("model_config")
    if raw is None:
        return None
    try:
        config = json.loads(_text(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArtifact(f"The model_config attribute of {path} is not valid JSON ({exc}); "
                              f"the file is damaged or was not written by Keras.") from exc
    if not isinstance(config, dict):
        raise InvalidArtifact(f"The model_config attribute of {path} is not a JSON object; "
                              f"the file was not written by Keras.")
    return config


def read_model_config(path: Path) -> dict:
    """The `model_config` attribute of a Keras .h5 file, parsed as plain JSON.

    Raises `InvalidArtifact` when the file is not HDF5, has no config (a
    weights-only file) or the config is not JSON; `NotFound` when it is missing.
    """
    with _open(path) as handle:
        config = _config_from_file(handle, Path(path))
    if config is None:
        raise InvalidArtifact(
            f"{path} has no model_config attribute: it is a weights-only file, so the "
            f"architecture cannot be read from it. Give the hyper-parameters explicitly."
        )
    return config


def read_stored_hyperparameters(path: Path) -> dict | None:
    """The hyper-parameters modelreg's training stored in the file, or None if it stored none."""
    with _open(path) as handle:
        raw = handle.attrs.get(HYPERPARAMETERS_ATTR)
    if raw is None:
        return None
    try:
        return validate_hyperparameters(json.loads(_text(raw)))
    except (json.JSONDecodeError, ValueError) as exc:
        raise InvalidArtifact(f"The {HYPERPARAMETERS_ATTR} attribute of {path} is unusable ({exc}); "
                              f"re-train or re-export the model.") from exc


def _weights_group(handle: h5py.File, path: Path) -> h5py.Group:
    if "layer_names" in handle.attrs or "layer_names0" in handle.attrs:
        return handle
    if "model_weights" in handle:
        return handle["model_weights"]
    if "layers" in handle or "vars" in handle:
        raise InvalidArtifact(
            f"{path} is a Keras 3 native weights file (.weights.h5 layout), not a legacy Keras "
            f".h5 file. Save it with model.save('best_model_v9.h5') instead."
        )
    raise InvalidArtifact(f"{path} is HDF5 but holds no Keras weights (no layer_names attribute "
                          f"and no model_weights group). Check that it is the model's .h5 file.")


def weight_layout(path: Path) -> list[LayerWeights]:
    """The layers of a Keras .h5 file that have weights, in loading order, with their shapes."""
    path = Path(path)
    with _open(path) as handle:
        config = _config_from_file(handle, path)
        classes = {layer_name(layer): layer.get("class_name") for layer in flat_layers(config or {})}
        group = _weights_group(handle, path)
        layout = []
        for name in _string_list_attr(group, "layer_names"):
            if name not in group:
                raise InvalidArtifact(f"{path} lists layer {name!r} but has no weights group for it; "
                                      f"the file is damaged.")
            layer_group = group[name]
            weights = []
            for weight_name in _string_list_attr(layer_group, "weight_names"):
                if weight_name not in layer_group:
                    raise InvalidArtifact(f"{path} lists weight {weight_name!r} of layer {name!r} "
                                          f"but does not contain it; the file is damaged.")
                weights.append((weight_name, tuple(int(n) for n in layer_group[weight_name].shape)))
            if weights:
                layout.append(LayerWeights(name, classes.get(name), tuple(weights)))
    return layout


# (layer index, weight index, dimension) -> (hyper-parameter, how to say it) in expected_weight_layout.
_SHAPE_MEANINGS = [
    ((0, 0, 0), "feature_dim", "input feature width"),
    ((0, 1, 0), "lstm_units", "LSTM units"),
    ((2, 0, 1), "attention_units", "attention units"),
    ((5, 0, 1), "dense_units", "hidden Dense units"),
    ((6, 0, 1), "num_classes", "classes (units of the last Dense)"),
]


def _describe(layer: LayerWeights) -> str:
    kind = layer.class_name or ("LSTM" if any("recurrent_kernel" in w for w, _ in layer.weights)
                                else "layer")
    return f"{layer.name} ({kind})"


def check_compatible(path: Path, hp: dict, *, allow_lambda: bool = False) -> list[LayerWeights]:
    """Check that the weights in `path` fit `build_model(hp)`; return the file's weight layout.

    Raises `InvalidArtifact` naming every difference: a layer class the family
    does not have, a different number of weighted layers, or a size that differs
    ("LSTM units 64 in the file vs 128 expected"). Lambda layers in the file's
    config are refused unless `allow_lambda` (their code never runs either way,
    but the original model computed something the code-built one does not).
    """
    path = Path(path)
    hp = validate_hyperparameters(hp)
    layout = weight_layout(path)
    expected = expected_weight_layout(hp)
    with _open(path) as handle:
        config = _config_from_file(handle, path)
    lambdas = contains_lambda_layer(config or {})
    if lambdas and not allow_lambda:
        raise InvalidArtifact(
            f"{path} contains Lambda layer(s) {lambdas}, i.e. arbitrary Python code. modelreg never "
            f"runs it, and the {FAMILY} model built from code has no such layer, so its predictions "
            f"could differ from the original model's. Re-save the model without Lambda layers, or "
            f"load with allow_lambda=True if the Lambda layers were identities."
        )
    foreign = [_describe(layer) for layer in layout
               if layer.class_name is not None and layer.class_name not in _FAMILY_CLASSES]
    problems = [f"the file has a {name} layer the {FAMILY} family does not have" for name in foreign]
    if not problems and len(layout) != len(expected):
        problems.append(
            f"the file has {len(layout)} layers with weights ({', '.join(map(_describe, layout))}) "
            f"where the family has {len(expected)} ({', '.join(name for name, _ in expected)})"
        )
    if not problems:
        problems = _shape_differences(layout, expected, hp)
    if problems:
        raise InvalidArtifact(
            f"{path} does not fit the {FAMILY} architecture with the given hyper-parameters: "
            f"{'; '.join(problems)}. Use the hyper-parameters the model was trained with "
            f"(hyperparameters_from_config reads them from a file that has a model_config), "
            f"or check that this is the bundle's own weights file."
        )
    return layout


def _shape_differences(layout: list[LayerWeights], expected: list, hp: dict) -> list[str]:
    counts = [len(layer.shapes) for layer in layout]
    if counts != [len(shapes) for _, shapes in expected]:
        return [f"layer {_describe(layer)} has {len(layer.shapes)} weights where {name} has "
                f"{len(shapes)}" for layer, (name, shapes) in zip(layout, expected)
                if len(layer.shapes) != len(shapes)]
    problems, in_file = [], dict(hp)
    for (layer_index, weight_index, dim), key, label in _SHAPE_MEANINGS:
        shape = layout[layer_index].shapes[weight_index]
        if len(shape) > dim and shape[dim] != hp[key]:
            problems.append(f"{label} {shape[dim]} in the file vs {hp[key]} expected")
            in_file[key] = shape[dim]
    try:
        implied = expected_weight_layout(in_file)
    except UsageError:
        return problems
    for layer, (name, shapes) in zip(layout, implied):
        for (weight_name, actual), wanted in zip(layer.weights, shapes):
            if tuple(actual) != tuple(wanted):
                problems.append(f"weight {weight_name} of layer {layer.name} has shape "
                                f"{tuple(actual)} where {name} needs {tuple(wanted)}")
    return problems
