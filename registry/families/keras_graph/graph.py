"""The normalized graph: frozen dataclasses that `parser.py` builds from a `model_config`.

A `KerasGraph` no longer depends on which Keras wrote the file except where the
meaning does (e.g. `hard_sigmoid_keras2`): node indices count the layer's own
calls, tensors are `TensorRef`s, Sequential models are chains, dtype policies
and initializers are gone, and every value has been checked against the allowlists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .nodes import Call, TensorRef


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class LayerNode:
    """One layer: `kind` is "input", "layer", "op", "model" (nested graph) or "custom"."""

    name: str
    class_name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    calls: tuple[Call, ...] = ()
    sublayers: Mapping[str, LayerNode] = field(default_factory=dict)
    model: KerasGraph | None = None
    input: InputSpec | None = None
    raw_config: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class KerasGraph:
    """A validated model graph; `inputs`/`outputs` follow the stored input and output order."""

    name: str
    keras_major: int
    layers: tuple[LayerNode, ...]
    input_refs: tuple[TensorRef, ...]
    output_refs: tuple[TensorRef, ...]
    unused_layers: tuple[str, ...] = ()
    """Stored layers no model output depends on (Keras 3 records mask ops this way); not rebuilt."""

    def layer(self, name: str) -> LayerNode:
        """The top-level layer called `name` (KeyError if there is none)."""
        for node in self.layers:
            if node.name == name:
                return node
        raise KeyError(f"the graph has no top-level layer {name!r}")

    @property
    def inputs(self) -> list[tuple[str, tuple[int | None, ...], str]]:
        specs = [self.layer(ref.layer).input for ref in self.input_refs]
        return [(spec.name, spec.shape, spec.dtype) for spec in specs if spec is not None]

    @property
    def outputs(self) -> list[str]:
        return [ref.layer for ref in self.output_refs]

    @property
    def layer_classes(self) -> list[str]:
        """Sorted class names used anywhere in the graph, nested models and wrapped layers included."""
        found: set[str] = set()
        pending = list(self.layers)
        while pending:
            node = pending.pop()
            found.add(node.class_name)
            pending.extend(node.sublayers.values())
            if node.model is not None:
                pending.extend(node.model.layers)
        return sorted(found)

    def to_json(self) -> dict:
        from .summary import describe
        return describe(self)
