"""Fixtures for the Keras graph rebuilder tests: both Kerases and a save/rebuild/compare helper."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TOLERANCE = 1e-5


@pytest.fixture(scope="session")
def k2():
    """Keras 2 (tf_keras), the writer of tf.keras-era files."""
    import tf_keras
    return tf_keras


@pytest.fixture(scope="session")
def k3():
    """Keras 3, the writer of `model.save("x.h5")` legacy files and the rebuild target."""
    import keras
    return keras


@pytest.fixture
def roundtrip(tmp_path: Path):
    """Save `model` as a full-model .h5, rebuild it safely, assert equal predictions; return both."""
    from modelreg.families.keras_graph import load_model_from_h5

    def check(model, inputs, name: str = "model.h5", custom_layers=None):
        path = tmp_path / name
        model.save(path)
        expected = model.predict(inputs, verbose=0)
        rebuilt = load_model_from_h5(path, custom_layers=custom_layers)
        actual = rebuilt.predict(inputs, verbose=0)
        expected_list = expected if isinstance(expected, list) else [expected]
        actual_list = actual if isinstance(actual, list) else [actual]
        assert len(actual_list) == len(expected_list)
        for want, got in zip(expected_list, actual_list):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
        return path, rebuilt

    return check


@pytest.fixture(scope="session")
def sequences():
    """12 x 16 sequences, batch of 4, with trailing all-zero padding rows of different lengths."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 12, 16)).astype("float32")
    lengths = np.array([12, 9, 5, 2])
    mask = np.arange(12)[None, :] < lengths[:, None]
    x[~mask] = 0.0
    return x, mask
