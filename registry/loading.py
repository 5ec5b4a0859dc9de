"""Verified loading for downstream code: `modelreg.load("v9")`.

Nothing unverified is ever deserialized. The cache is treated as untrusted: the
manifest's bytes are read once and checked against the workspace pin, and every
file is re-hashed against that one manifest (whose signature must verify when
trusted keys are configured) while being read into memory (labels,
mean, std) or copied into a private, correctly named `.h5` that is the exact file
handed to Keras. The architecture is built from code for the manifest's model
family and only weights are loaded (`load_weights`), never a stored config.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelreg.config import Settings
from modelreg.errors import InvalidArtifact
from modelreg.families.v9 import artifacts
from modelreg.local.cache import Cache
from modelreg.manifest import Manifest
from modelreg.progress import ProgressReporter
from modelreg.refs import Ref, parse_ref
from modelreg.trust.gate import open_cached_manifest, require_cached_manifest


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


@dataclass
class LoadedModel:
    """A verified v9 bundle: the Keras model and the arrays that belong to it."""

    model: object
    labels: list[str]
    mean: np.ndarray
    std: np.ndarray
    manifest: Manifest

    @property
    def hyperparameters(self) -> dict:
        return self.manifest.model["hyperparameters"]

    def predict(self, features) -> list[Prediction]:
        """Classify one (frames x features) array or a list of them; normalizes, pads and masks."""
        from modelreg.families.v9 import inference

        batch = [features] if isinstance(features, np.ndarray) and features.ndim == 2 else list(features)
        results = inference.predict(self.model, self.hyperparameters, self.labels, self.mean,
                                    self.std, batch)
        return [Prediction(label=label, probabilities={name: float(p) for name, p in
                                                       zip(self.labels, probabilities)})
                for label, probabilities in results]


def load(ref: str = "v9", remote: str | None = None, *, settings: Settings | None = None,
         reporter: ProgressReporter | None = None) -> LoadedModel:
    """Pull `ref` if it is not cached, verify everything, and return the loaded model.

    Raises IntegrityError when any byte differs from the manifest (the damaged cache
    entry is removed, so pulling again repairs it), InvalidArtifact when the files do
    not fit together or are not of a known model family.
    """
    settings = settings or Settings.resolve()
    parsed = parse_ref(ref, settings.default_model)
    cache = Cache(settings.cache_dir)
    verified = open_cached_manifest(settings, cache, parsed)
    if verified is None:
        from modelreg.transfer import pull

        result = pull(settings, parsed, settings.remote(remote), reporter=reporter)
        verified = require_cached_manifest(settings, cache, Ref(result.manifest.name,
                                                                result.manifest.version),
                                           fix="It was removed while being pulled; pull it again.")
    return load_manifest(cache, verified.manifest)


def load_manifest(cache: Cache, manifest: Manifest) -> LoadedModel:
    """Load a bundle whose manifest the caller already verified (pin, signature)."""
    from modelreg.families.v9.architecture import FAMILY

    family = manifest.model.get("family")
    if family != FAMILY:
        raise InvalidArtifact(f"{manifest.ref} is a {family!r} model; this modelreg can load only "
                              f"{FAMILY!r} bundles.")
    hp = manifest.model["hyperparameters"]
    labels = artifacts.check_labels(
        artifacts.read_npy(cache.read_bytes(manifest.file_for_role("labels")), "labels"), manifest.ref)
    mean = artifacts.read_npy(cache.read_bytes(manifest.file_for_role("mean")), "mean")
    std = artifacts.read_npy(cache.read_bytes(manifest.file_for_role("std")), "std")
    if labels != list(manifest.model["labels"]):
        raise InvalidArtifact(f"The labels file of {manifest.ref} does not match the labels its "
                              f"manifest lists; the bundle is inconsistent.")
    artifacts.check_label_count(labels, hp["num_classes"], manifest.ref)
    artifacts.check_normalization(mean, std, hp["feature_dim"], manifest.ref)
    with tempfile.TemporaryDirectory(prefix="modelreg-load-") as private:
        weights = Path(private) / "weights.h5"
        cache.copy_verified(manifest.file_for_role("weights"), weights)
        from modelreg.families.v9 import inference

        model = inference.load_weights_into(weights, hp)
    return LoadedModel(model=model, labels=labels, mean=mean, std=std, manifest=manifest)
