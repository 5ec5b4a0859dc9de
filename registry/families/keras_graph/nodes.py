"""Parse one inbound node (one call of a layer) from the Keras 2 or Keras 3 JSON format.

Keras 2 (tf.keras): the first call argument as a nested list whose leaves are
`[layer, node, tensor, kwargs]` (every leaf carries the same kwargs, which hold
all other arguments by name, tensors inside as `[layer, node, tensor]`) or
`["_CONSTANT_VALUE", -1, value, kwargs]`. Ordinary layers wrap a single input in
a one-element list; op layers (`TFOpLambda`) keep the structure as called.
Keras 3: `{"args": [...], "kwargs": {...}}` with tensors as
`{"class_name": "__keras_tensor__", "config": {"keras_history": [layer, node, tensor]}}`,
slices as `__slice__` objects (kept as {start, stop, step}) and `...` as `__ellipsis__`
(kept as "Ellipsis", the tf.keras 2 spelling).
Both give a `Call` whose lists are tuples; anything else raises `BadValue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UnsupportedGraph
from .layers import BadValue


@dataclass(frozen=True)
class TensorRef:
    """Output `tensor` of call number `node` (0-based, among the layer's own calls) of `layer`."""

    layer: str
    node: int
    tensor: int


@dataclass(frozen=True)
class Call:
    """One call of a layer: positional args and keyword args, tensors as `TensorRef`s."""

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]

_CONSTANT = "_CONSTANT_VALUE"


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_keras2_leaf(value: Any) -> bool:
    return (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
            and _is_index(value[1]) and (value[0] == _CONSTANT or _is_index(value[2])))


def _constant(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return tuple(_constant(item) for item in value)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise BadValue("object keys must be strings")
        return {key: _constant(item) for key, item in value.items()}
    raise BadValue(f"unexpected value {value!r}")


def _keras2_value(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and all(
            _is_index(item) for item in value[1:]):
        return TensorRef(value[0], value[1], value[2])
    if isinstance(value, list):
        return tuple(_keras2_value(item) for item in value)
    if isinstance(value, dict):
        return {key: _keras2_value(item) for key, item in value.items()}
    return _constant(value)


def parse_keras2_node(node: Any, preserve_structure: bool) -> Call:
    """A tf.keras 2 inbound node as a `Call` (first argument + keyword arguments)."""
    found_kwargs: list[dict] = []

    def walk(value: Any) -> Any:
        if _is_keras2_leaf(value):
            kwargs = value[3] if len(value) == 4 else {}
            if not isinstance(kwargs, dict):
                raise BadValue("the call kwargs of a node must be a JSON object")
            found_kwargs.append(kwargs)
            if value[0] == _CONSTANT:
                return _constant(value[2])
            return TensorRef(value[0], value[1], value[2])
        if isinstance(value, list) and value:
            return tuple(walk(item) for item in value)
        raise BadValue(f"expected [layer, node, tensor, kwargs] entries, got {value!r}"[:200])

    first = walk(node)
    if not found_kwargs:
        raise BadValue("the node has no input tensor")
    if any(kwargs != found_kwargs[0] for kwargs in found_kwargs):
        raise BadValue("the entries of one node carry different kwargs")
    if not preserve_structure and isinstance(first, tuple) and len(first) == 1:
        first = first[0]
    kwargs = _keras2_value(found_kwargs[0])
    return Call((first,), kwargs)


def _keras3_value(value: Any) -> Any:
    if isinstance(value, dict) and "class_name" in value:
        config = value.get("config")
        if value["class_name"] == "__keras_tensor__" and isinstance(config, dict):
            history = config.get("keras_history")
            if (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)
                    and all(_is_index(item) for item in history[1:])):
                return TensorRef(*history)
            raise BadValue("a __keras_tensor__ without a [layer, node, tensor] keras_history")
        if value["class_name"] == "__slice__" and isinstance(config, dict):
            return _constant(config)
        if value["class_name"] == "__ellipsis__":
            return "Ellipsis"
        if value["class_name"] == "__tuple__" and isinstance(config, dict):
            items = config.get("value")
            if isinstance(items, list):
                return tuple(_keras3_value(item) for item in items)
        raise BadValue(f"serialized object {value['class_name']!r} is not allowed in a call")
    if isinstance(value, list):
        return tuple(_keras3_value(item) for item in value)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise BadValue("object keys must be strings")
        return {key: _keras3_value(item) for key, item in value.items()}
    return _constant(value)


def parse_keras3_node(node: Any) -> Call:
    """A Keras 3 inbound node as a `Call` (positional args + keyword arguments)."""
    if not isinstance(node, dict) or set(node) != {"args", "kwargs"}:
        raise BadValue("a Keras 3 node must be an object with exactly args and kwargs")
    args, kwargs = node["args"], node["kwargs"]
    if not isinstance(args, list) or not args or not isinstance(kwargs, dict):
        raise BadValue("args must be a non-empty list and kwargs an object")
    return Call(tuple(_keras3_value(arg) for arg in args),
                {str(key): _keras3_value(value) for key, value in kwargs.items()})


def _refs(value: Any) -> list[str]:
    if isinstance(value, TensorRef):
        return [value.layer]
    if isinstance(value, (tuple, list)):
        return [name for item in value for name in _refs(item)]
    if isinstance(value, dict):
        return [name for item in value.values() for name in _refs(item)]
    return []


def used_layers(stored: Mapping[str, tuple[Any, list[Call]]], roots: list[str]) -> set[str]:
    """Names of the layers that the given layers (model inputs and outputs) depend on."""
    used: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in used:
            continue
        if name not in stored:
            raise UnsupportedGraph(f"a node refers to unknown layer {name!r}", layer=name)
        used.add(name)
        for call in stored[name][1]:
            pending.extend(_refs(call.args) + _refs(call.kwargs))
    return used


def renumber(value: Any, offsets: Mapping[str, int], counts: Mapping[str, int]) -> Any:
    """`value` with each stored node index shifted by its layer's offset into a call index.

    Raises `UnsupportedGraph` for a reference to an unknown layer or a call that does not exist.
    """
    if isinstance(value, TensorRef):
        if value.layer not in offsets:
            raise UnsupportedGraph(f"a node refers to unknown layer {value.layer!r}",
                                   layer=value.layer)
        node = value.node - offsets[value.layer]
        if not 0 <= node < counts[value.layer] or value.tensor < 0:
            raise UnsupportedGraph(f"a node refers to call {value.node} output {value.tensor}, "
                                   "which does not exist", layer=value.layer)
        return TensorRef(value.layer, node, value.tensor)
    if isinstance(value, tuple):
        return tuple(renumber(item, offsets, counts) for item in value)
    if isinstance(value, dict):
        return {key: renumber(item, offsets, counts) for key, item in value.items()}
    return value
