"""The v9 architecture: WAV2VEC frames -> BiLSTM -> masked self-attention -> emotion classes.

`build_model` is what `modelreg train` trains. Loading never uses it: a bundle's
network is rebuilt from the graph its weights file stores (`families.keras_graph`),
so a file written by any script loads as the function it computes. Importing
this module is cheap (Keras is imported inside `build_model`).

Layer names are fixed (`LAYER_NAMES`).

Masking. With `masking="lengths"` (the default) the model has two inputs, the
features `[T, F]` and a boolean mask `[T]` built from each utterance's true
length, and every masked layer receives that mask explicitly: a real frame whose
normalized values happen to be all zero still counts. `masking="value"`
reproduces the Keras-2-era v9 model (a `Masking(0.0)` layer, one input), where
such a frame is silently treated as padding. Both have identical weights, so
weights trained either way load into either.
"""

from __future__ import annotations

import numbers

from modelreg.errors import UsageError

FAMILY = "wav2vec-bilstm-attention"

MASKING_MODES = ("lengths", "value")

DEFAULT_HYPERPARAMETERS = {
    "sequence_length": 221,     # frames per utterance after padding/truncation
    "feature_dim": 768,         # WAV2VEC 2.0 base hidden size
    "lstm_units": 128,          # per direction; the BiLSTM outputs 2 * lstm_units
    "recurrent_dropout": 0.2,
    "attention_units": 64,      # width of the query/key/value projections
    "dense_units": 64,
    "dropout": 0.5,
    "l2": 1e-3,                 # L2 penalty on the hidden Dense kernel
    "num_classes": 13,
    "masking": "lengths",       # "lengths" (mask input) or "value" (Masking(0.0))
}

LAYER_NAMES = {
    "features": "features",
    "mask": "mask",
    "masking": "masking",
    "bilstm": "bilstm",
    "lstm": "lstm",
    "layer_norm": "layer_norm",
    "query": "query",
    "key": "key",
    "value": "value",
    "attention": "attention",
    "pool": "pool",
    "dense": "dense",
    "dropout": "dropout",
    "classifier": "classifier",
}

_INT_KEYS = ("sequence_length", "feature_dim", "lstm_units", "attention_units", "dense_units",
             "num_classes")
_RATE_KEYS = ("recurrent_dropout", "dropout")


def validate_hyperparameters(hp: dict) -> dict:
    """Return `hp` completed with the defaults, after checking every value.

    Raises `UsageError` naming the offending key, its value and the accepted
    range, or listing unknown keys next to the known ones (a typo must not be
    silently ignored).
    """
    if not isinstance(hp, dict):
        raise UsageError(f"Hyper-parameters must be a dict, got {type(hp).__name__}.")
    unknown = sorted(set(hp) - set(DEFAULT_HYPERPARAMETERS))
    if unknown:
        raise UsageError(
            f"Unknown hyper-parameter(s) {unknown} for the {FAMILY} family; "
            f"known: {sorted(DEFAULT_HYPERPARAMETERS)}. Check the spelling."
        )
    full = {**DEFAULT_HYPERPARAMETERS, **hp}
    for key in _INT_KEYS:
        value = full[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise UsageError(f"Hyper-parameter {key} must be a positive integer, got {value!r}.")
        full[key] = int(value)
    if full["num_classes"] < 2:
        raise UsageError(f"Hyper-parameter num_classes must be at least 2, got {full['num_classes']}: "
                         f"a classifier needs two classes or more.")
    for key in _RATE_KEYS:
        value = full[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
            raise UsageError(f"Hyper-parameter {key} must be a rate in [0, 1), got {value!r}.")
        full[key] = float(value)
    l2 = full["l2"]
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not 0.0 <= float(l2) < float("inf"):
        raise UsageError(f"Hyper-parameter l2 must be a finite number >= 0, got {l2!r}.")
    full["l2"] = float(l2)
    if full["masking"] not in MASKING_MODES:
        raise UsageError(f"Hyper-parameter masking must be one of {list(MASKING_MODES)}, "
                         f"got {full['masking']!r}.")
    return full


def build_model(hp: dict, keras_module=None):
    """Build the (uncompiled) v9 network for `hp` (completed with the defaults).

    `keras_module` is the Keras to build with: Keras 3 (`keras`, the default) or
    Keras 2 (`tf_keras`, used by tests to produce Keras-2-era files). Inputs are
    `[features, mask]` for `masking="lengths"` and `features` alone for
    `masking="value"`; the output is a softmax over `num_classes`.

    The query projection is initialised with a variance scaled by
    1/attention_units, standing in for the 1/sqrt(d) of scaled dot-product
    attention without a weightless layer that Keras 2 would not pass masks through.
    """
    hp = validate_hyperparameters(hp)
    if keras_module is None:
        import keras

        keras_module = keras
    layers = keras_module.layers
    names = LAYER_NAMES
    steps, width = hp["sequence_length"], hp["feature_dim"]

    features = layers.Input(shape=(steps, width), name=names["features"])
    recurrent = layers.Bidirectional(
        layers.LSTM(hp["lstm_units"], return_sequences=True,
                    recurrent_dropout=hp["recurrent_dropout"], name=names["lstm"]),
        name=names["bilstm"],
    )
    if hp["masking"] == "lengths":
        mask = layers.Input(shape=(steps,), dtype="bool", name=names["mask"])
        inputs = [features, mask]
        sequence = recurrent(features, mask=mask)
        masks = {"attention": {"mask": [mask, mask]}, "pool": {"mask": mask}}
    else:
        inputs = features
        sequence = recurrent(layers.Masking(mask_value=0.0, name=names["masking"])(features))
        masks = {"attention": {}, "pool": {}}

    sequence = layers.LayerNormalization(name=names["layer_norm"])(sequence)
    query_init = keras_module.initializers.VarianceScaling(
        scale=1.0 / hp["attention_units"], mode="fan_avg", distribution="uniform")
    query = layers.Dense(hp["attention_units"], kernel_initializer=query_init,
                         name=names["query"])(sequence)
    key = layers.Dense(hp["attention_units"], name=names["key"])(sequence)
    value = layers.Dense(hp["attention_units"], name=names["value"])(sequence)
    attended = layers.Attention(name=names["attention"])([query, value, key], **masks["attention"])
    pooled = layers.GlobalAveragePooling1D(name=names["pool"])(attended, **masks["pool"])

    hidden = layers.Dense(hp["dense_units"], activation="relu",
                          kernel_regularizer=keras_module.regularizers.L2(hp["l2"]),
                          name=names["dense"])(pooled)
    hidden = layers.Dropout(hp["dropout"], name=names["dropout"])(hidden)
    outputs = layers.Dense(hp["num_classes"], activation="softmax",
                           name=names["classifier"])(hidden)
    return keras_module.Model(inputs, outputs, name=FAMILY.replace("-", "_"))
