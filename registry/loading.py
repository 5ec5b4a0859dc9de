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

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelreg.families.v9 import artifacts
from modelreg.local.cache import Cache
from modelreg.config import Settings
from modelreg.errors import IntegrityError, InvalidArtifact
from modelreg.manifest import FileEntry, Manifest
from modelreg.local.materialize import stage_verified_copy
from modelreg.progress import ProgressReporter
from modelreg.refs import Ref, parse_ref
from modelreg.trust.policy import check_bundle_signature
from modelreg.local.workspace import check_against_pin


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
    manifest_bytes = cache.read_manifest_bytes(parsed)
    if manifest_bytes is None:
        from modelreg.transfer import pull

        result = pull(settings, parsed, settings.remote(remote), reporter=reporter)
        parsed = Ref(result.manifest.name, result.manifest.version)
        manifest_bytes = cache.read_manifest_bytes(parsed)
    check_against_pin(settings.workspace, manifest_bytes, parsed, "the local cache")
    manifest = Manifest.from_bytes(manifest_bytes, source=f"the local cache ({parsed})")
    check_bundle_signature(settings, manifest, manifest_bytes, cache.read_signature(parsed),
                           f"{manifest.ref} in the local cache")
    return load_manifest(cache, manifest)


def load_manifest(cache: Cache, manifest: Manifest) -> LoadedModel:
    """Load a bundle whose manifest the caller already verified (pin, signature)."""
    from modelreg.families.v9.architecture import FAMILY

    family = manifest.model.get("family")
    if family != FAMILY:
        raise InvalidArtifact(f"{manifest.ref} is a {family!r} model; this modelreg can load only "
                              f"{FAMILY!r} bundles.")
    hp = manifest.model["hyperparameters"]
    labels = artifacts.check_labels(
        artifacts.read_npy(read_verified(cache, manifest.file_for_role("labels")), "labels"), manifest.ref)
    mean = artifacts.read_npy(read_verified(cache, manifest.file_for_role("mean")), "mean")
    std = artifacts.read_npy(read_verified(cache, manifest.file_for_role("std")), "std")
    if labels != list(manifest.model["labels"]):
        raise InvalidArtifact(f"The labels file of {manifest.ref} does not match the labels its "
                              f"manifest lists; the bundle is inconsistent.")
    artifacts.check_label_count(labels, hp["num_classes"], manifest.ref)
    artifacts.check_normalization(mean, std, hp["feature_dim"], manifest.ref)
    with tempfile.TemporaryDirectory(prefix="modelreg-load-") as private:
        weights = _private_weights_copy(cache, manifest.file_for_role("weights"), Path(private))
        from modelreg.families.v9 import inference

        model = inference.load_weights_into(weights, hp)
    return LoadedModel(model=model, labels=labels, mean=mean, std=std, manifest=manifest)


def read_verified(cache: Cache, entry: FileEntry) -> bytes:
    """The exact bytes of a cached blob, after checking them; a corrupt blob is removed."""
    path = cache.blob_path(entry.sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"{entry.path} ({entry.sha256[:12]}) is missing from the local cache "
                             f"{cache.root}; run 'modelreg pull' to fetch it again.",
                             path=entry.path, expected=entry.sha256, actual="", source="cache") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256 or len(data) != entry.size:
        _discard(path)
        raise IntegrityError(
            f"The cached copy of {entry.path} is corrupt: expected sha256 {entry.sha256}, found "
            f"{actual}. It was not loaded and has been removed; run 'modelreg pull' to fetch it again.",
            path=entry.path, expected=entry.sha256, actual=actual, source="cache")
    return data


def _private_weights_copy(cache: Cache, entry: FileEntry, private: Path) -> Path:
    """Copy the weights blob to `private/weights.h5`, verifying exactly the bytes Keras will read."""
    target = private / "weights.h5"
    try:
        temp = stage_verified_copy(cache.blob_path(entry.sha256), target, entry)
    except IntegrityError:
        _discard(cache.blob_path(entry.sha256))
        raise
    except FileNotFoundError:
        raise IntegrityError(f"{entry.path} is missing from the local cache {cache.root}; run "
                             f"'modelreg pull' to fetch it again.", path=entry.path,
                             expected=entry.sha256, source="cache") from None
    os.replace(temp, target)
    return target


def _discard(path: Path) -> None:
    try:
        os.chmod(path, 0o644)
        path.unlink()
    except OSError:
        pass
