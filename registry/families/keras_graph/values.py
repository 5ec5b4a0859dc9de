"""Type checks for values read from a `model_config`, raising `UnsupportedGraph` naming the layer.

Used by `parser.py` at the JSON boundary: a wrong type, a bad layer name or a
non-float32 dtype policy becomes a one-paragraph refusal, never a TypeError.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import UnsupportedGraph
from .graph import LayerNode
from .layers import BadValue
from .nodes import Call, TensorRef

LAYER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,200}")


def fail(reason: str, layer: str = "", class_name: str = "") -> UnsupportedGraph:
    """The refusal to raise; the file name is added by `read_graph`."""
    return UnsupportedGraph(reason, layer=layer, class_name=class_name)


def expect(value: Any, kind: type | tuple[type, ...], what: str, layer: str = "") -> Any:
    """`value` if it has JSON type `kind`, else a refusal saying what was expected."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise fail(f"{what} must be a JSON {names}, got {type(value).__name__}", layer)
    return value


def refuse_keras2_initial_state(call: Call) -> Call:
    """Refuse tf.keras 2 `rnn(x, initial_state=s)` (stored as one input list `[x, *s]`)."""
    first = call.args[0] if call.args else None
    if (isinstance(first, tuple) and len(first) >= 2) or "initial_state" in call.kwargs:
        raise BadValue(
            "tf.keras 2 called this recurrent layer with initial_state; under a mask tf.keras 2 "
            "and Keras 3 compute such a graph differently, so it is not rebuilt")
    return call


def only_tensors(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(only_tensors(item) for item in value)
    return isinstance(value, TensorRef)


def checked_layer_name(value: Any, context: str) -> str:
    name = expect(value, str, "a layer name", context)
    if not LAYER_NAME.fullmatch(name):
        raise fail(f"layer name {name[:80]!r} is not 1-200 letters, digits, '_', '.' or '-'",
                    context)
    return name


def check_keys(config: dict, allowed: set[str], name: str, class_name: str = "") -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise fail(f"unknown config keys {unknown}", name, class_name)


def dtype_name(dtype: Any) -> Any:
    if isinstance(dtype, dict) and dtype.get("class_name") in ("DTypePolicy", "Policy",
                                                               "FloatDTypePolicy"):
        return (dtype.get("config") or {}).get("name")
    return dtype


def check_float32(dtype: Any, name: str, class_name: str) -> None:
    if dtype is not None and dtype_name(dtype) != "float32":
        raise fail(f"dtype policy {dtype!r} is not float32; only float32 layers are rebuilt",
                    name, class_name)


def is_history(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in value[1:]))


def with_calls(layer: LayerNode, calls: tuple[Call, ...]) -> LayerNode:
    return LayerNode(layer.name, layer.class_name, layer.kind, layer.params, calls,
                     layer.sublayers, layer.model, layer.input, layer.raw_config)
