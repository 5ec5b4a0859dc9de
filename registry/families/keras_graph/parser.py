"""Parse a Keras 2 or Keras 3 `model_config` JSON object into a validated `KerasGraph`.

Every JSON value is checked by type at the boundary and every layer, op, config
key and call argument against the allowlists (`layers.py`, `ops.py`,
`keras3_ops.py`); anything else raises `UnsupportedGraph` naming the layer.
Layers no model output depends on are not validated or rebuilt, only listed
(`KerasGraph.unused_layers`): Keras 3 records mask computations that way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from . import layers as layer_rules
from .graph import InputSpec, KerasGraph, LayerNode
from .keras3_ops import KERAS3_OP_RULES, check_keras3_op
from .nodes import Call, TensorRef, parse_keras2_node, parse_keras3_node, renumber, used_layers
from .ops import OP_CLASSES, check_op_arguments
from .values import (
    check_float32,
    check_keys,
    checked_layer_name,
    dtype_name,
    expect,
    fail,
    is_history,
    only_tensors,
    refuse_keras2_initial_state,
    with_calls,
)

MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
INPUT_DTYPES = frozenset({"float16", "float32", "float64", "int32", "int64", "bool", "uint8"})
NEVER_CUSTOM = frozenset({"Lambda", "InputLayer", *MODEL_CLASSES, *OP_CLASSES})
_ENTRY_KEYS = frozenset({"class_name", "config", "name", "inbound_nodes", "module",
                         "registered_name", "build_config", "compile_config"})
_LAYER_MODULES = ("keras.layers", "keras.src.layers")
_OP_MODULES = ("keras.ops", "keras.src.ops")
_MODEL_MODULES = ("keras", "keras.models", "keras.src.models", "keras.src.engine")


class _Parser:
    def __init__(self, major: int, custom_classes: Collection[str]) -> None:
        self.major = major
        self.custom_classes = frozenset(custom_classes) - NEVER_CUSTOM

    def model(self, entry: Any, name_hint: str = "model") -> KerasGraph:
        entry = expect(entry, dict, f"the model config of {name_hint!r}", name_hint)
        class_name = expect(entry.get("class_name"), str, "class_name", name_hint)
        config = expect(entry.get("config"), dict, f"config of model {name_hint!r}", name_hint)
        self._check_origin(entry, class_name, name_hint, _MODEL_MODULES)
        if class_name == "Sequential":
            return self._sequential(config, name_hint)
        if class_name in ("Functional", "Model"):
            return self._functional(config, name_hint)
        raise fail(f"the stored model is a {class_name}, not a Functional or Sequential model "
                    "(subclassed models store no graph)", name_hint, class_name)

    def _check_origin(self, entry: dict, class_name: str, name: str, modules: tuple[str, ...]) -> None:
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise fail(f"unknown layer entry keys {unknown}", name, class_name)
        module, registered = entry.get("module"), entry.get("registered_name")
        if module is not None and (not isinstance(module, str) or not any(
                module == allowed or module.startswith(allowed + ".") for allowed in modules)):
            raise fail(f"module {module!r} is not the standard Keras module for {class_name}",
                        name, class_name)
        if registered not in (None, class_name):
            raise fail(f"registered_name {registered!r} points at user code, not the standard "
                        f"Keras {class_name}", name, class_name)

    def _functional(self, config: dict, name: str) -> KerasGraph:
        check_keys(config, {"name", "trainable", "layers", "input_layers", "output_layers"}, name)
        entries = expect(config.get("layers"), list, "layers", name)
        inputs = self._endpoints(config.get("input_layers"), name)
        outputs = self._endpoints(config.get("output_layers"), name)
        stored: dict[str, tuple[dict, list[Call]]] = {}
        for entry in entries:
            entry = expect(entry, dict, "a layer entry", name)
            layer_name = checked_layer_name(entry.get("name"), name)
            nodes = expect(entry.get("inbound_nodes", []), list, "inbound_nodes", layer_name)
            if layer_name in stored:
                raise fail("two layers share this name", layer_name)
            stored[layer_name] = (entry, [self._node(node, entry, layer_name) for node in nodes])
        used = used_layers(stored, [ref.layer for ref in inputs + outputs])
        parsed, call_offsets, end_offsets = [], {}, {}
        for layer_name, (entry, calls) in stored.items():
            if layer_name in used:
                layer = self._layer(entry, calls, layer_name)
                call_offsets[layer_name], end_offsets[layer_name] = self._first_node_offsets(
                    layer, entry)
                parsed.append(layer)
        counts = {layer.name: max(len(layer.calls), 1 if layer.kind == "input" else 0)
                  for layer in parsed}
        parsed = [with_calls(layer, tuple(
            Call(renumber(c.args, call_offsets, counts), renumber(c.kwargs, call_offsets, counts))
            for c in layer.calls)) for layer in parsed]
        inputs = [renumber(ref, end_offsets, counts) for ref in inputs]
        outputs = [renumber(ref, end_offsets, counts) for ref in outputs]
        for ref in inputs:
            if next(layer for layer in parsed if layer.name == ref.layer).kind != "input":
                raise fail("a model input is not an InputLayer", ref.layer)
        unused = tuple(sorted(set(stored) - used))
        return KerasGraph(str(config.get("name", name)), self.major, tuple(parsed), tuple(inputs),
                          tuple(outputs), unused)

    def _first_node_offsets(self, layer: LayerNode, entry: dict) -> tuple[int, int]:
        """How far stored node indices of `layer` are shifted, in call arguments and in endpoints.

        A nested model built on an Input owns a node from its own construction.
        tf.keras 2 counts it everywhere (for Functional, and for Sequential
        starting with an InputLayer); Keras 3 counts it only for a Functional,
        and only in `input_layers`/`output_layers`.
        """
        if layer.kind != "model":
            return 0, 0
        functional = entry["class_name"] in ("Functional", "Model")
        if self.major == 3:
            return 0, int(functional)
        first = (entry["config"].get("layers") or [{}])[0]
        shifted = functional or (isinstance(first, dict) and (
            first.get("class_name") == "InputLayer"
            or "batch_input_shape" in (first.get("config") or {})))
        return int(shifted), int(shifted)

    def _endpoints(self, value: Any, name: str) -> list[TensorRef]:
        if is_history(value):
            return [TensorRef(*value)]
        value = expect(value, list, "input_layers/output_layers", name)
        if not value or not all(is_history(item) for item in value):
            raise fail("input_layers/output_layers must list [layer, node, tensor] triples", name)
        return [TensorRef(*item) for item in value]

    def _sequential(self, config: dict, name: str) -> KerasGraph:
        check_keys(config, {"name", "trainable", "dtype", "layers", "build_input_shape"}, name)
        entries = [expect(e, dict, "a layer entry", name)
                   for e in expect(config.get("layers"), list, "layers", name)]
        if not entries:
            raise fail("the Sequential model has no layers", name)
        seq_name = str(config.get("name", name))
        parsed: list[LayerNode] = []
        if entries[0].get("class_name") != "InputLayer":
            first = expect(entries[0].get("config"), dict, "config", name)
            shape = first.get("batch_input_shape", config.get("build_input_shape"))
            if shape is None:
                raise fail("the Sequential model records no input shape (it was never built)",
                            seq_name)
            input_name = f"{first.get('name', 'layer')}_input"
            dtype = dtype_name(first.get("dtype")) or "float32"
            parsed.append(self._input(input_name, {"batch_shape": shape, "dtype": dtype}))
        for entry in entries:
            layer_name = checked_layer_name(
                expect(entry.get("config"), dict, "config", seq_name).get("name"), seq_name)
            if any(layer.name == layer_name for layer in parsed):
                raise fail("two layers share this name", layer_name)
            calls = [] if entry.get("class_name") == "InputLayer" else [
                Call((TensorRef(parsed[-1].name, 0, 0),), {})]
            parsed.append(self._layer({**entry, "name": layer_name}, calls, layer_name))
        return KerasGraph(seq_name, self.major, tuple(parsed),
                          (TensorRef(parsed[0].name, 0, 0),), (TensorRef(parsed[-1].name, 0, 0),))

    def _input(self, name: str, config: dict) -> LayerNode:
        check_keys(config, {"batch_input_shape", "batch_shape", "dtype", "sparse", "ragged", "name",
                             "optional"}, name, "InputLayer")
        for flag in ("sparse", "ragged", "optional"):
            if config.get(flag, False) is not False:
                raise fail(f"{flag} inputs are not supported", name, "InputLayer")
        shape = config.get("batch_shape", config.get("batch_input_shape"))
        try:
            shape = layer_rules.shape_tuple(shape, self.major)
        except layer_rules.BadValue as exc:
            raise fail(f"input shape: {exc}", name, "InputLayer") from None
        dtype = config.get("dtype", "float32")
        if dtype not in INPUT_DTYPES:
            raise fail(f"input dtype {dtype!r} is not one of {sorted(INPUT_DTYPES)}", name,
                        "InputLayer")
        return LayerNode(name, "InputLayer", "input", input=InputSpec(name, shape, dtype))

    def _layer(self, entry: dict, calls: list[Call], name: str) -> LayerNode:
        class_name = expect(entry.get("class_name"), str, "class_name", name)
        config = expect(entry.get("config"), dict, "config", name)
        if class_name == "InputLayer":
            self._check_origin(entry, class_name, name, _LAYER_MODULES)
            return self._input(name, config)
        if class_name in MODEL_CLASSES:
            inner = self.model(entry, name)
            return LayerNode(name, class_name, "model", calls=tuple(self._plain_calls(calls, name)),
                             model=inner)
        if class_name == "Lambda":
            raise fail("Lambda layers carry Python code, which modelreg never runs", name,
                        class_name)
        if class_name in self.custom_classes:
            return LayerNode(name, class_name, "custom", calls=tuple(calls), raw_config=config)
        if class_name in OP_CLASSES:
            self._check_origin(entry, class_name, name, _LAYER_MODULES)
            return self._op(config, calls, name, class_name)
        if self.major == 3 and class_name in KERAS3_OP_RULES and not (
                class_name in layer_rules.LAYER_RULES and {"dtype", "trainable"} & set(config)):
            self._check_origin(entry, class_name, name, _OP_MODULES)
            return self._keras3_op(config, calls, name, class_name)
        self._check_origin(entry, class_name, name, _LAYER_MODULES)
        if class_name not in layer_rules.LAYER_RULES:
            raise fail(f"layer class {class_name!r} is not allowlisted", name, class_name)
        return self._standard(class_name, config, calls, name)

    def _standard(self, class_name: str, config: dict, calls: list[Call], name: str) -> LayerNode:
        check_float32(config.get("dtype"), name, class_name)
        rule = layer_rules.LAYER_RULES[class_name]
        try:
            params = layer_rules.normalize_params(class_name, config, self.major)
        except layer_rules.BadValue as exc:
            raise fail(str(exc), name, class_name) from None
        sublayers = {}
        for key, allowed in rule.sublayers.items():
            if key in config and (key != "backward_layer" or config[key] is not None):
                sub = expect(config[key], dict, f"config key {key!r}", name)
                sub_class = expect(sub.get("class_name"), str, f"{key}.class_name", name)
                if sub_class not in allowed:
                    raise fail(f"{key} of class {sub_class!r} cannot be wrapped by {class_name} "
                                f"(allowed: {sorted(allowed)})", name, class_name)
                sub_config = expect(sub.get("config"), dict, f"{key}.config", name)
                sub_name = checked_layer_name(sub_config.get("name"), name)
                sublayers[key] = self._layer({**sub, "name": sub_name}, [], sub_name)
        if "layer" in rule.sublayers and "layer" not in sublayers:
            raise fail("the wrapped layer config is missing", name, class_name)
        causal = params.pop("causal", False)
        if self.major == 2 and (class_name in layer_rules.RNN_CLASSES or class_name == "Bidirectional"):
            try:
                calls = [refuse_keras2_initial_state(call) for call in calls]
            except layer_rules.BadValue as exc:
                raise fail(str(exc), name, class_name) from None
        checked = []
        for call in calls:
            if any(not only_tensors(arg) for arg in call.args[1:]):
                raise fail("a constant is passed positionally; only tensors are accepted "
                            "positionally after the first argument", name, class_name)
            kwargs = self._layer_kwargs(call.kwargs, rule.call_kwargs, name, class_name)
            if causal:
                kwargs["use_causal_mask"] = True
            checked.append(Call(call.args, kwargs))
        return LayerNode(name, class_name, "layer", params, tuple(checked), sublayers)

    def _layer_kwargs(self, kwargs: Mapping, allowed: frozenset, name: str, class_name: str) -> dict:
        kept = {}
        for key, value in kwargs.items():
            if key not in allowed:
                raise fail(f"call argument {key!r} is not supported for {class_name}", name,
                            class_name)
            if key == "training":
                if value not in (None, False):
                    raise fail(f"the layer is called with training={value!r}; inference with "
                                "training behaviour cannot be reproduced", name, class_name)
            elif key == "mask" and value is None:
                if self.major == 2:
                    raise fail("Keras 2 called this layer with mask=None, which discards the "
                                "incoming mask; Keras 3 cannot express that", name, class_name)
            elif key in ("return_attention_scores", "use_causal_mask") and not isinstance(value, bool):
                raise fail(f"call argument {key} must be true or false", name, class_name)
            else:
                kept[key] = value
        return kept

    def _plain_calls(self, calls: list[Call], name: str) -> list[Call]:
        return [Call(call.args, self._layer_kwargs(call.kwargs, frozenset({"mask", "training"}),
                                                   name, "nested model")) for call in calls]

    def _op(self, config: dict, calls: list[Call], name: str, class_name: str) -> LayerNode:
        if self.major != 2:
            raise fail(f"{class_name} only exists in tf.keras 2 files", name, class_name)
        check_keys(config, {"name", "trainable", "dtype", "function"}, name, class_name)
        check_float32(config.get("dtype"), name, class_name)
        function = expect(config.get("function"), str, "function", name)
        checked = []
        for call in calls:
            try:
                bound = check_op_arguments(function, call.args[0], call.kwargs,
                                           lambda v: isinstance(v, TensorRef), self.major)
            except layer_rules.BadValue as exc:
                raise fail(str(exc), name, class_name) from None
            checked.append(Call((), bound))
        return LayerNode(name, class_name, "op", {"table": "tf", "function": function},
                         tuple(checked))

    def _keras3_op(self, config: dict, calls: list[Call], name: str, class_name: str) -> LayerNode:
        checked = []
        for call in calls:
            try:
                bound = check_keras3_op(class_name, config, call.args, call.kwargs,
                                        lambda v: isinstance(v, TensorRef))
            except layer_rules.BadValue as exc:
                raise fail(str(exc), name, class_name) from None
            checked.append(Call((), bound))
        return LayerNode(name, class_name, "op", {"table": "keras3", "function": class_name},
                         tuple(checked))

    def _node(self, node: Any, entry: dict, name: str) -> Call:
        preserve = entry.get("class_name") in OP_CLASSES
        try:
            if self.major == 2:
                return parse_keras2_node(node, preserve)
            return parse_keras3_node(node)
        except layer_rules.BadValue as exc:
            raise fail(f"malformed inbound node: {exc}", name, str(entry.get("class_name"))) from None


def parse_model_config(config: dict, keras_version: str,
                       custom_classes: Collection[str] = ()) -> KerasGraph:
    """Validate and normalize a `model_config` object written by Keras `keras_version` (2.x or 3.x)."""
    major = keras_version.split(".", 1)[0]
    if major not in ("2", "3"):
        raise fail(f"the file was written by Keras {keras_version!r}; only Keras 2 (tf.keras) "
                    "and Keras 3 files are read")
    return _Parser(int(major), custom_classes).model(config)
