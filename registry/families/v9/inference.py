"""Run a v9 network: rebuild it from the graph its file stores, and classify utterances.

`load_network` reads the `.h5` as data through `modelreg.families.keras_graph`
(an allowlist of layers and ops, weights set by name with shapes checked) and
derives the family contract from the rebuilt graph. It never calls `load_model`
and never deserializes a stored config, so nothing in the file can execute, and
what is loaded is the function the file computes, not a guessed architecture.
Importing this module does not import TensorFlow; calling its functions does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelreg.errors import InvalidArtifact
from modelreg.families.v9.contract import Contract, contract_of, feed_order
from modelreg.families.v9.preprocessing import Warn, normalize, pad_and_mask


@dataclass(frozen=True)
class Network:
    """A rebuilt Keras 3 model, its stored graph (as data) and the contract around it."""

    model: Any
    graph: Any
    contract: Contract
    feed: tuple[str, ...]
    """'features'/'mask' in the order the model takes its inputs."""


def load_network(path: Path, source: str, custom_layers: Mapping[str, Any] | None = None) -> Network:
    """Rebuild the network stored in the full-model `.h5` at `path` (`source` names it in messages).

    Raises UnsupportedGraph (an InvalidArtifact) naming the layer when the graph uses
    anything outside the allowlist, WeightMismatch naming the weight when the stored
    weights do not fit, and InvalidArtifact when the graph is not of the v9 contract.
    """
    from modelreg.families.keras_graph import load_model_from_h5, read_graph

    graph = read_graph(path, source, custom_classes=tuple(custom_layers or ()))
    model = load_model_from_h5(path, custom_layers=custom_layers, source_name=source)
    return Network(model=model, graph=graph, contract=contract_of(graph, model, source),
                   feed=tuple(feed_order(graph)))


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


def model_inputs(network: Network, mean: np.ndarray, std: np.ndarray, features_list: Sequence[np.ndarray],
                 *, on_warning: Warn | None = None) -> Any:
    """What the network is fed for raw features: normalized, padded/truncated, masked by true length."""
    contract = network.contract
    checked = _checked_features(features_list, contract.feature_dim)
    normalized = [normalize(features, mean, std) for features in checked]
    length = contract.sequence_length or max(len(f) for f in normalized)
    batch, mask = pad_and_mask(normalized, length, on_warning=on_warning)
    inputs = [batch if role == "features" else mask for role in network.feed]
    return inputs[0] if len(inputs) == 1 else inputs


def predict(network: Network, labels: Sequence[str], mean: np.ndarray, std: np.ndarray,
            features_list: Sequence[np.ndarray], *, on_warning: Warn | None = None,
            batch_size: int = 32) -> list[tuple[str, np.ndarray]]:
    """Classify utterances; return one (label, probabilities over `labels`) per input, in order.

    Each input is a `[frames, feature_dim]` array of raw WAV2VEC features. Raises
    `InvalidArtifact` for inputs of the wrong width, empty or non-finite ones, and
    when the labels or normalization stats do not fit the network.
    """
    contract = network.contract
    labels = [str(label) for label in labels]
    if len(labels) != contract.num_classes:
        raise InvalidArtifact(f"There are {len(labels)} labels but the model has {contract.num_classes} "
                              f"output classes; the labels file does not belong to this model.")
    if not len(features_list):
        return []
    for name, array in (("mean", mean), ("std", std)):
        if np.asarray(array).size != contract.feature_dim:
            raise InvalidArtifact(f"The {name} array has {np.asarray(array).size} values but the model "
                                  f"expects {contract.feature_dim} features per frame; it belongs to "
                                  f"another model.")
    inputs = model_inputs(network, mean, std, features_list, on_warning=on_warning)
    probabilities = np.asarray(network.model.predict(inputs, batch_size=batch_size, verbose=0))
    return [(labels[int(np.argmax(row))], row) for row in probabilities]
