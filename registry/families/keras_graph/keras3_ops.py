"""The Keras 3 operation table: `keras.ops` calls a Keras 3 functional config records as nodes.

Keras 3 stores a `keras.ops` call on a symbolic tensor as a layer entry whose
`class_name` is the operation class (`NotEqual`, `Any`, `Matmul`, ...), whose
config holds the constructor arguments (`axis`, `keepdims`, `dtype`) and whose
inbound node holds the call arguments. It does this for its own mask
computations too: a `Masking` layer's mask becomes `NotEqual` + `Any` nodes
feeding the next layer's `mask=`. `KERAS3_OP_RULES` maps each allowlisted class
to its parameters (call arguments first, then config keys) and `keras.ops`
implementation; like Keras 3 operations, the rebuilt op layers carry no mask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from .layers import BadValue, boolean, choice, int_tuple, integer, optional
from .ops import CAST_DTYPES, OpRule, check_bound_constants, check_slice_spec, slice_key


def _axis(value: Any, major: int) -> Any:
    return None if value is None else (int_tuple(value, major) if isinstance(value, (list, tuple))
                                       else integer(value, major))


def _false_or_none(value: Any, major: int) -> None:
    if value is not None and value is not False:
        raise BadValue(f"only null or false is supported, got {value!r}")


def _binary(name: str) -> OpRule:
    return OpRule(("x1", "x2"), lambda ops, x1, x2: getattr(ops, name)(x1, x2),
                  tensors=frozenset({"x1", "x2"}))


def _unary(name: str) -> OpRule:
    return OpRule(("x",), lambda ops, x: getattr(ops, name)(x), tensors=frozenset({"x"}))


def _no_initial(value: Any, major: int) -> None:
    if value is not None:
        raise BadValue(f"an initial value is not supported, got {value!r}")


def _reduce(name: str) -> OpRule:
    return OpRule(("x", "axis", "keepdims", "initial"),
                  lambda ops, x, axis=None, keepdims=False, initial=None: getattr(ops, name)(
                      x, axis=axis, keepdims=keepdims),
                  tensors=frozenset({"x"}),
                  constants={"axis": _axis, "keepdims": boolean, "initial": _no_initial})


KERAS3_OP_RULES: Mapping[str, OpRule] = MappingProxyType({
    **{cls: _binary(fn) for cls, fn in {
        "Add": "add", "Subtract": "subtract", "Multiply": "multiply", "TrueDivide": "true_divide",
        "Divide": "divide", "Maximum": "maximum", "Minimum": "minimum", "Matmul": "matmul",
        "Equal": "equal", "NotEqual": "not_equal", "Greater": "greater", "Less": "less",
        "GreaterEqual": "greater_equal", "LessEqual": "less_equal", "LogicalAnd": "logical_and",
        "LogicalOr": "logical_or"}.items()},
    **{cls: _unary(fn) for cls, fn in {
        "LogicalNot": "logical_not", "Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Abs": "abs",
        "Square": "square", "Negative": "negative"}.items()},
    **{cls: _reduce(fn) for cls, fn in {
        "Any": "any", "All": "all", "Sum": "sum", "Mean": "mean", "Max": "max",
        "Min": "min"}.items()},
    "ConvertToTensor": OpRule(("x", "dtype", "sparse", "ragged"),
                              lambda ops, x, dtype=None, sparse=None, ragged=None:
                              ops.convert_to_tensor(x, dtype=dtype),
                              tensors=frozenset({"x"}),
                              constants={"dtype": optional(choice(*CAST_DTYPES)),
                                         "sparse": _false_or_none, "ragged": _false_or_none}),
    "Cast": OpRule(("x", "dtype"), lambda ops, x, dtype: ops.cast(x, dtype),
                   tensors=frozenset({"x"}), constants={"dtype": choice(*CAST_DTYPES)}),
    "GetItem": OpRule(("x", "key"), lambda ops, x, key: x[slice_key(key)],
                      tensors=frozenset({"x"}), constants={"key": check_slice_spec}),
    "Softmax": OpRule(("x", "axis"), lambda ops, x, axis=-1: ops.softmax(x, axis=axis),
                      tensors=frozenset({"x"}), constants={"axis": _axis}),
    "Transpose": OpRule(("x", "axes"), lambda ops, x, axes=None: ops.transpose(x, axes),
                        tensors=frozenset({"x"}), constants={"axes": optional(int_tuple)}),
    "ExpandDims": OpRule(("x", "axis"), lambda ops, x, axis: ops.expand_dims(x, axis),
                         tensors=frozenset({"x"}), constants={"axis": _axis}),
    "Squeeze": OpRule(("x", "axis"), lambda ops, x, axis=None: ops.squeeze(x, axis=axis),
                      tensors=frozenset({"x"}), constants={"axis": _axis}),
})


def supported_keras3_ops() -> list[str]:
    """Sorted Keras 3 operation class names that can be rebuilt."""
    return sorted(KERAS3_OP_RULES)


def check_keras3_op(class_name: str, config: Mapping[str, Any], args: tuple, kwargs: Mapping,
                    is_tensor: Callable[[Any], bool]) -> dict[str, Any]:
    """Bind an operation's call args, call kwargs and config to its parameters; see `ops.py`."""
    rule = KERAS3_OP_RULES[class_name]
    if len(args) > len(rule.params):
        raise BadValue(f"op {class_name} takes at most {len(rule.params)} arguments")
    bound = dict(zip(rule.params, args))
    for key, value in [*kwargs.items(), *((k, v) for k, v in config.items() if k != "name")]:
        if key not in rule.params or key in bound:
            raise BadValue(f"op {class_name} has no supported argument {key!r}")
        bound[key] = value
    return check_bound_constants(class_name, rule, bound, is_tensor, 3)
