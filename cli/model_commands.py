"""`modelreg ingest`, `train`, `predict` and `demo-data`: making and using v9 bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.errors import State
from cli.output import human_size, progress_reporter, stdout
from registry.config import Settings


def ingest(ref: str = typer.Argument(..., help="[NAME:]VERSION to create, e.g. v9"),
           source: Optional[Path] = typer.Option(None, "--from", help="Directory holding best_model_VERSION.h5, "
                                                 "label_classes_VERSION.npy, audio_mean_VERSION.npy, audio_std_VERSION.npy"),
           weights: Optional[Path] = typer.Option(None, help="The .h5 weights file."),
           labels: Optional[Path] = typer.Option(None, help="The label classes .npy file."),
           mean: Optional[Path] = typer.Option(None, help="The per-feature mean .npy file."),
           std: Optional[Path] = typer.Option(None, help="The per-feature std .npy file.")) -> None:
    """Validate existing v9 artifacts and store them as a bundle in the local cache."""
    from registry.ingest import find_artifacts, ingest as ingest_bundle
    from registry.refs import parse_ref

    settings = Settings.resolve()
    parsed = parse_ref(ref, settings.default_model)
    paths = find_artifacts(parsed.version, source,
                           {"weights": weights, "labels": labels, "mean": mean, "std": std})
    with progress_reporter(State.quiet) as reporter:
        manifest = ingest_bundle(settings, parsed, paths, reporter=reporter)
    stdout.print(f"Ingested {manifest.ref}: {len(manifest.files)} files ({human_size(manifest.total_size)}), "
                 f"{len(manifest.model['labels'])} labels, manifest {manifest.digest[:12]} pinned in "
                 f"{settings.workspace / 'manifests'}. Next: modelreg push {ref}", highlight=False)
