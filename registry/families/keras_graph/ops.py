"""The TF op table: `TFOpLambda` / `SlicingOpLambda` functions mapped to `keras.ops`.

tf.keras 2 records a TensorFlow call on a Keras tensor (`tf.matmul(q, k,
transpose_b=True)`, `x / 2.0`, `x[:, 0]`) as an op layer whose config names the
TF symbol (`function`, e.g. "linalg.matmul") and whose inbound node carries the
first argument plus every other argument by name, tensors as
`[layer, node, tensor]` and constants inline. `OP_RULES` lists, per symbol, the
parameters in signature order (the first is the node's first argument), which
may be tensors, which must be validated constants, and the `keras.ops`
implementation. A symbol or parameter not in the table is refused.

Masks: tf.keras 2 op layers do not support masking, so a mask never flows past
them; the rebuilt op layers drop masks the same way (`build.py`).
Every implementation receives `keras.ops` as `ops`, so this module never imports Keras.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .layers import BadValue, boolean, choice, int_tuple, integer, optional

CAST_DTYPES = ("float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool")


def _axis(value: Any, major: int) -> Any:
    return None if value is None else (int_tuple(value, major) if isinstance(value, (list, tuple))
                                       else integer(value, major))


def _none(value: Any, major: int) -> None:
    if value is not None:
        raise BadValue(f"only null is supported, got {value!r}")


def check_slice_spec(value: Any, major: int) -> tuple:
    """A validated index: ints, {start, stop, step} slices, "Ellipsis" and null (new axis)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    spec: list[tuple] = []
    for item in items:
        if isinstance(item, dict):
            if set(item) != {"start", "stop", "step"} or not all(
                    bound is None or (isinstance(bound, int) and not isinstance(bound, bool))
                    for bound in item.values()):
                raise BadValue(f"slice {item!r} must have integer or null start, stop and step")
            spec.append(("slice", item["start"], item["stop"], item["step"]))
        elif item == "Ellipsis":
            spec.append(("ellipsis",))
        elif item is None:
            spec.append(("newaxis",))
        else:
            spec.append(("index", integer(item, major)))
    return ("tuple" if isinstance(value, (list, tuple)) else "single", tuple(spec))


def slice_key(spec: tuple) -> Any:
    """The Python index (tuple of slices, ints, Ellipsis, None) a checked slice spec stands for."""
    kind, items = spec
    parts: list[Any] = []
    for item in items:
        if item[0] == "slice":
            parts.append(slice(item[1], item[2], item[3]))
        elif item[0] == "ellipsis":
            parts.append(Ellipsis)
        elif item[0] == "newaxis":
            parts.append(None)
        else:
            parts.append(item[1])
    return tuple(parts) if kind == "tuple" else parts[0]


def _matmul(ops, a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False,
            a_is_sparse=False, b_is_sparse=False, output_type=None):
    if transpose_a or adjoint_a:
        a = ops.swapaxes(a, -1, -2)
    if transpose_b or adjoint_b:
        b = ops.swapaxes(b, -1, -2)
    return ops.matmul(a, b)


def _binary(name: str) -> Callable:
    return lambda ops, x, y: getattr(ops, name)(x, y)


def _unary(name: str) -> Callable:
    return lambda ops, x: getattr(ops, name)(x)


def _reduce(name: str) -> Callable:
    return lambda ops, input_tensor, axis=None, keepdims=False: getattr(ops, name)(
        input_tensor, axis=axis, keepdims=keepdims)


@dataclass(frozen=True)
class OpRule:
    """One TF symbol: parameter names in order, which may be tensors, which are checked constants."""

    params: tuple[str, ...]
    impl: Callable
    tensors: frozenset[str] = frozenset()
    constants: Mapping[str, Callable] = field(default_factory=dict)


_FLAG = {"transpose_a": boolean, "transpose_b": boolean, "adjoint_a": boolean,
         "adjoint_b": boolean, "a_is_sparse": boolean, "b_is_sparse": boolean,
         "output_type": _none}


def _binary_rule(name: str) -> OpRule:
    return OpRule(("x", "y"), _binary(name), tensors=frozenset({"x", "y"}))


def _unary_rule(name: str) -> OpRule:
    return OpRule(("x",), _unary(name), tensors=frozenset({"x"}))


def _reduce_rule(name: str) -> OpRule:
    return OpRule(("input_tensor", "axis", "keepdims"), _reduce(name),
                  tensors=frozenset({"input_tensor"}), constants={"axis": _axis, "keepdims": boolean})


OP_RULES: Mapping[str, OpRule] = MappingProxyType({
    "linalg.matmul": OpRule(("a", "b", *_FLAG), _matmul, tensors=frozenset({"a", "b"}),
                            constants=_FLAG),
    "__operators__.add": _binary_rule("add"),
    "math.add": _binary_rule("add"),
    "math.subtract": _binary_rule("subtract"),
    "math.multiply": _binary_rule("multiply"),
    "math.truediv": _binary_rule("true_divide"),
    "math.maximum": _binary_rule("maximum"),
    "math.minimum": _binary_rule("minimum"),
    "math.pow": _binary_rule("power"),
    "math.equal": _binary_rule("equal"),
    "math.not_equal": _binary_rule("not_equal"),
    "math.greater": _binary_rule("greater"),
    "math.greater_equal": _binary_rule("greater_equal"),
    "math.less": _binary_rule("less"),
    "math.less_equal": _binary_rule("less_equal"),
    "math.sqrt": _unary_rule("sqrt"),
    "math.rsqrt": _unary_rule("rsqrt"),
    "math.exp": _unary_rule("exp"),
    "math.log": _unary_rule("log"),
    "math.abs": _unary_rule("abs"),
    "math.square": _unary_rule("square"),
    "math.negative": _unary_rule("negative"),
    "math.tanh": _unary_rule("tanh"),
    "math.sigmoid": _unary_rule("sigmoid"),
    "nn.relu": OpRule(("features",), lambda ops, features: ops.relu(features),
                      tensors=frozenset({"features"})),
    "nn.softmax": OpRule(("logits", "axis"), lambda ops, logits, axis=-1: ops.softmax(
        logits, axis=-1 if axis is None else axis), tensors=frozenset({"logits"}),
        constants={"axis": optional(integer)}),
    "math.reduce_sum": _reduce_rule("sum"),
    "math.reduce_mean": _reduce_rule("mean"),
    "math.reduce_max": _reduce_rule("max"),
    "math.reduce_min": _reduce_rule("min"),
    "compat.v1.transpose": OpRule(("a", "perm", "conjugate"),
                                  lambda ops, a, perm=None, conjugate=False: ops.transpose(a, perm),
                                  tensors=frozenset({"a"}),
                                  constants={"perm": optional(int_tuple), "conjugate": boolean}),
    "transpose": OpRule(("a", "perm", "conjugate"),
                        lambda ops, a, perm=None, conjugate=False: ops.transpose(a, perm),
                        tensors=frozenset({"a"}),
                        constants={"perm": optional(int_tuple), "conjugate": boolean}),
    "expand_dims": OpRule(("input", "axis"), lambda ops, input, axis: ops.expand_dims(input, axis),
                          tensors=frozenset({"input"}), constants={"axis": integer}),
    "compat.v1.squeeze": OpRule(("input", "axis", "squeeze_dims"),
                                lambda ops, input, axis=None, squeeze_dims=None: ops.squeeze(
                                    input, axis=axis if squeeze_dims is None else squeeze_dims),
                                tensors=frozenset({"input"}),
                                constants={"axis": _axis, "squeeze_dims": _axis}),
    "reshape": OpRule(("tensor", "shape"), lambda ops, tensor, shape: ops.reshape(tensor, shape),
                      tensors=frozenset({"tensor"}), constants={"shape": int_tuple}),
    "concat": OpRule(("values", "axis"), lambda ops, values, axis: ops.concatenate(values, axis),
                     tensors=frozenset({"values"}), constants={"axis": integer}),
    "stack": OpRule(("values", "axis"), lambda ops, values, axis=0: ops.stack(values, axis),
                    tensors=frozenset({"values"}), constants={"axis": integer}),
    "cast": OpRule(("x", "dtype"), lambda ops, x, dtype: ops.cast(x, dtype),
                   tensors=frozenset({"x"}), constants={"dtype": choice(*CAST_DTYPES)}),
    "__operators__.getitem": OpRule(("tensor", "slice_spec"),
                                    lambda ops, tensor, slice_spec: tensor[slice_key(slice_spec)],
                                    tensors=frozenset({"tensor"}),
                                    constants={"slice_spec": check_slice_spec}),
})

OP_CLASSES = frozenset({"TFOpLambda", "SlicingOpLambda"})


def supported_ops() -> list[str]:
    """Sorted TF symbols (as tf.keras 2 stores them in `function`) that can be rebuilt."""
    return sorted(OP_RULES)


def check_op_arguments(function: str, first: Any, kwargs: Mapping[str, Any],
                       is_tensor: Callable[[Any], bool], major: int) -> dict[str, Any]:
    """Bind a node's first argument and keyword arguments to `function`'s parameters.

    Returns {parameter: value} with constants validated and normalized; tensors
    (leaves for which `is_tensor` is true) are kept as they are. Raises `BadValue`
    for an unknown symbol, unknown parameter, or a tensor where a constant is required.
    """
    if function not in OP_RULES:
        raise BadValue(f"TF op {function!r} is not in the op table")
    rule = OP_RULES[function]
    bound = {rule.params[0]: first}
    for key, value in kwargs.items():
        if key == "name":
            continue
        if key not in rule.params or key in bound:
            raise BadValue(f"TF op {function!r} has no supported argument {key!r}")
        bound[key] = value
    return check_bound_constants(function, rule, bound, is_tensor, major)


def check_bound_constants(function: str, rule: OpRule, bound: dict[str, Any],
                          is_tensor: Callable[[Any], bool], major: int) -> dict[str, Any]:
    """Check each bound argument: tensor operands are tensors or numbers, constants pass their check."""
    for key, value in bound.items():
        if key in rule.tensors:
            _check_operand(function, key, value, is_tensor)
            continue
        if _contains_tensor(value, is_tensor):
            raise BadValue(f"argument {key!r} of op {function!r} must be a constant")
        try:
            bound[key] = rule.constants[key](value, major)
        except BadValue as exc:
            raise BadValue(f"argument {key!r} of op {function!r}: {exc}") from None
    missing = [key for key in rule.params[:1] if key not in bound]
    if missing:
        raise BadValue(f"op {function!r} is missing argument {missing[0]!r}")
    return bound


def _check_operand(function: str, key: str, value: Any, is_tensor: Callable[[Any], bool]) -> None:
    if is_tensor(value) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return
    if isinstance(value, (list, tuple)) and value:
        for item in value:
            _check_operand(function, key, item, is_tensor)
        return
    raise BadValue(f"argument {key!r} of TF op {function!r} must be a tensor or number, got {value!r}")


def _contains_tensor(value: Any, is_tensor: Callable[[Any], bool]) -> bool:
    if is_tensor(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_tensor(item, is_tensor) for item in value)
    return False
