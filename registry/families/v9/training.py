"""Train a v9 model from a directory of WAV2VEC `.npz` files and write its four artifacts.

`train` follows the original v9 recipe (stratified 80/20 split with seed 42, Adam,
sparse categorical cross-entropy, early stopping on validation accuracy that
restores the best weights) and writes, each atomically (temp file + rename):

- `best_model_<version>.h5`: a legacy Keras HDF5 file written by Keras 3's
  `save_model(..., include_optimizer=False)`. It holds the weights (the
  `model_weights` group that `model.load_weights("x.h5")` reads in Keras 3 and in
  Keras 2), Keras' own `model_config` JSON attribute, and two modelreg attributes:
  `modelreg_family` and `modelreg_hyperparameters` (plain JSON of the
  architecture hyper-parameters). The file name must keep its `.h5` suffix.
- `label_classes_<version>.npy`: class names in output-index order (unicode array).
- `audio_mean_<version>.npy`, `audio_std_<version>.npy`: float32 `[feature_dim]`.

Repeatability: Python, NumPy and TensorFlow are seeded with `options.seed`, and
with `options.deterministic` (default) TensorFlow's op determinism is enabled for
the whole process; the same data and options then give identical weights.
Progress is reported through the caller's `on_epoch(epoch, logs)`; the library
prints nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from modelreg.errors import UsageError
from modelreg.families.v9.architecture import FAMILY, build_model, validate_hyperparameters
from modelreg.families.v9.data import load_dataset
from modelreg.families.v9.preprocessing import (
    SPLIT_SEED,
    VALIDATION_FRACTION,
    Warn,
    normalization_stats,
    normalize,
    pad_and_mask,
    padding_length,
    stratified_split,
)
from modelreg.local.atomic import atomic_output, publish, temp_name

ROLES = ("weights", "labels", "mean", "std")
FAMILY_ATTR = "modelreg_family"
HYPERPARAMETERS_ATTR = "modelreg_hyperparameters"
"""Root attributes of the weights file: the family and the training hyper-parameters (plain JSON).
Informational: loading rebuilds the network from Keras' own stored graph, not from these."""
DATA_DERIVED = ("sequence_length", "feature_dim", "num_classes")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

EpochCallback = Callable[[int, dict], None]


def artifact_names(version: str = "v9") -> dict[str, str]:
    """File name per role for a version: best_model_v9.h5, label_classes_v9.npy, audio_{mean,std}_v9.npy."""
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise UsageError(f"Invalid version {version!r} for artifact names: use letters, digits, "
                         f"'.', '_' or '-', e.g. v9.")
    return {"weights": f"best_model_{version}.h5", "labels": f"label_classes_{version}.npy",
            "mean": f"audio_mean_{version}.npy", "std": f"audio_std_{version}.npy"}


@dataclass(frozen=True)
class TrainOptions:
    """How to train. `hyperparameters` overrides architecture defaults (not the data-derived
    sequence_length / feature_dim / num_classes: use `max_len` to cap the padding length)."""

    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    patience: int = 10
    seed: int = 42
    max_len: int | None = None
    version: str = "v9"
    label_pattern: str | None = None
    hyperparameters: dict = field(default_factory=dict)
    deterministic: bool = True


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced: artifact paths by role, every setting, metrics and the data's identity."""

    files: dict
    hyperparameters: dict
    training: dict
    metrics: dict
    labels: list
    dataset_fingerprint: str
    history: dict
    model: object = field(default=None, repr=False, compare=False)
    """The trained Keras model in memory (best weights restored), for callers that keep using it."""


def _check_options(options: TrainOptions) -> dict:
    for name in ("epochs", "batch_size", "patience"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"Training option {name} must be a positive integer, got {value!r}.")
    if not isinstance(options.learning_rate, (int, float)) or not 0 < options.learning_rate < 1:
        raise UsageError(f"Training option learning_rate must be in (0, 1), got {options.learning_rate!r}.")
    if options.max_len is not None and (not isinstance(options.max_len, int) or options.max_len < 1):
        raise UsageError(f"Training option max_len must be a positive integer, got {options.max_len!r}.")
    fixed = sorted(set(options.hyperparameters) & set(DATA_DERIVED))
    if fixed:
        raise UsageError(f"Hyper-parameter(s) {fixed} come from the data and cannot be set; use "
                         f"max_len to cap the sequence length.")
    artifact_names(options.version)
    return validate_hyperparameters(dict(options.hyperparameters))


def train(data_dir: Path, out_dir: Path, *, options: TrainOptions | None = None,
          on_epoch: EpochCallback | None = None, on_warning: Warn | None = None) -> TrainResult:
    """Train on the `.npz` files in `data_dir`; write the four artifacts into `out_dir`.

    `on_epoch(epoch, logs)` is called after each epoch (epoch counts from 1, logs
    holds floats such as loss, accuracy, val_loss, val_accuracy); `on_warning`
    receives messages such as truncated sequences. Raises `NotFound` /
    `InvalidArtifact` for missing or bad data and `UsageError` for bad options.
    """
    options = options or TrainOptions()
    _check_options(options)
    dataset = load_dataset(Path(data_dir), label_pattern=options.label_pattern)
    classes = dataset.classes
    targets = np.array([classes.index(label) for label in dataset.labels], dtype=np.int32)
    train_idx, val_idx = stratified_split(dataset.labels, random_state=SPLIT_SEED)
    train_raw = [dataset.features[i] for i in train_idx]
    length = padding_length(train_raw, options.max_len)
    mean, std = normalization_stats(train_raw, length)
    names = [p.name for p in dataset.files]
    batch, mask = pad_and_mask([normalize(f, mean, std) for f in dataset.features], length,
                               names=names, on_warning=on_warning)
    hp = validate_hyperparameters({**options.hyperparameters, "sequence_length": length,
                                   "feature_dim": dataset.feature_dim, "num_classes": len(classes)})

    model, history, best_epoch = _fit(hp, options, batch, mask, targets, train_idx, val_idx, on_epoch)
    metrics = {
        **_evaluate(model, hp, batch, mask, targets, train_idx, "train"),
        **_evaluate(model, hp, batch, mask, targets, val_idx, "val"),
        "epochs_run": len(history.get("loss", [])),
        "best_epoch": best_epoch,
        "samples": len(targets),
        "train_samples": len(train_idx),
        "val_samples": len(val_idx),
        "classes": len(classes),
        "padding_length": length,
    }
    files = _write_artifacts(Path(out_dir), options.version, model, hp, classes, mean, std)
    training = {key: value for key, value in asdict(options).items() if key != "hyperparameters"}
    training.update(validation_fraction=VALIDATION_FRACTION, split_seed=SPLIT_SEED,
                    optimizer="adam", loss="sparse_categorical_crossentropy",
                    early_stopping="val_accuracy, restore_best_weights")
    return TrainResult(files=files, hyperparameters=hp, training=training, metrics=metrics,
                       labels=list(classes), dataset_fingerprint=dataset.fingerprint,
                       history={k: [float(v) for v in values] for k, values in history.items()},
                       model=model)


def _inputs(hp: dict, batch: np.ndarray, mask: np.ndarray, index: np.ndarray):
    return [batch[index], mask[index]] if hp["masking"] == "lengths" else batch[index]


def _fit(hp, options, batch, mask, targets, train_idx, val_idx, on_epoch):
    import keras

    keras.utils.set_random_seed(options.seed)
    if options.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    model = build_model(hp)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=options.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                            patience=options.patience, restore_best_weights=True)
    callbacks = [stopper]
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch + 1, {k: float(v) for k, v in
                                                                  (logs or {}).items()})))
    history = model.fit(_inputs(hp, batch, mask, train_idx), targets[train_idx],
                        validation_data=(_inputs(hp, batch, mask, val_idx), targets[val_idx]),
                        epochs=options.epochs, batch_size=options.batch_size, shuffle=True,
                        callbacks=callbacks, verbose=0)
    return model, history.history, int(stopper.best_epoch) + 1


def _evaluate(model, hp, batch, mask, targets, index, prefix: str) -> dict:
    loss, accuracy = model.evaluate(_inputs(hp, batch, mask, index), targets[index],
                                    batch_size=64, verbose=0)
    return {f"{prefix}_loss": float(loss), f"{prefix}_accuracy": float(accuracy)}


@contextmanager
def _quiet_legacy_h5_warning():
    """Keras logs a 'legacy HDF5' warning on every .h5 save; the format is chosen on purpose."""
    logger = logging.getLogger("absl")
    muted = _DropMessages("HDF5 file")
    logger.addFilter(muted)
    try:
        yield
    finally:
        logger.removeFilter(muted)


class _DropMessages(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def _write_artifacts(out_dir: Path, version: str, model, hp: dict, classes: list[str],
                     mean: np.ndarray, std: np.ndarray) -> dict[str, Path]:
    import h5py
    import keras

    out_dir.mkdir(parents=True, exist_ok=True)
    names = artifact_names(version)
    files = {role: out_dir / names[role] for role in ROLES}
    temp_weights = temp_name(files["weights"], ".tmp.h5")  # Keras picks its writer by the suffix
    try:
        with _quiet_legacy_h5_warning():
            keras.saving.save_model(model, temp_weights, include_optimizer=False)
        with h5py.File(temp_weights, "a") as handle:
            handle.attrs[FAMILY_ATTR] = FAMILY
            handle.attrs[HYPERPARAMETERS_ATTR] = json.dumps(hp, sort_keys=True)
        publish(temp_weights, files["weights"])
    finally:
        temp_weights.unlink(missing_ok=True)
    _save_npy(files["labels"], np.asarray(classes, dtype=str))
    _save_npy(files["mean"], np.asarray(mean, dtype=np.float32))
    _save_npy(files["std"], np.asarray(std, dtype=np.float32))
    return files


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as handle:
        np.save(handle, array, allow_pickle=False)
