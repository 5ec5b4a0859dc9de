"""Models written by Keras 2 (tf_keras) and Keras 3 rebuild to the same predictions (within 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest

from modelreg.families.keras_graph import read_graph

pytestmark = pytest.mark.tf
WRITERS = ["k2", "k3"]


def _masked_attention(K):
    x = K.Input((12, 16))
    h = K.layers.Masking()(x)
    q, k, v = (K.layers.Dense(8, name=name)(h) for name in ("q", "k", "v"))
    attended = K.layers.Attention()([q, v, k])
    pooled = K.layers.GlobalAveragePooling1D()(attended)
    return K.Model(x, K.layers.Dense(3, activation="softmax")(
        K.layers.Dense(8, activation="relu")(pooled)))


def _two_hidden_dense(K):
    x = K.Input((16,))
    h = K.layers.Dense(32, activation="relu")(x)
    h = K.layers.Dropout(0.5)(K.layers.Dense(16, activation="tanh")(h))
    return K.Model(x, K.layers.Dense(3, activation="softmax")(h))


def _self_attention(K):
    x = K.Input((12, 16))
    attended = K.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
    h = K.layers.LayerNormalization()(K.layers.Add()([x, attended]))
    return K.Model(x, K.layers.Dense(3)(K.layers.GlobalMaxPooling1D()(h)))


def _gru(reset_after):
    def build(K):
        x = K.Input((12, 16))
        h = K.layers.Masking()(x)
        h = K.layers.Bidirectional(K.layers.GRU(8, return_sequences=True, reset_after=reset_after),
                                   merge_mode="sum")(h)
        h = K.layers.GRU(8, reset_after=reset_after, go_backwards=True)(h)
        return K.Model(x, K.layers.Dense(3)(h))
    return build


def _conv_front_end(K):
    x = K.Input((12, 16))
    h = K.layers.Conv1D(8, 3, padding="same", activation="relu")(x)
    h = K.layers.MaxPooling1D(2)(h)
    h = K.layers.Conv1D(8, 2, padding="valid", dilation_rate=1)(h)
    h = K.layers.AveragePooling1D(2, padding="same")(h)
    h = K.layers.SimpleRNN(8, return_sequences=True)(h)
    return K.Model(x, K.layers.Dense(3)(K.layers.GlobalAveragePooling1D()(h)))


def _sequential(K):
    return K.Sequential([K.Input((12, 16)), K.layers.LSTM(8, return_sequences=True),
                         K.layers.TimeDistributed(K.layers.Dense(4)),
                         K.layers.Flatten(), K.layers.BatchNormalization(), K.layers.Dense(3)])


def _nested(K):
    inner = K.Sequential([K.Input((16,)), K.layers.Dense(8, activation="elu"),
                          K.layers.BatchNormalization()], name="inner_seq")
    x_in = K.Input((16,))
    functional_inner = K.Model(x_in, K.layers.Dense(8, activation="selu")(x_in), name="inner_fn")
    x = K.Input((12, 16))
    pooled = K.layers.GlobalAveragePooling1D()(x)
    merged = K.layers.Concatenate()([inner(pooled), functional_inner(pooled)])
    return K.Model(x, K.layers.Dense(3)(merged))


def _assorted(K):
    L = K.layers
    x = K.Input((12, 16))
    a = L.Dense(8, activation="swish")(x)
    b = L.EinsumDense("abc,cd->abd", output_shape=(None, 8), bias_axes="d")(x)
    merged = [L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b]),
              L.Maximum()([a, b])]
    h = L.Concatenate(axis=-1)(merged)
    h = L.Activation("softplus")(h)
    h = L.LeakyReLU()(L.ReLU(max_value=2.0)(h))
    h = L.ELU()(L.Softmax(axis=-1)(h))
    h = L.Permute((2, 1))(h)
    h = L.Reshape((16, 24))(h)
    h = L.SpatialDropout1D(0.3)(L.GaussianNoise(0.1)(L.GaussianDropout(0.2)(h)))
    h = L.ActivityRegularization(l1=0.01)(h)
    vector = L.Flatten()(L.AveragePooling1D(4)(h))
    repeated = L.RepeatVector(3)(L.Dense(4)(vector))
    dotted = L.Dot(axes=(2, 2))([repeated, repeated])
    return K.Model(x, [L.Flatten()(dotted), L.Dense(2, activation="sigmoid")(vector)])


def _attention_variants(K):
    L = K.layers
    x = K.Input((12, 16))
    h = L.Masking()(x)
    q, v = L.Dense(8)(h), L.Dense(8)(h)
    scaled, scores = L.Attention(use_scale=True, score_mode="concat")(
        [q, v], use_causal_mask=True, return_attention_scores=True)
    additive = L.AdditiveAttention(use_scale=True)([q, v])
    sequence, state_h, _ = L.LSTM(8, return_sequences=True, return_state=True)(scaled)
    continued = L.Add()([L.LSTM(8)(additive), state_h])
    mha = L.MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3, output_shape=(6,))(
        sequence, additive, additive)
    return K.Model(x, [continued, L.Flatten()(scores), L.GlobalAveragePooling1D()(mha)])


MODELS = {"attention_variants": _attention_variants, "masked_attention": _masked_attention,
          "two_hidden_dense": _two_hidden_dense,
          "self_attention": _self_attention, "gru_reset_after": _gru(True),
          "gru_reset_before": _gru(False), "conv_front_end": _conv_front_end,
          "sequential": _sequential, "nested": _nested, "assorted": _assorted}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_rebuilds_with_identical_predictions(name, writer, request, roundtrip, sequences):
    keras_module = request.getfixturevalue(writer)
    x, _ = sequences
    model = MODELS[name](keras_module)
    inputs = x.mean(axis=1) if name == "two_hidden_dense" else x
    path, rebuilt = roundtrip(model, inputs, f"{name}-{writer}.h5")
    assert len(rebuilt.weights) == len(model.weights)
    assert read_graph(path).keras_major == (2 if writer == "k2" else 3)


@pytest.mark.parametrize("writer", WRITERS)
def test_masking_changes_the_rebuilt_attention(writer, request, roundtrip, sequences):
    """The padded rows really are masked: unmasking them (a tiny offset) changes the output."""
    x, _ = sequences
    _, rebuilt = roundtrip(_masked_attention(request.getfixturevalue(writer)), x, "att.h5")
    shifted = np.where(x == 0.0, 1e-3, x).astype("float32")
    assert np.abs(rebuilt.predict(shifted, verbose=0) - rebuilt.predict(x, verbose=0)).max() > 1e-5


def test_keras2_hard_sigmoid_keeps_the_keras2_formula(k2, roundtrip, sequences):
    x, _ = sequences
    inputs = k2.Input((12, 16))
    h = k2.layers.Bidirectional(k2.layers.LSTM(8, recurrent_activation="hard_sigmoid"))(inputs * 3.0)
    out = k2.layers.Dense(4, activation="hard_sigmoid", name="out")(h)
    path, _ = roundtrip(k2.Model(inputs, out), x, "hard-sigmoid.h5")
    assert read_graph(path).layer("out").params["activation"] == "hard_sigmoid_keras2"


def test_sequential_without_input_layer_uses_batch_input_shape(k2, roundtrip, sequences):
    x, _ = sequences
    model = k2.Sequential([k2.layers.Dense(4, input_shape=(12, 16)), k2.layers.Flatten(),
                           k2.layers.Dense(2)])
    roundtrip(model, x, "seq-input-shape.h5")


def test_tf_ops_assortment(k2, roundtrip, sequences):
    import tensorflow as tf

    x, mask = sequences
    features = k2.Input((12, 16))
    flags = k2.Input((12,), dtype="bool")
    h = k2.layers.Dense(8)(features)
    first = h[:, 0, :]
    mean = tf.reduce_mean(h, axis=1)
    summed = tf.math.reduce_sum(h, axis=[1], keepdims=True)
    expanded = tf.expand_dims(first, 1)
    stacked = tf.concat([expanded, summed, tf.reduce_max(h, axis=1, keepdims=True)], axis=1)
    weights = tf.cast(flags, tf.float32)
    pooled = tf.reduce_sum(h * tf.expand_dims(weights, -1), axis=1) / tf.reduce_sum(
        weights, axis=1, keepdims=True)
    transposed = tf.transpose(stacked, perm=[0, 2, 1])
    flat = tf.reshape(transposed, [-1, 24])
    rescaled = tf.math.rsqrt(tf.square(mean) + 1.0) - tf.sqrt(tf.abs(first) + 1.0)
    out = k2.layers.Concatenate()([flat, pooled, rescaled, -tf.squeeze(expanded, axis=1),
                                   tf.math.maximum(first, mean) * 2.0])
    model = k2.Model([features, flags], out)
    path, _ = roundtrip(model, [x, mask], "tf-ops.h5")
    assert "SlicingOpLambda" in read_graph(path).layer_classes


def _initial_state(K):
    x = K.Input((12, 16))
    h = K.layers.Masking()(x)
    _, state_h, state_c = K.layers.LSTM(8, return_state=True)(K.layers.Dense(8)(h))
    return K.Model(x, K.layers.LSTM(8, name="continued")(h, initial_state=[state_h, state_c]))


def test_keras3_initial_state_rebuilds_exactly(k3, roundtrip, sequences):
    roundtrip(_initial_state(k3), sequences[0], "initial-state.h5")


def test_keras2_initial_state_is_refused(k2, tmp_path):
    """tf.keras 2 and Keras 3 disagree on such a graph under a mask (seen: |d| = 0.27), so refuse."""
    from modelreg.families.keras_graph import UnsupportedGraph

    path = tmp_path / "initial-state-k2.h5"
    _initial_state(k2).save(path)
    with pytest.raises(UnsupportedGraph, match="initial_state") as caught:
        read_graph(path)
    assert caught.value.layer == "continued"


def _masked_nested_and_shared(K):
    L = K.layers
    inner = K.Sequential([K.Input((12, 16)), L.Dense(8, activation="tanh")], name="inner")
    x = K.Input((12, 16))
    shared = L.Dense(8, name="shared")
    h = inner(L.Masking()(x))
    h = L.LSTM(8, return_sequences=True)(h)
    distributed = L.TimeDistributed(L.Dense(4))(h)
    pooled = L.GlobalAveragePooling1D()(distributed)
    return K.Model(x, L.Concatenate()([shared(pooled), shared(L.Dense(4)(pooled))]))


@pytest.mark.parametrize("writer", WRITERS)
def test_mask_through_nested_model_and_shared_layer(writer, request, roundtrip, sequences):
    model = _masked_nested_and_shared(request.getfixturevalue(writer))
    path, _ = roundtrip(model, sequences[0], f"nested-mask-{writer}.h5")
    assert len(read_graph(path).layer("shared").calls) == 2


def test_keras3_ops_in_the_graph_rebuild_exactly(k3, roundtrip, sequences):
    ops, L = k3.ops, k3.layers
    x = k3.Input((12, 16))
    h = L.Dense(8)(x)
    scores = ops.softmax(ops.matmul(h, ops.transpose(h, (0, 2, 1))) / 3.0, axis=-1)
    attended = ops.matmul(scores, h)
    first = attended[:, 0, 1:7]
    summary = ops.mean(attended, axis=1) - ops.max(attended, axis=1)
    expanded = L.Flatten()(ops.expand_dims(first, -1)[..., 0])
    gate = ops.cast(ops.greater(ops.sum(x, axis=-1), 0.0), "float32")
    out = L.Concatenate()([expanded, summary, ops.squeeze(ops.expand_dims(gate, 1), 1)])
    path, _ = roundtrip(k3.Model(x, out), sequences[0], "keras3-ops.h5")
    assert "GetItem" in read_graph(path).layer_classes
