"""The v9 family: the speech-emotion contract around a Keras network.

Files (roles): `best_model_<v>.h5` (weights), `label_classes_<v>.npy` (labels),
`audio_mean_<v>.npy` / `audio_std_<v>.npy` (mean, std). The contract checked at
ingest and again at load, after every byte was verified: the labels are unique
strings, one per output unit; mean and std are finite float vectors of the input
feature width, std non-zero; inputs are `[frames, features]` WAV2VEC arrays,
normalized with mean/std, padded or truncated to the network's sequence length
and masked by their true length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelreg.errors import InvalidArtifact, UsageError
from modelreg.families import IngestPlan, IngestRequest, VerifiedBundle
from modelreg.families.files import include_files
from modelreg.families.v9 import artifacts
from modelreg.families.v9.architecture import FAMILY
from modelreg.families.v9.contract import Contract
from modelreg.families.v9.inference import Network
from modelreg.manifest import Manifest

ROLES = ("weights", "labels", "mean", "std")


def artifact_names(version: str = "v9") -> dict[str, str]:
    """File name per role for a version: best_model_v9.h5, label_classes_v9.npy, audio_{mean,std}_v9.npy."""
    from modelreg.families.v9.training import artifact_names as names

    return names(version)


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


@dataclass
class LoadedModel:
    """A verified v9 bundle: the rebuilt Keras model and the arrays that belong to it."""

    network: Network
    labels: list[str]
    mean: np.ndarray
    std: np.ndarray
    manifest: Manifest

    @property
    def model(self) -> Any:
        """The Keras 3 model rebuilt from the graph stored in the weights file."""
        return self.network.model

    @property
    def contract(self) -> Contract:
        return self.network.contract

    @property
    def hyperparameters(self) -> dict:
        return self.manifest.model["hyperparameters"]

    def predict(self, features) -> list[Prediction]:
        """Classify one (frames x features) array or a list of them; normalizes, pads and masks."""
        from modelreg.families.v9 import inference

        batch = [features] if isinstance(features, np.ndarray) and features.ndim == 2 else list(features)
        results = inference.predict(self.network, self.labels, self.mean, self.std, batch)
        return [Prediction(label=label, probabilities={name: float(p) for name, p in
                                                       zip(self.labels, probabilities)})
                for label, probabilities in results]


def find_artifacts(version: str, source_dir: Path | None, explicit: dict[str, Path]) -> dict[str, Path]:
    """Combine `--from DIR` (seed names) with `--weights/--labels/--mean/--std` overrides."""
    names = artifact_names(version)
    paths: dict[str, Path] = {}
    missing = []
    for role in ROLES:
        path = explicit.get(role) or (source_dir / names[role] if source_dir else None)
        if path is None or not path.is_file():
            missing.append(f"{role} ({path or 'not given'})")
        else:
            paths[role] = path
    if missing:
        where = f" in {source_dir}" if source_dir else ""
        raise UsageError(
            f"Cannot find the {', '.join(missing)} file(s){where}. Pass --from DIR holding "
            f"{', '.join(names.values())}, or name files one by one with --weights/--labels/--mean/--std.")
    return paths


def check_fit(contract: Contract, labels: list[str], mean: np.ndarray, std: np.ndarray, where: str) -> None:
    """The cross-file checks: one label per output unit; mean/std of the input's feature width."""
    artifacts.check_label_count(labels, contract.num_classes, where)
    artifacts.check_normalization(mean, std, contract.feature_dim, where)


def model_section(network: Network, labels: list[str], family: str) -> dict:
    """The manifest's `model` section: the contract, the graph's digest and what it is made of."""
    from modelreg.families.keras_graph import describe

    summary = describe(network.graph)
    contract = network.contract
    return {
        "family": family,
        "input_shape": [contract.sequence_length, contract.feature_dim],
        "labels": labels,
        "hyperparameters": summary["hyperparameters"],
        "contract": contract.to_dict(),
        "graph": {key: summary[key] for key in ("digest", "keras_major", "inputs", "outputs", "layers")},
    }


class V9Family:
    """WAV2VEC features -> a Keras classifier -> one of `labels`, with normalization stats.

    The network is whatever allowlisted graph the weights file stores; a plugin
    family for a model with a custom layer subclasses this with its own `name` and
    `custom_layers` ({class name: factory(config) -> keras layer}).
    """

    name = FAMILY
    roles = ROLES
    custom_layers: ClassVar[Mapping[str, Any]] = {}

    def network(self, weights: Path, source: str) -> Network:
        from modelreg.families.v9.inference import load_network

        return load_network(weights, source, self.custom_layers or None)

    def describe(self, weights: Path, labels: list[str], mean_path: Path, std_path: Path) -> dict:
        """Rebuild the network, check the four files fit together, return the manifest's `model`."""
        network = self.network(weights, str(weights))
        mean = artifacts.read_npy(mean_path, "mean")
        std = artifacts.read_npy(std_path, "std")
        check_fit(network.contract, labels, mean, std, f"{weights} with {mean_path} / {std_path}")
        return model_section(network, labels, self.name)

    def plan_ingest(self, request: IngestRequest) -> IngestPlan:
        paths = find_artifacts(request.version, request.source_dir, request.files_by_role)
        labels = artifacts.check_labels(artifacts.read_npy(paths["labels"], "labels"), str(paths["labels"]))
        model = self.describe(paths["weights"], labels, paths["mean"], paths["std"])
        names = artifact_names(request.version)
        files = {names[role]: (role, path) for role, path in paths.items()}
        files.update(include_files(request.source_dir, request.includes, set(files)))
        return IngestPlan(files=files, model=model)

    def load(self, bundle: VerifiedBundle, *, private_dir: Path, snapshot_dir: Path) -> Any:
        manifest = bundle.manifest
        labels = artifacts.check_labels(
            artifacts.read_npy(bundle.read_bytes(manifest.file_for_role("labels")), "labels"), manifest.ref)
        mean = artifacts.read_npy(bundle.read_bytes(manifest.file_for_role("mean")), "mean")
        std = artifacts.read_npy(bundle.read_bytes(manifest.file_for_role("std")), "std")
        if labels != list(manifest.model["labels"]):
            raise InvalidArtifact(f"The labels file of {manifest.ref} does not match the labels its "
                                  f"manifest lists; the bundle is inconsistent.")
        weights_entry = manifest.file_for_role("weights")
        weights = bundle.private_copy(weights_entry, private_dir, "weights.h5")
        network = self.network(weights, f"{weights_entry.path} of {manifest.ref}")
        check_fit(network.contract, labels, mean, std, manifest.ref)
        return LoadedModel(network=network, labels=labels, mean=mean, std=std, manifest=manifest)
