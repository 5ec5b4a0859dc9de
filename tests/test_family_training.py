"""Specification of v9 training: the bundle it writes, its metrics, and repeatability."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from modelreg.errors import UsageError
from modelreg.families.keras_graph import read_graph
from modelreg.families.v9.data import dataset_fingerprint, load_dataset
from modelreg.families.v9.demo_data import write_demo_dataset
from modelreg.families.v9.inference import Network, load_network, predict
from modelreg.families.v9.preprocessing import stratified_split
from modelreg.families.v9.training import FAMILY_ATTR, HYPERPARAMETERS_ATTR, TrainOptions, artifact_names, train

SMALL = dict(lstm_units=4, attention_units=4, dense_units=6)


def tiny_options(**overrides) -> TrainOptions:
    return TrainOptions(**{"epochs": 3, "batch_size": 8, "hyperparameters": SMALL, **overrides})


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    write_demo_dataset(directory, seed=7, n=20, classes=["angry", "calm", "happy", "sad"],
                       feature_dim=6, max_len=12)
    return directory


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory):
    epochs = []
    out = tmp_path_factory.mktemp("bundle")
    result = train(demo_dir, out, options=tiny_options(),
                   on_epoch=lambda epoch, logs: epochs.append((epoch, logs)))
    return result, epochs


def test_artifact_names_follow_the_version():
    assert artifact_names() == {"weights": "best_model_v9.h5", "labels": "label_classes_v9.npy",
                                "mean": "audio_mean_v9.npy", "std": "audio_std_v9.npy"}
    assert artifact_names("v10")["weights"] == "best_model_v10.h5"
    with pytest.raises(UsageError, match="Invalid version"):
        artifact_names("../v9")


@pytest.mark.parametrize("options, fragment", [
    (TrainOptions(epochs=0), "epochs must be a positive integer"),
    (TrainOptions(hyperparameters={"num_classes": 4}), r"\['num_classes'\] come from the data"),
    (TrainOptions(hyperparameters={"lstm_units": -1}), "lstm_units must be a positive integer"),
    (TrainOptions(max_len=0), "max_len must be a positive integer"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, options, fragment):
    with pytest.raises(UsageError, match=fragment):
        train(tmp_path / "no-data", tmp_path / "out", options=options)


@pytest.mark.tf
def test_training_writes_the_four_artifacts_and_reports_everything(trained, demo_dir):
    result, epochs = trained

    assert set(result.files) == {"weights", "labels", "mean", "std"}
    assert [p.name for p in result.files.values()] == list(artifact_names("v9").values())
    labels = np.load(result.files["labels"], allow_pickle=False)
    assert labels.dtype.kind == "U" and labels.tolist() == ["angry", "calm", "happy", "sad"]
    for role in ("mean", "std"):
        array = np.load(result.files[role], allow_pickle=False)
        assert array.dtype == np.float32 and array.shape == (6,)
    assert result.hyperparameters["num_classes"] == 4 and result.hyperparameters["feature_dim"] == 6
    assert result.hyperparameters["sequence_length"] == result.metrics["padding_length"]
    assert {k: result.metrics[k] for k in ("samples", "train_samples", "val_samples", "classes")} == \
        {"samples": 20, "train_samples": 16, "val_samples": 4, "classes": 4}
    assert result.metrics["epochs_run"] == 3 and 1 <= result.metrics["best_epoch"] <= 3
    assert [epoch for epoch, _ in epochs] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epochs[0][1])
    assert result.training["epochs"] == 3 and result.training["learning_rate"] == 1e-3
    assert result.dataset_fingerprint == dataset_fingerprint(sorted(demo_dir.glob("*.npz")))


@pytest.mark.tf
def test_weights_file_carries_its_graph_and_hyperparameters_as_plain_json(trained):
    result, _ = trained
    weights = result.files["weights"]

    with h5py.File(weights, "r") as handle:
        assert handle.attrs[FAMILY_ATTR] == "wav2vec-bilstm-attention"
        assert json.loads(handle.attrs[HYPERPARAMETERS_ATTR]) == result.hyperparameters
        assert "model_weights" in handle and "optimizer_weights" not in handle
        assert json.loads(handle.attrs["model_config"])["class_name"] == "Functional"
    graph = read_graph(weights)
    assert [name for name, _, _ in graph.inputs] == ["features", "mask"]


@pytest.mark.tf
def test_bundle_loads_and_predicts_like_the_in_memory_model(trained, demo_dir):
    result, _ = trained
    dataset = load_dataset(demo_dir)
    labels = np.load(result.files["labels"], allow_pickle=False).tolist()
    mean = np.load(result.files["mean"], allow_pickle=False)
    std = np.load(result.files["std"], allow_pickle=False)

    loaded = load_network(result.files["weights"], "best_model_v9.h5")
    in_memory_network = Network(model=result.model, graph=None, contract=loaded.contract, feed=loaded.feed)

    from_disk = predict(loaded, labels, mean, std, dataset.features)
    in_memory = predict(in_memory_network, labels, mean, std, dataset.features)
    assert np.allclose(np.stack([p for _, p in from_disk]), np.stack([p for _, p in in_memory]),
                       atol=1e-6)
    _, val = stratified_split(dataset.labels)
    hits = [from_disk[i][0] == dataset.labels[i] for i in val]
    assert np.mean(hits) == pytest.approx(result.metrics["val_accuracy"])


@pytest.mark.tf
def test_training_twice_with_the_same_seed_gives_identical_weights_and_metrics(trained, demo_dir,
                                                                                  tmp_path):
    first, _ = trained

    second = train(demo_dir, tmp_path / "again", options=tiny_options())

    assert second.metrics == first.metrics and second.history == first.history
    with h5py.File(first.files["weights"], "r") as a, h5py.File(second.files["weights"], "r") as b:
        names = []
        a["model_weights"].visititems(lambda name, item: names.append(name)
                                      if isinstance(item, h5py.Dataset) else None)
        assert names
        for name in names:
            assert np.array_equal(a["model_weights"][name][()], b["model_weights"][name][()]), name
    for role in ("mean", "std", "labels"):
        assert first.files[role].read_bytes() == second.files[role].read_bytes()


@pytest.mark.tf
def test_max_len_truncates_with_a_warning(demo_dir, tmp_path):
    warnings = []

    result = train(demo_dir, tmp_path / "short", on_warning=warnings.append,
                   options=tiny_options(epochs=1, max_len=5, version="v9-short"))

    assert result.hyperparameters["sequence_length"] == 5
    assert result.files["weights"].name == "best_model_v9-short.h5"
    assert warnings and "longer than 5 frames were truncated" in warnings[0]
