"""Rebuild a Keras 3 functional model from a validated `KerasGraph`, node by node.

Every layer is made by calling its Keras 3 constructor (`keras.layers.<Class>`,
the class taken from the allowlist) with the validated parameters, or by a
caller-supplied factory for a custom class; nothing from the file is
deserialized. Calls are replayed in dependency order with their stored
arguments, so shared layers, nested models and explicit masks come out as stored.
Op layers (`TFOpLambda`) become `_OpLayer`s that, like tf.keras 2, pass no mask on.
Keras is imported only when `build_model` runs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .errors import UnsupportedGraph
from .graph import KerasGraph, LayerNode
from .keras3_ops import KERAS3_OP_RULES
from .nodes import TensorRef
from .ops import OP_RULES

_OP_TABLES = {"tf": OP_RULES, "keras3": KERAS3_OP_RULES}

CustomLayers = Mapping[str, Callable[[dict], Any]]
_ACTIVATION_KEYS = ("activation", "recurrent_activation")


def _keras2_hard_sigmoid(x):
    """Keras 2's hard_sigmoid: max(0, min(1, 0.2 * x + 0.5)) (Keras 3's is relu6(x + 3) / 6)."""
    from keras import ops
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


@functools.cache
def _keras_extras() -> tuple[Any, type]:
    """Keras 3, with the Keras 2 hard_sigmoid registered and the op layer class defined once."""
    import keras

    keras.saving.register_keras_serializable("modelreg_keras_graph", "hard_sigmoid_keras2")(
        _keras2_hard_sigmoid)

    class _OpLayer(keras.layers.Layer):
        """One TF op from the op table; takes its tensors as a list and passes no mask on."""

        def __init__(self, table: str, function: str, template: Any, **kwargs: Any) -> None:
            super().__init__(autocast=False, **kwargs)
            self.rule = _OP_TABLES[table][function]
            self.template = template
            self.supports_masking = True

        def compute_mask(self, inputs, previous_mask=None):
            return None

        def call(self, inputs):
            arguments = _fill(self.template, list(inputs))
            return self.rule.impl(keras.ops, **arguments)

    return keras, _OpLayer


class _Slot:
    """Position of a tensor in an op layer's input list, inside its argument template."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Slot) and other.index == self.index

    def __hash__(self) -> int:
        return hash(self.index)


def _template(value: Any, refs: list[TensorRef]) -> Any:
    if isinstance(value, TensorRef):
        refs.append(value)
        return _Slot(len(refs) - 1)
    if isinstance(value, tuple):
        return tuple(_template(item, refs) for item in value)
    if isinstance(value, dict):
        return {key: _template(item, refs) for key, item in value.items()}
    return value


def _fill(template: Any, tensors: list) -> Any:
    if isinstance(template, _Slot):
        return tensors[template.index]
    if isinstance(template, tuple):
        return [_fill(item, tensors) for item in template]
    if isinstance(template, dict):
        return {key: _fill(item, tensors) for key, item in template.items()}
    return template


def _activation(keras: Any, name: str) -> Any:
    return _keras2_hard_sigmoid if name == "hard_sigmoid_keras2" else keras.activations.get(name)


class _Builder:
    def __init__(self, custom_layers: CustomLayers) -> None:
        self.keras, self.op_layer_class = _keras_extras()
        self.custom_layers = custom_layers

    def standard(self, node: LayerNode) -> Any:
        kwargs = dict(node.params)
        for key in _ACTIVATION_KEYS:
            if key in kwargs:
                kwargs[key] = _activation(self.keras, kwargs[key])
        if node.class_name == "Dot" and len(kwargs.get("axes", ())) == 1:
            kwargs["axes"] = kwargs["axes"][0]
        for key, sub in node.sublayers.items():
            kwargs[key] = self.standard(sub)
        return getattr(self.keras.layers, node.class_name)(name=node.name, **kwargs)

    def custom(self, node: LayerNode) -> Any:
        factory = self.custom_layers.get(node.class_name)
        if factory is None:
            raise UnsupportedGraph(f"custom layer class {node.class_name!r} is not provided by "
                                   "any installed plugin", layer=node.name,
                                   class_name=node.class_name)
        layer = factory(dict(node.raw_config or {}))
        if not isinstance(layer, self.keras.layers.Layer) or layer.name != node.name:
            raise UnsupportedGraph(f"the plugin factory for {node.class_name!r} must return a "
                                   f"Keras 3 layer named {node.name!r}", layer=node.name,
                                   class_name=node.class_name)
        return layer

    def op(self, node: LayerNode) -> tuple[Any, list[list[TensorRef]]]:
        templates, refs = [], []
        for call in node.calls:
            call_refs: list[TensorRef] = []
            templates.append(_template(dict(call.kwargs), call_refs))
            refs.append(call_refs)
        if any(template != templates[0] for template in templates):
            raise UnsupportedGraph("an op layer reused with different constant arguments",
                                   layer=node.name, class_name=node.class_name)
        layer = self.op_layer_class(node.params["table"], node.params["function"], templates[0],
                                    name=node.name)
        return layer, refs

    def model(self, graph: KerasGraph, name: str | None = None) -> Any:
        keras = self.keras
        produced: dict[tuple[str, int], list] = {}
        made: dict[str, Any] = {}
        op_refs: dict[str, list[list[TensorRef]]] = {}
        for node in graph.layers:
            if node.kind == "input":
                spec = node.input
                assert spec is not None, "the parser gives every input node its InputSpec"
                produced[(node.name, 0)] = [keras.Input(batch_shape=spec.shape, dtype=spec.dtype,
                                                        name=spec.name)]
            else:
                with _keras_refusal(node):
                    if node.kind == "op":
                        made[node.name], op_refs[node.name] = self.op(node)
                    elif node.kind == "model":
                        assert node.model is not None, "the parser gives every model node its graph"
                        made[node.name] = self.model(node.model, node.name)
                    elif node.kind == "custom":
                        made[node.name] = self.custom(node)
                    else:
                        made[node.name] = self.standard(node)
        done = {node.name: 0 for node in graph.layers}
        progress = True
        while progress:
            progress = False
            for node in graph.layers:
                while done[node.name] < len(node.calls):
                    index = done[node.name]
                    try:
                        with _keras_refusal(node):
                            outputs = self.call(node, made[node.name], index, produced,
                                                op_refs.get(node.name))
                    except _NotReady:
                        break
                    produced[(node.name, index)] = keras.tree.flatten(outputs)
                    done[node.name] += 1
                    progress = True
        stuck = [node.name for node in graph.layers if done[node.name] < len(node.calls)]
        if stuck:
            raise UnsupportedGraph("the graph has a cycle or a call on a missing tensor",
                                   layer=stuck[0])
        inputs = [self.tensor(ref, produced) for ref in graph.input_refs]
        outputs = [self.tensor(ref, produced) for ref in graph.output_refs]
        return keras.Model(inputs=inputs[0] if len(inputs) == 1 else inputs,
                           outputs=outputs[0] if len(outputs) == 1 else outputs,
                           name=name or graph.name)

    def tensor(self, ref: TensorRef, produced: Mapping) -> Any:
        if (ref.layer, ref.node) not in produced:
            raise _NotReady
        outputs = produced[(ref.layer, ref.node)]
        if ref.tensor >= len(outputs):
            raise UnsupportedGraph(f"output {ref.tensor} of call {ref.node} is used, but the layer "
                                   f"has {len(outputs)} output(s)", layer=ref.layer)
        return outputs[ref.tensor]

    def resolve(self, value: Any, produced: Mapping) -> Any:
        if isinstance(value, TensorRef):
            return self.tensor(value, produced)
        if isinstance(value, tuple):
            return [self.resolve(item, produced) for item in value]
        if isinstance(value, dict):
            return {key: self.resolve(item, produced) for key, item in value.items()}
        return value

    def call(self, node: LayerNode, layer: Any, index: int, produced: Mapping,
             op_refs: list[list[TensorRef]] | None) -> Any:
        if op_refs is not None:
            return layer([self.tensor(ref, produced) for ref in op_refs[index]])
        call = node.calls[index]
        args = [self.resolve(arg, produced) for arg in call.args]
        kwargs = {key: self.resolve(value, produced) for key, value in call.kwargs.items()}
        return layer(*args, **kwargs)


@contextlib.contextmanager
def _keras_refusal(node: LayerNode) -> Iterator[None]:
    """Turn Keras rejecting a validated layer or call (e.g. incompatible shapes) into a refusal."""
    try:
        yield
    except UnsupportedGraph:
        raise
    except (ValueError, TypeError) as exc:
        raise UnsupportedGraph(f"Keras 3 rejects this layer or call: {str(exc)[:300]}",
                               layer=node.name, class_name=node.class_name) from None


class _NotReady(Exception):
    """A call's input tensor has not been produced yet; it is retried on the next pass."""


def build_model(graph: KerasGraph, custom_layers: CustomLayers | None = None) -> Any:
    """A Keras 3 `keras.Model` computing what `graph` stores, with freshly initialized weights.

    `custom_layers` maps a class name to a trusted factory that receives the
    layer's stored config dict and returns a Keras 3 layer with the stored name.
    """
    return _Builder(custom_layers or {}).model(graph)
