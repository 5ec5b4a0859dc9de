"""Interpret a Keras model config (plain JSON, Keras 2 or 3) for the v9 family.

Pure functions on the parsed `model_config` dict: nothing is deserialized, no
Keras is imported. `hyperparameters_from_config` recovers the family's
hyper-parameters from the layers it finds; `contains_lambda_layer` reports layers
carrying arbitrary code. `h5config` reads the dict out of an .h5 file.
"""

from __future__ import annotations

from modelreg.errors import InvalidArtifact, UsageError
from modelreg.families.v9.architecture import FAMILY, LAYER_NAMES, validate_hyperparameters

_MODEL_CLASSES = ("Functional", "Model", "Sequential")
_POOLING_CLASSES = ("GlobalAveragePooling1D", "GlobalMaxPooling1D")


def flat_layers(config: dict) -> list[dict]:
    """Layer dicts of a (possibly nested) model config, in the order the config lists them."""
    inner = config.get("config", {})
    layers = inner if isinstance(inner, list) else inner.get("layers", [])
    flat = []
    for layer in layers:
        if isinstance(layer, dict) and layer.get("class_name") in _MODEL_CLASSES:
            flat.extend(flat_layers(layer))
        elif isinstance(layer, dict):
            flat.append(layer)
    return flat


def layer_name(layer: dict) -> str:
    return str(layer.get("name") or layer.get("config", {}).get("name") or "?")


def _decimal(value) -> float:
    """A float from a config, undoing float32 storage (Keras 2 saves l2=0.01 as 0.009999999776)."""
    return float(f"{float(value or 0.0):.7g}")


def _l2_of(regularizer) -> float:
    if not isinstance(regularizer, dict):
        return 0.0
    return _decimal(regularizer.get("config", {}).get("l2", 0.0))


def contains_lambda_layer(config: dict) -> list[str]:
    """Names of every `Lambda` layer anywhere in a model config (empty when there are none).

    A Lambda layer carries arbitrary Python code (marshalled bytecode). modelreg
    never deserializes configs, so that code never runs here, but the code-built
    model has no such layer: a file with one computed something else.
    """
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(layer_name(node))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return found


def hyperparameters_from_config(config: dict) -> dict:
    """The family's architecture hyper-parameters recovered from a Keras 2 or 3 model config.

    Reads the features input shape, masking mode (mask input vs `Masking`), the
    BiLSTM's units and recurrent dropout, the attention projection width, the
    hidden Dense units and L2, the dropout rate and the number of classes (units
    of the last Dense). Returns every key: one the config leaves open takes its
    default (a variable-length input gives sequence_length 221; a model with
    neither a mask input nor a Masking layer gets masking "lengths").
    Raises `InvalidArtifact` when the config is not a model of this family.
    """
    layers = flat_layers(config)
    found: dict = {"dropout": 0.0, "l2": 0.0}
    dense_before: list[dict] = []
    dense_after: list[dict] = []
    pooled = has_mask_input = has_masking = False
    for layer in layers:
        kind, settings = layer.get("class_name"), layer.get("config", {})
        shape = settings.get("batch_shape") or settings.get("batch_input_shape")
        if shape and len(shape) == 3 and "feature_dim" not in found:
            if shape[1] is not None:
                found["sequence_length"] = int(shape[1])
            found["feature_dim"] = int(shape[2])
        elif kind == "InputLayer" and shape and len(shape) == 2:
            has_mask_input = True
        if kind == "Masking":
            has_masking = True
        elif kind == "Bidirectional":
            inner = settings.get("layer", {})
            if inner.get("class_name") == "LSTM":
                found["lstm_units"] = int(inner["config"]["units"])
                found["recurrent_dropout"] = _decimal(inner["config"].get("recurrent_dropout"))
        elif kind == "Dense":
            (dense_after if pooled else dense_before).append(settings)
        elif kind in _POOLING_CLASSES:
            pooled = True
        elif kind == "Dropout" and pooled:
            found["dropout"] = _decimal(settings.get("rate"))
    if has_masking:
        found["masking"] = "value"
    elif has_mask_input:
        found["masking"] = "lengths"
    if dense_before:
        query = [d for d in dense_before if d.get("name") == LAYER_NAMES["query"]] or dense_before
        found["attention_units"] = int(query[0]["units"])
    if len(dense_after) >= 2:
        found["dense_units"] = int(dense_after[0]["units"])
        found["l2"] = _l2_of(dense_after[0].get("kernel_regularizer"))
    if dense_after:
        found["num_classes"] = int(dense_after[-1]["units"])
    missing = [key for key in ("feature_dim", "lstm_units", "attention_units", "dense_units",
                               "num_classes") if key not in found]
    if missing:
        kinds = ", ".join(f"{layer_name(layer)}: {layer.get('class_name')}" for layer in layers)
        raise InvalidArtifact(
            f"The model config does not describe a {FAMILY} model: cannot find {missing} "
            f"(an input [frames, features], a Bidirectional LSTM, query/key/value Dense layers, "
            f"a pooling layer, then a hidden and an output Dense). Its layers: {kinds or 'none'}."
        )
    try:
        return validate_hyperparameters(found)
    except UsageError as exc:
        raise InvalidArtifact(f"The model config describes unusable {FAMILY} settings: {exc}") from exc
