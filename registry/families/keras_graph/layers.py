"""The layer allowlist: which Keras layer classes are rebuilt, and how each config key is treated.

`LAYER_RULES` is data. For every allowlisted class it says which config keys
change the computation (`params`: validated, then passed by name to the Keras 3
constructor of the same class), which must hold one fixed value (`fixed`:
anything else is refused, e.g. `stateful=True`), and which call keyword
arguments a node may carry (`call_kwargs`). Keys in `IGNORED_KEYS` and those
ending in `IGNORED_SUFFIXES` only matter for training or bookkeeping
(initializers, regularizers, constraints, seeds, names, dropout rates of
recurrent layers, implementation choices) and are dropped, because weights are
set afterwards and inference never trains. Any other key is refused, never
dropped: a key modelreg does not know may change what the model computes.

Activations are validated names. Keras 2 `hard_sigmoid` is max(0, min(1, 0.2x + 0.5))
while Keras 3's is relu6(x + 3) / 6, so a Keras 2 file's `hard_sigmoid` is
normalized to `hard_sigmoid_keras2` and rebuilt with the Keras 2 formula.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


class BadValue(Exception):
    """A config value failed validation; the message says what was expected."""


Check = Callable[[Any, int], Any]
"""Validates one config value (given the writer's Keras major version) and returns it normalized."""

IGNORED_KEYS = frozenset({
    "name", "trainable", "dtype", "seed", "activity_regularizer", "implementation", "unroll",
    "dropout", "recurrent_dropout", "unit_forget_bias", "use_cudnn", "flash_attention",
    "momentum", "synchronized", "renorm_momentum", "renorm_clipping", "query_shape",
    "key_shape", "value_shape", "batch_input_shape", "input_shape", "batch_shape",
})
IGNORED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")

_SHARED_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "elu", "selu",
                       "softplus", "softsign", "swish", "silu", "exponential", "mish")
ACTIVATIONS = {
    2: frozenset((*_SHARED_ACTIVATIONS, "hard_sigmoid")),
    3: frozenset((*_SHARED_ACTIVATIONS, "hard_sigmoid", "leaky_relu", "relu6", "log_softmax", "hard_silu",
                  "hard_swish")),
}


def is_ignored(key: str) -> bool:
    """True for config keys that never change what a layer computes at inference."""
    return key in IGNORED_KEYS or key.endswith(IGNORED_SUFFIXES)


def activation(value: Any, major: int) -> str:
    if not isinstance(value, str) or value not in ACTIVATIONS[major]:
        raise BadValue(f"activation {value!r} is not one of {sorted(ACTIVATIONS[major])} "
                       f"(Keras {major})")
    return "hard_sigmoid_keras2" if (major, value) == (2, "hard_sigmoid") else value


def boolean(value: Any, major: int) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"expected true or false, got {value!r}")
    return value


def integer(value: Any, major: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(f"expected an integer, got {value!r}")
    return value


def positive(value: Any, major: int) -> int:
    if integer(value, major) < 1:
        raise BadValue(f"expected a positive integer, got {value!r}")
    return value


def number(value: Any, major: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadValue(f"expected a number, got {value!r}")
    return float(value)


def int_tuple(value: Any, major: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(item, int) and not isinstance(item, bool) for item in value):
        raise BadValue(f"expected a list of integers, got {value!r}")
    return tuple(value)


def shape_tuple(value: Any, major: int) -> tuple[int | None, ...]:
    if not isinstance(value, (list, tuple)) or not all(
            item is None or (isinstance(item, int) and not isinstance(item, bool)) for item in value):
        raise BadValue(f"expected a shape (list of integers or null), got {value!r}")
    return tuple(value)


def single_axis(value: Any, major: int) -> int:
    axes = int_tuple(value, major)
    if len(axes) != 1:
        raise BadValue(f"expected one axis, got {value!r}")
    return axes[0]


def optional(check: Check) -> Check:
    def check_or_none(value: Any, major: int) -> Any:
        return None if value is None else check(value, major)
    return check_or_none


def choice(*allowed: Any) -> Check:
    def check_choice(value: Any, major: int) -> Any:
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise BadValue(f"expected one of {list(allowed)}, got {value!r}")
        return value
    return check_choice


def text(value: Any, major: int) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise BadValue(f"expected a short string, got {value!r}")
    return value


@dataclass(frozen=True)
class LayerRule:
    """How one allowlisted class is validated and rebuilt (see the module docstring)."""

    params: Mapping[str, Check] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    ignored: frozenset[str] = frozenset()
    call_kwargs: frozenset[str] = frozenset()
    renamed: Mapping[str, str] = field(default_factory=dict)
    hyperparameters: tuple[str, ...] = ()
    sublayers: Mapping[str, frozenset[str]] = field(default_factory=dict)


_MASK = frozenset({"mask", "training"})
_RNN_FIXED = {"stateful": False, "time_major": False}
_RNN_COMMON = {"units": positive, "activation": activation, "use_bias": boolean,
               "return_sequences": boolean, "return_state": boolean, "go_backwards": boolean,
               "zero_output_for_mask": boolean}
_RNN_CALL = frozenset({"mask", "training", "initial_state"})
_POOL = {"pool_size": int_tuple, "strides": optional(int_tuple),
         "padding": choice("valid", "same"), "data_format": choice("channels_last", "channels_first")}
_GLOBAL_POOL = {"data_format": choice("channels_last", "channels_first"), "keepdims": boolean}
_IDENTITY_AT_INFERENCE = {"rate": number, "noise_shape": optional(shape_tuple), "stddev": number,
                          "l1": number, "l2": number}
_ATTENTION_CALL = frozenset({"mask", "training", "return_attention_scores", "use_causal_mask"})
RNN_CLASSES = frozenset({"LSTM", "GRU", "SimpleRNN"})
WRAPPABLE = frozenset({"Dense", "EinsumDense", "Conv1D", "LayerNormalization", "BatchNormalization",
                       "Dropout", "Activation", "Flatten", "Reshape", "Permute"})


def _identity(*keys: str) -> LayerRule:
    return LayerRule(params={key: _IDENTITY_AT_INFERENCE[key] for key in keys}, call_kwargs=_MASK)


def _merge(**params: Check) -> LayerRule:
    return LayerRule(params=params, call_kwargs=frozenset({"mask"}))


LAYER_RULES: Mapping[str, LayerRule] = MappingProxyType({
    "Masking": LayerRule(params={"mask_value": number}),
    "LSTM": LayerRule(params={**_RNN_COMMON, "recurrent_activation": activation},
                      fixed=_RNN_FIXED, call_kwargs=_RNN_CALL, hyperparameters=("units",)),
    "GRU": LayerRule(params={**_RNN_COMMON, "recurrent_activation": activation,
                             "reset_after": boolean},
                     fixed=_RNN_FIXED, call_kwargs=_RNN_CALL, hyperparameters=("units",)),
    "SimpleRNN": LayerRule(params=_RNN_COMMON, fixed=_RNN_FIXED, call_kwargs=_RNN_CALL,
                           hyperparameters=("units",)),
    "Bidirectional": LayerRule(params={"merge_mode": optional(choice("concat", "sum", "mul", "ave"))},
                               call_kwargs=_RNN_CALL,
                               sublayers={"layer": RNN_CLASSES, "backward_layer": RNN_CLASSES}),
    "TimeDistributed": LayerRule(call_kwargs=_MASK, sublayers={"layer": WRAPPABLE}),
    "Dense": LayerRule(params={"units": positive, "activation": activation, "use_bias": boolean},
                       fixed={"quantization_config": None, "lora_rank": None},
                       hyperparameters=("units",)),
    "EinsumDense": LayerRule(params={"equation": text, "output_shape": shape_tuple,
                                     "activation": activation, "bias_axes": optional(text)},
                             fixed={"quantization_config": None, "lora_rank": None},
                             hyperparameters=("equation", "output_shape")),
    "Conv1D": LayerRule(params={"filters": positive, "kernel_size": int_tuple, "strides": int_tuple,
                                "padding": choice("valid", "same", "causal"),
                                "data_format": choice("channels_last", "channels_first"),
                                "dilation_rate": int_tuple, "groups": positive,
                                "activation": activation, "use_bias": boolean},
                        hyperparameters=("filters", "kernel_size")),
    "MaxPooling1D": LayerRule(params=_POOL),
    "AveragePooling1D": LayerRule(params=_POOL),
    "GlobalAveragePooling1D": LayerRule(params=_GLOBAL_POOL, call_kwargs=frozenset({"mask"})),
    "GlobalMaxPooling1D": LayerRule(params=_GLOBAL_POOL),
    "LayerNormalization": LayerRule(params={"axis": int_tuple, "epsilon": number, "center": boolean,
                                            "scale": boolean, "rms_scaling": boolean}),
    "BatchNormalization": LayerRule(params={"axis": single_axis, "epsilon": number,
                                            "center": boolean, "scale": boolean},
                                    fixed={"renorm": False}, call_kwargs=_MASK),
    "Attention": LayerRule(params={"use_scale": boolean, "score_mode": choice("dot", "concat")},
                           call_kwargs=_ATTENTION_CALL),
    "AdditiveAttention": LayerRule(params={"use_scale": boolean}, call_kwargs=_ATTENTION_CALL),
    "MultiHeadAttention": LayerRule(
        params={"num_heads": positive, "key_dim": positive, "value_dim": optional(positive),
                "use_bias": boolean, "output_shape": optional(int_tuple),
                "attention_axes": optional(int_tuple)},
        fixed={"use_gate": False, "sliding_window": None, "softmax_robust_masking": False},
        call_kwargs=frozenset({"value", "key", "attention_mask", "return_attention_scores",
                               "training", "use_causal_mask", "query_mask", "value_mask",
                               "key_mask"}),
        hyperparameters=("num_heads", "key_dim")),
    "Dropout": _identity("rate", "noise_shape"),
    "SpatialDropout1D": LayerRule(params={"rate": number}, ignored=frozenset({"noise_shape"}),
                                  call_kwargs=_MASK),
    "GaussianNoise": _identity("stddev"),
    "GaussianDropout": _identity("rate"),
    "ActivityRegularization": _identity("l1", "l2"),
    "Activation": LayerRule(params={"activation": activation}),
    "Softmax": LayerRule(params={"axis": single_axis}, call_kwargs=frozenset({"mask"})),
    "ReLU": LayerRule(params={"max_value": optional(number), "negative_slope": number,
                              "threshold": number}),
    "LeakyReLU": LayerRule(params={"negative_slope": number}, renamed={"alpha": "negative_slope"}),
    "ELU": LayerRule(params={"alpha": number}),
    "Add": _merge(), "Subtract": _merge(), "Multiply": _merge(), "Average": _merge(),
    "Maximum": _merge(), "Minimum": _merge(),
    "Concatenate": _merge(axis=integer),
    "Dot": _merge(axes=int_tuple, normalize=boolean),
    "Reshape": LayerRule(params={"target_shape": shape_tuple}),
    "Permute": LayerRule(params={"dims": int_tuple}),
    "Flatten": LayerRule(params={"data_format": choice("channels_last", "channels_first")}),
    "RepeatVector": LayerRule(params={"n": positive}),
})


def supported_layers() -> list[str]:
    """Sorted names of the allowlisted layer classes, plus the input and model containers."""
    return sorted({*LAYER_RULES, "InputLayer", "Functional", "Model", "Sequential"})


def normalize_params(class_name: str, config: Mapping[str, Any], major: int) -> dict[str, Any]:
    """Validate a layer's config against its rule; return the constructor keyword arguments.

    Raises `BadValue` naming the key for unknown keys, wrong types and values
    outside the allowlist. Keys holding sublayer configs are left to the caller.
    """
    rule = LAYER_RULES[class_name]
    params: dict[str, Any] = {}
    for key, value in config.items():
        target = rule.renamed.get(key, key)
        if key in rule.sublayers:
            continue
        if target in rule.fixed:
            if value != rule.fixed[target] or isinstance(value, bool) != isinstance(
                    rule.fixed[target], bool):
                raise BadValue(f"{key}={value!r} is not supported (only {rule.fixed[target]!r} "
                               "can be rebuilt exactly)")
        elif target in rule.params:
            try:
                params[target] = rule.params[target](value, major)
            except BadValue as exc:
                raise BadValue(f"config key {key!r}: {exc}") from None
        elif key == "causal" and class_name in ("Attention", "AdditiveAttention"):
            params["causal"] = boolean(value, major)
        elif not (is_ignored(key) or key in rule.ignored):
            raise BadValue(f"unknown config key {key!r} (it may change the computation, so it is "
                           "refused rather than dropped)")
    if class_name in RNN_CLASSES and major == 2:
        params.setdefault("zero_output_for_mask", False)
    return params
