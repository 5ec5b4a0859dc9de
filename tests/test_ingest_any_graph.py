"""The team's own `.h5` files, written the ways the seed's script plausibly wrote them, load as what they compute.

Each model is written by the test with tf_keras (Keras 2) or Keras 3 as a full-model `.h5`, ingested as
a v9 bundle, loaded with `modelreg.load`, and `predict` on raw features must equal the writing Keras's
own `model.predict` on the same normalized, padded input within 1e-5.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import modelreg
from modelreg.errors import InvalidArtifact
from modelreg.local.cache import Cache
from modelreg.manifest import canonical_json
from tests.helpers import reference_inputs, run_cli

pytestmark = pytest.mark.tf

FRAMES, WIDTH, LABELS = 12, 6, np.array(["angry", "calm", "happy"])
CONTRACT = {"sequence_length": FRAMES, "feature_dim": WIDTH, "masking": "value"}


def encoder(k, x):
    x = k.layers.Masking(0.0)(x)
    x = k.layers.Bidirectional(k.layers.LSTM(4, return_sequences=True, recurrent_dropout=0.2))(x)
    return k.layers.LayerNormalization()(x)


def keras_attention(k):
    inputs = k.Input((FRAMES, WIDTH))
    h = encoder(k, inputs)
    q, key, v = (k.layers.Dense(8)(h) for _ in range(3))
    pooled = k.layers.GlobalAveragePooling1D()(k.layers.Attention()([q, v, key]))
    hidden = k.layers.Dropout(0.5)(k.layers.Dense(8, activation="relu")(pooled))
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(hidden))


def two_hidden_dense(k):
    inputs = k.Input((FRAMES, WIDTH))
    h = encoder(k, inputs)
    q, key, v = (k.layers.Dense(8)(h) for _ in range(3))
    pooled = k.layers.GlobalAveragePooling1D()(k.layers.Attention()([q, v, key]))
    hidden = k.layers.Dense(16, activation="relu", kernel_regularizer=k.regularizers.L2(0.01))(pooled)
    hidden = k.layers.Dense(8, activation="relu")(k.layers.Dropout(0.5)(hidden))
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(hidden))


def tf_op_attention(k):
    import tensorflow as tf

    inputs = k.Input((FRAMES, WIDTH))
    h = encoder(k, inputs)
    q, key, v = (k.layers.Dense(8)(h) for _ in range(3))
    weights = tf.nn.softmax(tf.matmul(q, key, transpose_b=True) / tf.sqrt(8.0), axis=-1)
    pooled = k.layers.GlobalAveragePooling1D()(tf.matmul(weights, v))
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(pooled))


def multi_head_attention(k):
    inputs = k.Input((FRAMES, WIDTH))
    h = encoder(k, inputs)
    attended = k.layers.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(k.layers.GlobalAveragePooling1D()(attended)))


def gru(k):
    inputs = k.Input((FRAMES, WIDTH))
    h = k.layers.Bidirectional(k.layers.GRU(5, return_sequences=True))(k.layers.Masking(0.0)(inputs))
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(k.layers.GlobalMaxPooling1D()(h)))


def conv_front_end(k):
    inputs = k.Input((FRAMES, WIDTH))
    h = k.layers.Conv1D(8, 3, padding="same", activation="relu")(inputs)
    h = k.layers.LSTM(6)(k.layers.MaxPooling1D(2)(h))
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(h))


def sequential(k):
    return k.Sequential([k.Input((FRAMES, WIDTH)), k.layers.Masking(0.0), k.layers.LSTM(6),
                         k.layers.Dense(3, activation="softmax")])


MODELS = {"keras_attention": keras_attention, "two_hidden_dense": two_hidden_dense,
          "multi_head_attention": multi_head_attention, "gru": gru, "conv_front_end": conv_front_end,
          "sequential": sequential}
CASES = [(name, writer) for name in MODELS for writer in ("tf_keras", "keras")] + [("tf_op_attention", "tf_keras")]


def keras_module(writer: str):
    if writer == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def write_bundle_files(directory: Path, model, writer: str) -> tuple[np.ndarray, np.ndarray]:
    directory.mkdir(parents=True, exist_ok=True)
    if writer == "tf_keras":
        model.save(str(directory / "best_model_v9.h5"))
    else:
        import keras

        keras.saving.save_model(model, directory / "best_model_v9.h5")
    rng = np.random.default_rng(3)
    mean = rng.normal(size=WIDTH).astype(np.float32)
    std = rng.uniform(0.5, 2.0, size=WIDTH).astype(np.float32)
    np.save(directory / "label_classes_v9.npy", LABELS)
    np.save(directory / "audio_mean_v9.npy", mean)
    np.save(directory / "audio_std_v9.npy", std)
    return mean, std


def utterances() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.normal(size=(n, WIDTH)).astype(np.float32) for n in (12, 5, 9, 20, 1)]


@pytest.mark.parametrize("name, writer", CASES)
def test_a_foreign_h5_loads_as_the_function_it_computes(name, writer, tmp_path):
    from modelreg.config import Settings
    from modelreg.ingest import ingest
    from modelreg.refs import Ref

    k = keras_module(writer)
    k.utils.set_random_seed(1)
    model = MODELS.get(name, tf_op_attention)(k)
    mean, std = write_bundle_files(tmp_path / "artifacts", model, writer)
    settings = Settings.resolve()
    manifest = ingest(settings, Ref("emotion", "v9"), source_dir=tmp_path / "artifacts")

    bundle = modelreg.load("v9", settings=settings)
    features = utterances()
    got = np.array([[p.probabilities[label] for label in LABELS] for p in bundle.predict(features)])
    expected = model.predict(reference_inputs(CONTRACT, features, mean, std), verbose=0)

    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert manifest.model["contract"] == {"sequence_length": FRAMES, "feature_dim": WIDTH, "num_classes": 3,
                                          "mask_input": False}
    assert len(manifest.model["graph"]["digest"]) == 64


def test_a_modelreg_trained_bundle_loads_through_the_same_rebuilder(tmp_path, settings):
    from modelreg.families.v9.demo_data import write_demo_dataset
    from modelreg.families.v9.training import TrainOptions
    from modelreg.refs import Ref
    from modelreg.train import train_bundle

    write_demo_dataset(tmp_path / "data", seed=0, n=40)
    options = TrainOptions(epochs=2, max_len=20, hyperparameters={"lstm_units": 4, "attention_units": 4,
                                                                  "dense_units": 4})
    manifest, result, _ = train_bundle(settings, Ref("emotion", "v9"), data_dir=tmp_path / "data",
                                       out_dir=tmp_path / "out", options=options)
    assert manifest.model["contract"]["mask_input"] is True
    assert manifest.model["hyperparameters"]["lstm_units"] == 4
    bundle = modelreg.load("v9", settings=settings)
    from modelreg.families.v9.inference import Network, predict

    in_memory = Network(model=result.model, graph=None, contract=bundle.contract, feed=bundle.network.feed)
    features = [np.asarray(f) for f in utterances_of(tmp_path / "data")]
    ours = np.stack([p for _, p in predict(bundle.network, bundle.labels, bundle.mean, bundle.std, features)])
    theirs = np.stack([p for _, p in predict(in_memory, bundle.labels, bundle.mean, bundle.std, features)])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def utterances_of(directory: Path) -> list[np.ndarray]:
    from modelreg.families.v9.data import load_dataset

    return load_dataset(directory).features[:6]


def hostile_lambda_files(directory: Path, marker: Path) -> None:
    import tf_keras

    inputs = tf_keras.Input((FRAMES, WIDTH))
    marker_name = str(marker)
    hostile = tf_keras.layers.Lambda(lambda x: (open(marker_name, "w").close(), x)[1], name="sneaky")(inputs)
    outputs = tf_keras.layers.Dense(3, activation="softmax")(tf_keras.layers.GlobalAveragePooling1D()(hostile))
    model = tf_keras.Model(inputs, outputs)
    write_bundle_files(directory, model, "tf_keras")
    marker.unlink(missing_ok=True)


def unlisted_op_files(directory: Path) -> None:
    import tensorflow as tf
    import tf_keras

    inputs = tf_keras.Input((FRAMES, WIDTH))
    summed = tf.math.cumsum(inputs, axis=1)
    outputs = tf_keras.layers.Dense(3, activation="softmax")(tf_keras.layers.GlobalAveragePooling1D()(summed))
    write_bundle_files(directory, tf_keras.Model(inputs, outputs), "tf_keras")


CUSTOM_LAYER = '''
import tf_keras


@tf_keras.utils.register_keras_serializable("team")
class Scale(tf_keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
'''


def custom_layer_files(directory: Path, site: Path):
    site.mkdir(parents=True, exist_ok=True)
    (site / "team_layers.py").write_text(CUSTOM_LAYER)
    sys.path.insert(0, str(site))
    try:
        import team_layers
        import tf_keras

        inputs = tf_keras.Input((FRAMES, WIDTH))
        scaled = team_layers.Scale(3.0, name="scale")(inputs)
        outputs = tf_keras.layers.Dense(3, activation="softmax")(tf_keras.layers.GlobalAveragePooling1D()(scaled))
        model = tf_keras.Model(inputs, outputs)
        mean, std = write_bundle_files(directory, model, "tf_keras")
    finally:
        sys.path.remove(str(site))
    return model, mean, std


def test_ingest_refuses_a_lambda_naming_it_and_runs_no_code(tmp_path):
    marker = tmp_path / "lambda-ran"
    hostile_lambda_files(tmp_path / "artifacts", marker)
    out = run_cli("ingest", "v9", "--from", str(tmp_path / "artifacts"), expect=1)
    assert "sneaky" in out.stderr and "Lambda" in out.stderr and "Traceback" not in out.stderr
    assert "plugin" in out.stderr
    assert not marker.exists()


def test_ingest_refuses_an_op_outside_the_table_naming_it(tmp_path):
    unlisted_op_files(tmp_path / "artifacts")
    out = run_cli("ingest", "v9", "--from", str(tmp_path / "artifacts"), expect=1)
    assert "cumsum" in out.stderr and "Traceback" not in out.stderr


def test_ingest_refuses_a_custom_class_without_a_plugin(tmp_path):
    custom_layer_files(tmp_path / "artifacts", tmp_path / "site")
    out = run_cli("ingest", "v9", "--from", str(tmp_path / "artifacts"), expect=1)
    assert "Scale" in out.stderr and "plugin" in out.stderr and "Traceback" not in out.stderr


def hand_made_bundle(settings, directory: Path) -> None:
    """Cache and pin a v9 manifest for `directory` without ingest's checks (as an attacker could)."""
    from modelreg.bundle import create_bundle
    from modelreg.refs import Ref

    files = {"best_model_v9.h5": ("weights", directory / "best_model_v9.h5"),
             "label_classes_v9.npy": ("labels", directory / "label_classes_v9.npy"),
             "audio_mean_v9.npy": ("mean", directory / "audio_mean_v9.npy"),
             "audio_std_v9.npy": ("std", directory / "audio_std_v9.npy")}
    model = {"family": "wav2vec-bilstm-attention", "input_shape": [FRAMES, WIDTH], "labels": list(LABELS),
             "hyperparameters": {}}
    create_bundle(settings, Ref("emotion", "v9"), files, model=model, metrics={},
                  provenance={"modelreg_version": "test"})


@pytest.mark.parametrize("kind", ["lambda", "op", "custom"])
def test_load_refuses_a_hand_made_manifest_of_a_refused_graph(kind, tmp_path, settings):
    marker = tmp_path / "lambda-ran"
    if kind == "lambda":
        hostile_lambda_files(tmp_path / "artifacts", marker)
    elif kind == "op":
        unlisted_op_files(tmp_path / "artifacts")
    else:
        custom_layer_files(tmp_path / "artifacts", tmp_path / "site")
    hand_made_bundle(settings, tmp_path / "artifacts")
    with pytest.raises(InvalidArtifact, match={"lambda": "sneaky", "op": "cumsum", "custom": "Scale"}[kind]):
        modelreg.load("v9", settings=settings)
    assert not marker.exists()


PLUGIN = '''
from modelreg.families.v9.family import V9Family


def scale(config):
    import keras
    factor = float(config["factor"])
    return keras.layers.Rescaling(factor, name=config["name"])


class TeamFamily(V9Family):
    """The v9 contract plus the team's Scale layer, supplied by code installed on purpose."""

    name = "team-v9"
    custom_layers = {"team>Scale": scale}
'''


def test_a_plugin_family_loads_a_custom_layer_model(tmp_path):
    site = tmp_path / "site"
    model, mean, std = custom_layer_files(tmp_path / "artifacts", site)
    (site / "team_family.py").write_text(PLUGIN)
    info = site / "team_family-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: team-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[modelreg.families]\nteam-v9 = team_family:TeamFamily\n")
    env = {"PYTHONPATH": str(site)}
    run_cli("ingest", "v9", "--from", str(tmp_path / "artifacts"), "--family", "team-v9", env=env)
    features = utterances()
    np.save(tmp_path / "features.npy", np.array(features, dtype=object), allow_pickle=True)
    expected = model.predict(reference_inputs(CONTRACT, features, mean, std), verbose=0)
    code = ("import json, sys, numpy as np, modelreg\n"
            f"features = list(np.load({str(tmp_path / 'features.npy')!r}, allow_pickle=True))\n"
            "bundle = modelreg.load('v9')\n"
            "print(json.dumps([[p.probabilities[l] for l in bundle.labels] for p in bundle.predict(features)]))\n")
    import os
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr
    np.testing.assert_allclose(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected, atol=1e-5)


def test_the_manifest_records_the_graph_digest_and_its_summary(tmp_path, settings):
    import keras

    from modelreg.ingest import ingest
    from modelreg.refs import Ref

    write_bundle_files(tmp_path / "a", keras_attention(keras), "keras")
    manifest = ingest(settings, Ref("emotion", "v9"), source_dir=tmp_path / "a")
    graph = manifest.model["graph"]
    assert graph["layers"]["Attention"] == 1 and graph["keras_major"] == 3
    assert graph["outputs"] and graph["inputs"][0]["shape"] == [None, FRAMES, WIDTH]
    assert json.loads(canonical_json(manifest.model))["graph"]["digest"] == graph["digest"]
    assert Cache(settings.cache_dir).load_manifest(Ref("emotion", "v9")) == manifest
