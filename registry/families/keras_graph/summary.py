"""Canonical JSON, digest and manifest summary of a normalized `KerasGraph`.

`canonical(graph)` is a JSON-able rendering of everything the rebuild depends on
(layers, normalized parameters, calls, inputs, outputs, writer major version) and
nothing it does not (initializers, dtype-policy dicts, auto-generated model
name). `graph_digest` hashes it, so the digest is stable across re-reads and
changes whenever the computation could.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from .graph import KerasGraph, LayerNode
from .layers import LAYER_RULES
from .nodes import Call, TensorRef


def _value(value: Any) -> Any:
    if isinstance(value, TensorRef):
        return {"tensor": [value.layer, value.node, value.tensor]}
    if isinstance(value, (tuple, list)):
        return [_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _value(item) for key, item in value.items()}
    return value


def _call(call: Call) -> dict:
    return {"args": _value(call.args), "kwargs": _value(dict(call.kwargs))}


def _layer(node: LayerNode) -> dict:
    data: dict[str, Any] = {"name": node.name, "class": node.class_name, "kind": node.kind,
                            "params": _value(dict(node.params)),
                            "calls": [_call(call) for call in node.calls]}
    if node.sublayers:
        data["sublayers"] = {key: _layer(sub) for key, sub in node.sublayers.items()}
    if node.model is not None:
        data["model"] = canonical(node.model)
    if node.input is not None:
        data["input"] = {"shape": list(node.input.shape), "dtype": node.input.dtype}
    if node.raw_config is not None:
        data["raw_config"] = _value(dict(node.raw_config))
    return data


def canonical(graph: KerasGraph) -> dict:
    """The normalized graph as plain JSON types (see the module docstring)."""
    return {"keras_major": graph.keras_major,
            "layers": [_layer(node) for node in graph.layers],
            "inputs": [_value(ref) for ref in graph.input_refs],
            "outputs": [_value(ref) for ref in graph.output_refs],
            "unused_layers": list(graph.unused_layers)}


def graph_digest(graph: KerasGraph) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(canonical(graph), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _walk(graph: KerasGraph, prefix: str = ""):
    for node in graph.layers:
        yield prefix + node.name, node
        for key, sub in node.sublayers.items():
            yield f"{prefix}{node.name}/{key}", sub
        if node.model is not None:
            yield from _walk(node.model, f"{prefix}{node.name}/")


def describe(graph: KerasGraph) -> dict:
    """Small JSON summary for a manifest: inputs, outputs, layer counts, hyper-parameters, digest."""
    counts: Counter[str] = Counter()
    hyperparameters: dict[str, dict] = {}
    for path, node in _walk(graph):
        counts[node.class_name] += 1
        rule = LAYER_RULES.get(node.class_name)
        if rule is not None and rule.hyperparameters:
            hyperparameters[path] = {key: _value(node.params[key])
                                     for key in rule.hyperparameters if key in node.params}
        if node.kind == "op":
            counts[f"{node.params['table']}_op:{node.params['function']}"] += 1
    return {
        "keras_major": graph.keras_major,
        "inputs": [{"name": name, "shape": list(shape), "dtype": dtype}
                   for name, shape, dtype in graph.inputs],
        "outputs": graph.outputs,
        "layers": dict(sorted(counts.items())),
        "hyperparameters": hyperparameters,
        "unused_layers": list(graph.unused_layers),
        "digest": graph_digest(graph),
    }
