"""`modelreg ingest`, `train`, `predict` and `demo-data`: making and using v9 bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from modelreg.cli.context import AllowYanked, JsonOption, RemoteOption, current_settings
from modelreg.cli.errors import State
from modelreg.cli.output import human_size, print_json, progress_reporter, stderr, stdout
from modelreg.cli.quiet_tensorflow import import_tensorflow_quietly
from modelreg.errors import UsageError


def ingest(ref: str = typer.Argument(..., help="[NAME:]VERSION to create, e.g. v9"),
           source: Optional[Path] = typer.Option(
               None, "--from", help="v9: directory holding best_model_VERSION.h5, label_classes_VERSION.npy, "
               "audio_mean_VERSION.npy, audio_std_VERSION.npy. files: every regular file under it."),
           family: str = typer.Option("v9", "--family", help="What the files are: v9 (the speech-emotion "
                                      "model, default), files (any files), or an installed plugin family."),
           include: list[str] = typer.Option([], "--include", metavar="PATTERN", help="Also bundle files "
                                             "under --from matching PATTERN (fnmatch on the relative path; "
                                             "repeatable). With --family files: bundle only those."),
           weights: Optional[Path] = typer.Option(None, help="The .h5 weights file."),
           labels: Optional[Path] = typer.Option(None, help="The label classes .npy file."),
           mean: Optional[Path] = typer.Option(None, help="The per-feature mean .npy file."),
           std: Optional[Path] = typer.Option(None, help="The per-feature std .npy file.")) -> None:
    """Validate existing files and store them as a bundle in the local cache (pinned in the workspace)."""
    if family != "files":  # the Keras families rebuild the stored graph to check it
        import_tensorflow_quietly()
    from modelreg.families import check_family_name
    from modelreg.ingest import ingest as ingest_bundle
    from modelreg.refs import parse_ref

    settings = current_settings()
    parsed = parse_ref(ref, settings.default_model)
    by_role = {"weights": weights, "labels": labels, "mean": mean, "std": std}
    with progress_reporter(State.quiet) as reporter:
        manifest = ingest_bundle(settings, parsed, source_dir=source,
                                 files_by_role={k: v for k, v in by_role.items() if v is not None},
                                 family=check_family_name(family), includes=tuple(include), reporter=reporter)
    labels_note = f", {len(manifest.model['labels'])} labels" if manifest.model["labels"] else ""
    stdout.print(f"Ingested {manifest.ref} ({manifest.model['family']}): {len(manifest.files)} files "
                 f"({human_size(manifest.total_size)}){labels_note}, manifest {manifest.digest[:12]} pinned "
                 f"in {settings.workspace / 'manifests'}. Next: modelreg push {ref}", highlight=False)


def train(ref: str = typer.Argument(..., help="[NAME:]VERSION to create, e.g. v9"),
          data: Optional[Path] = typer.Option(None, "--data", help="Directory of .npz wav2vec features "
                                              "(default: $MODELREG_DATA_DIR, then data_dirs in the config)."),
          label_from_filename: Optional[str] = typer.Option(None, help="Regex with one group taking the "
                                                            "label from each file name."),
          out: Optional[Path] = typer.Option(None, help="Where to write the four artifacts "
                                             "(default: ./artifacts/NAME-VERSION)."),
          epochs: int = typer.Option(30, help="Maximum epochs (early stopping on val accuracy)."),
          batch_size: int = typer.Option(16),
          learning_rate: float = typer.Option(1e-3),
          patience: int = typer.Option(10, help="Early-stopping patience in epochs."),
          seed: int = typer.Option(42, help="Seed for python, numpy and tensorflow."),
          max_len: Optional[int] = typer.Option(None, help="Pad/truncate to this many frames "
                                                "(default: longest training sequence)."),
          lstm_units: Optional[int] = typer.Option(None, help="BiLSTM units per direction."),
          recurrent_dropout: Optional[float] = typer.Option(None),
          attention_units: Optional[int] = typer.Option(None, help="Query/key/value projection size."),
          dense_units: Optional[int] = typer.Option(None),
          dropout: Optional[float] = typer.Option(None),
          l2: Optional[float] = typer.Option(None, help="L2 weight on the dense layer.")) -> None:
    """Train the v9 model (WAV2VEC + BiLSTM + self-attention) and bundle it for push."""
    import_tensorflow_quietly()
    from modelreg.families.v9.training import TrainOptions
    from modelreg.refs import parse_ref
    from modelreg.train import train_bundle

    settings = current_settings()
    parsed = parse_ref(ref, settings.default_model)
    overrides = {"lstm_units": lstm_units, "recurrent_dropout": recurrent_dropout,
                 "attention_units": attention_units, "dense_units": dense_units, "dropout": dropout,
                 "l2": l2}
    options = TrainOptions(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                           patience=patience, seed=seed, max_len=max_len, version=parsed.version,
                           label_pattern=label_from_filename,
                           hyperparameters={k: v for k, v in overrides.items() if v is not None})

    def on_epoch(epoch: int, logs: dict) -> None:
        if not State.quiet:
            stderr.print(f"epoch {epoch:3d}/{epochs}  loss {logs.get('loss', 0):.4f}  "
                         f"acc {logs.get('accuracy', 0):.3f}  val_loss {logs.get('val_loss', 0):.4f}  "
                         f"val_acc {logs.get('val_accuracy', 0):.3f}", highlight=False)

    def on_warning(text: str) -> None:
        stderr.print(f"Warning: {text}", highlight=False)

    with progress_reporter(State.quiet) as reporter:
        manifest, result, source = train_bundle(settings, parsed, data_dir=data, out_dir=out,
                                                options=options, on_epoch=on_epoch,
                                                on_warning=on_warning, reporter=reporter)
    m = result.metrics
    stdout.print(f"Trained {manifest.ref} on {source}: {m['samples']} samples ({m['train_samples']} train / "
                 f"{m['val_samples']} validation), {m['classes']} classes, padding {m['padding_length']}, "
                 f"{m['epochs_run']} epochs (best {m['best_epoch']}); train accuracy "
                 f"{m['train_accuracy']:.3f}, validation accuracy {m['val_accuracy']:.3f}. Manifest "
                 f"{manifest.digest[:12]} pinned. Next: modelreg push {ref}", highlight=False)


def predict(ref: str = typer.Argument(..., help="[NAME:]VERSION or a tag"),
            files: list[Path] = typer.Argument(..., help=".npz feature files to classify"),
            remote: Optional[str] = RemoteOption,
            allow_yanked: bool = AllowYanked,
            json_output: bool = JsonOption) -> None:
    """Classify utterances with a verified model (pulled if needed)."""
    import_tensorflow_quietly()
    from modelreg.families.v9.data import load_utterance
    from modelreg.loading import load

    utterances = [load_utterance(path, require_label=False) for path in files]
    with progress_reporter(State.quiet or json_output) as reporter:
        bundle = load(ref, remote, settings=current_settings(), reporter=reporter, allow_yanked=allow_yanked)
    if not hasattr(bundle, "predict"):
        raise UsageError(f"{ref} is not a model that predicts (it loads as {type(bundle).__name__}); "
                         f"'modelreg predict' needs a v9 bundle.")
    predictions = bundle.predict([u.features for u in utterances])
    if json_output:
        print_json({"model": bundle.manifest.ref, "manifest_sha256": bundle.manifest.digest,
                    "predictions": [{"file": str(path), "label": p.label,
                                     "probability": p.probabilities[p.label],
                                     "probabilities": p.probabilities}
                                    for path, p in zip(files, predictions)]})
        return
    for path, prediction in zip(files, predictions):
        stdout.print(f"{path}: {prediction.label} ({prediction.probabilities[prediction.label]:.3f})",
                     highlight=False)


def demo_data(directory: Path = typer.Argument(..., help="Where to write the synthetic .npz files"),
              samples: int = typer.Option(96), seed: int = typer.Option(0)) -> None:
    """Write a SYNTHETIC dataset shaped like the seed's (13 emotions, 768 features, <= 221 frames)."""
    from modelreg.families.v9.demo_data import write_demo_dataset

    written = write_demo_dataset(directory, seed=seed, n=samples)
    stdout.print(f"Wrote {len(written)} synthetic utterances to {directory}. This data is SYNTHETIC "
                 f"(random class prototypes), for trying modelreg only: a model trained on it knows "
                 f"nothing about speech or emotion.", highlight=False)
