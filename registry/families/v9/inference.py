"""Run a v9 model: load weights into the code-built architecture and classify utterances.

`load_weights_into` never calls `load_model` and never reads a stored config into
Keras: the network comes from `build_model(hp)` and only weights are read from the
file, so nothing in the file (Lambda bytecode, custom objects) can execute. It
accepts legacy HDF5 written by Keras 3 (`best_model_v9.h5` from `training`) and
by Keras 2 / tf_keras (full-model `model.save("x.h5")` or `save_weights("x.h5")`).
Importing this module does not import TensorFlow; calling its functions does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelreg.errors import InvalidArtifact, UsageError
from modelreg.families.v9.architecture import build_model, expected_weight_layout, validate_hyperparameters
from modelreg.families.v9.h5config import check_compatible
from modelreg.families.v9.preprocessing import Warn, normalize, pad_and_mask


def load_weights_into(model_path: Path, hp: dict, *, allow_lambda: bool = False):
    """Build the v9 model for `hp` and load the weights of the legacy `.h5` file `model_path`.

    The file name must end in `.h5` or `.hdf5` (but not `.weights.h5`): Keras 3
    chooses its reader by name, and only the legacy reader understands these
    files. The file is checked with `h5config.check_compatible` first, so another
    architecture raises `InvalidArtifact` naming the difference. Layers are
    matched by name when the file uses the family's layer names, else by order.
    """
    path = Path(model_path)
    lowered = path.name.lower()
    if lowered.endswith(".weights.h5") or not lowered.endswith((".h5", ".hdf5")):
        raise UsageError(
            f"Cannot load {path}: Keras 3 reads legacy HDF5 weights only from a file named *.h5 or "
            f"*.hdf5 (not *.weights.h5, which it treats as its own format). Copy or link the file "
            f"under a name such as best_model_v9.h5."
        )
    hp = validate_hyperparameters(hp)
    layout = check_compatible(path, hp, allow_lambda=allow_lambda)
    model = build_model(hp)
    same_names = sorted(layer.name for layer in layout) == sorted(
        name for name, _ in expected_weight_layout(hp))
    try:
        if same_names:
            model.load_weights(path, by_name=True)
        else:
            model.load_weights(path)
    except (ValueError, KeyError, OSError) as exc:
        raise InvalidArtifact(f"Keras could not load the weights in {path} into the v9 model "
                              f"({exc}); the file does not match the hyper-parameters.") from exc
    return model


def _checked_features(features_list: Sequence[np.ndarray], feature_dim: int) -> list[np.ndarray]:
    checked = []
    for index, features in enumerate(features_list):
        array = np.asarray(features)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != feature_dim:
            raise InvalidArtifact(f"Input #{index} has shape {array.shape}; the model expects "
                                  f"[frames >= 1, {feature_dim}] WAV2VEC features.")
        if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
            raise InvalidArtifact(f"Input #{index} has non-numeric, NaN or inf values.")
        checked.append(array)
    return checked


def predict(model, hp: dict, labels: Sequence[str], mean: np.ndarray, std: np.ndarray,
            features_list: Sequence[np.ndarray], *, on_warning: Warn | None = None,
            batch_size: int = 32) -> list[tuple[str, np.ndarray]]:
    """Classify utterances; return one (label, probabilities over `labels`) per input, in order.

    Each input is a `[frames, feature_dim]` array of raw WAV2VEC features: it is
    normalized with `mean`/`std`, zero-padded or truncated to `sequence_length`
    (truncation is reported through `on_warning`), and masked by its true length.
    Raises `InvalidArtifact` for inputs of the wrong width, empty or non-finite
    ones, and when the number of labels differs from `num_classes`.
    """
    hp = validate_hyperparameters(hp)
    labels = [str(label) for label in labels]
    if len(labels) != hp["num_classes"]:
        raise InvalidArtifact(f"There are {len(labels)} labels but the model has {hp['num_classes']} "
                              f"output classes; the labels file does not belong to this model.")
    if not len(features_list):
        return []
    for name, array in (("mean", mean), ("std", std)):
        if np.asarray(array).size != hp["feature_dim"]:
            raise InvalidArtifact(f"The {name} array has {np.asarray(array).size} values but the model "
                                  f"expects {hp['feature_dim']} features per frame; it belongs to "
                                  f"another model.")
    checked = _checked_features(features_list, hp["feature_dim"])
    normalized = [normalize(features, mean, std) for features in checked]
    batch, mask = pad_and_mask(normalized, hp["sequence_length"], on_warning=on_warning)
    inputs = [batch, mask] if hp["masking"] == "lengths" else batch
    probabilities = np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0))
    return [(labels[int(np.argmax(row))], row) for row in probabilities]
