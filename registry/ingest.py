"""Accept existing v9 artifacts (weights, labels, mean, std) into a verified bundle.

Everything is validated before anything is stored: the `.h5` opens and its stored
architecture (read as plain JSON, never deserialized) belongs to the v9 family,
its output units equal the number of labels, and mean/std fit the feature width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelreg import provenance
from modelreg.bundle import create_bundle
from modelreg.config import Settings
from modelreg.errors import InvalidArtifact, UsageError
from modelreg.families.v9 import artifacts
from modelreg.families.v9.training import artifact_names
from modelreg.manifest import Manifest
from modelreg.progress import ProgressReporter
from modelreg.refs import Ref

ROLE_ORDER = ("weights", "labels", "mean", "std")


@dataclass(frozen=True)
class ArtifactPaths:
    weights: Path
    labels: Path
    mean: Path
    std: Path

    def by_role(self) -> dict[str, Path]:
        return {role: getattr(self, role) for role in ROLE_ORDER}


def find_artifacts(version: str, source_dir: Path | None, explicit: dict[str, Path | None]) -> ArtifactPaths:
    """Combine `--from DIR` (seed names) with `--weights/--labels/--mean/--std` overrides."""
    names = artifact_names(version)
    paths, missing = {}, []
    for role in ROLE_ORDER:
        path = explicit.get(role) or (source_dir / names[role] if source_dir else None)
        if path is None or not path.is_file():
            missing.append(f"{role} ({path or 'not given'})")
        paths[role] = path
    if missing:
        where = f" in {source_dir}" if source_dir else ""
        raise UsageError(
            f"Cannot find the {', '.join(missing)} file(s){where}. Pass --from DIR holding "
            f"{', '.join(names.values())}, or name files one by one with --weights/--labels/--mean/--std.")
    return ArtifactPaths(**{role: path for role, path in paths.items() if path is not None})


def describe_model(weights: Path, labels: list[str], mean_path: Path, std_path: Path) -> dict:
    """Validate the four artifacts together and return the manifest's `model` section."""
    from modelreg.families.v9 import h5config
    from modelreg.families.v9.architecture import FAMILY

    config = h5config.read_model_config(weights)
    if h5config.contains_lambda_layer(config):
        raise InvalidArtifact(
            f"{weights} stores a Lambda layer (arbitrary Python code) in its architecture. modelreg "
            f"never runs stored code and the v9 family has no Lambda layer; re-export the weights "
            f"from the v9 architecture.")
    hyperparameters = h5config.hyperparameters_from_config(config)
    h5config.check_compatible(weights, hyperparameters)
    artifacts.check_label_count(labels, hyperparameters["num_classes"], str(weights))
    mean = artifacts.read_npy(mean_path, "mean")
    std = artifacts.read_npy(std_path, "std")
    artifacts.check_normalization(mean, std, hyperparameters["feature_dim"], f"{mean_path} / {std_path}")
    return {
        "family": FAMILY,
        "input_shape": [hyperparameters["sequence_length"], hyperparameters["feature_dim"]],
        "labels": labels,
        "hyperparameters": hyperparameters,
    }


def ingest(settings: Settings, ref: Ref, paths: ArtifactPaths, *, metrics: dict | None = None,
           reporter: ProgressReporter | None = None) -> Manifest:
    """Validate the artifacts, store them in the local cache and pin the manifest in the workspace."""
    labels = artifacts.check_labels(artifacts.read_npy(paths.labels, "labels"), str(paths.labels))
    model = describe_model(paths.weights, labels, paths.mean, paths.std)
    names = artifact_names(ref.version)
    files = {names[role]: (role, path) for role, path in paths.by_role().items()}
    return create_bundle(settings, ref, files, model=model, metrics=metrics or {},
                         provenance=provenance.collect(settings.workspace, source="ingest"),
                         reporter=reporter)
