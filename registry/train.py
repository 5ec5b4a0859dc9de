"""`modelreg train`: run the v9 training pipeline and bundle what it produced.

Training itself lives in `modelreg.families.v9.training`; this module resolves where
the data is (flag > MODELREG_DATA_DIR > config `data_dirs`), and turns the four
artifacts into a cached, pinned bundle whose manifest carries every
hyper-parameter, the training settings, the metrics and the dataset fingerprint.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from modelreg import provenance
from modelreg.bundle import create_bundle
from modelreg.config import Settings
from modelreg.manifest import Manifest
from modelreg.progress import ProgressReporter
from modelreg.refs import Ref


def train_bundle(settings: Settings, ref: Ref, *, data_dir: Path | None, out_dir: Path | None = None,
                 options=None, on_epoch=None, on_warning=None,
                 reporter: ProgressReporter | None = None):
    """Train from the resolved data directory; returns (manifest, TrainResult, data directory)."""
    from modelreg.families.v9.data import resolve_data_dir
    from modelreg.families.v9.training import TrainOptions, train

    source = resolve_data_dir(data_dir, settings.data_dir_env, settings.data_dirs)
    options = options or TrainOptions()
    if options.version != ref.version:
        options = replace(options, version=ref.version)
    out_dir = out_dir or settings.workspace / "artifacts" / f"{ref.name}-{ref.version}"
    result = train(source, out_dir, options=options, on_epoch=on_epoch, on_warning=on_warning)
    hp = result.hyperparameters
    from modelreg.families.v9.family import V9Family

    described = V9Family().describe(result.files["weights"], list(result.labels), result.files["mean"],
                                    result.files["std"])
    model = {**described, "hyperparameters": hp, "training": result.training}
    files = {Path(path).name: (role, Path(path)) for role, path in result.files.items()}
    manifest: Manifest = create_bundle(
        settings, ref, files, model=model, metrics=result.metrics,
        provenance=provenance.collect(settings.workspace, source="train",
                                      dataset_fingerprint=result.dataset_fingerprint),
        reporter=reporter)
    return manifest, result, source
