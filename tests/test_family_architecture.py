"""Specification of the v9 architecture: hyper-parameter validation and masking by true length."""

from __future__ import annotations

import numpy as np
import pytest

from modelreg.errors import UsageError
from modelreg.families.v9.architecture import (
    DEFAULT_HYPERPARAMETERS,
    build_model,
    validate_hyperparameters,
)

TINY = dict(sequence_length=6, feature_dim=4, lstm_units=3, attention_units=4, dense_units=5,
            num_classes=3, recurrent_dropout=0.0, dropout=0.0)


def test_defaults_are_complete_and_valid():
    assert validate_hyperparameters({}) == DEFAULT_HYPERPARAMETERS
    assert DEFAULT_HYPERPARAMETERS["sequence_length"] == 221
    assert DEFAULT_HYPERPARAMETERS["feature_dim"] == 768


@pytest.mark.parametrize("override, fragment", [
    ({"lstm_units": 0}, "lstm_units must be a positive integer"),
    ({"lstm_units": 2.5}, "lstm_units must be a positive integer"),
    ({"dense_units": True}, "dense_units must be a positive integer"),
    ({"dropout": 1.0}, r"dropout must be a rate in \[0, 1\)"),
    ({"l2": -1}, "l2 must be a finite number"),
    ({"num_classes": 1}, "num_classes must be at least 2"),
    ({"masking": "zeros"}, "masking must be one of"),
    ({"lstm_unit": 8}, r"Unknown hyper-parameter\(s\) \['lstm_unit'\]"),
])
def test_bad_hyperparameters_are_refused_with_the_key_named(override, fragment):
    with pytest.raises(UsageError, match=fragment):
        validate_hyperparameters(override)


@pytest.mark.tf
def test_an_all_zero_frame_inside_the_true_length_counts():
    import keras

    keras.utils.set_random_seed(0)  # unseeded, all 5 ReLU units of TINY are sometimes dead: uniform output
    model = build_model(TINY)
    features = np.random.default_rng(0).normal(size=(1, 6, 4)).astype(np.float32)
    features[0, 3:] = 0.0          # frame 3 is real but all zero; frames 4 and 5 are padding
    counted = np.array([[True, True, True, True, False, False]])
    dropped = np.array([[True, True, True, False, False, False]])

    with_frame = model.predict([features, counted], verbose=0)
    without_frame = model.predict([features, dropped], verbose=0)

    assert not np.allclose(with_frame, without_frame, atol=1e-6)


@pytest.mark.tf
def test_value_masking_mistakes_an_all_zero_frame_for_padding_but_lengths_does_not():
    lengths_model = build_model(TINY)
    value_model = build_model({**TINY, "masking": "value"})
    value_model.set_weights(lengths_model.get_weights())
    features = np.random.default_rng(1).normal(size=(1, 6, 4)).astype(np.float32)
    features[0, 3:] = 0.0
    only_first_three = np.array([[True, True, True, False, False, False]])

    assert np.allclose(value_model.predict(features, verbose=0),
                       lengths_model.predict([features, only_first_three], verbose=0), atol=1e-6)


@pytest.mark.tf
def test_padding_content_does_not_change_the_prediction():
    model = build_model(TINY)
    features = np.random.default_rng(2).normal(size=(1, 6, 4)).astype(np.float32)
    mask = np.array([[True, True, True, True, False, False]])
    noisy = features.copy()
    noisy[0, 4:] = 50.0

    assert np.allclose(model.predict([features, mask], verbose=0),
                       model.predict([noisy, mask], verbose=0), atol=1e-6)
