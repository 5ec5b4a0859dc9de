"""`modelreg ingest`, `train`, `predict` and `demo-data`: making and using v9 bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from modelreg.cli.context import JsonOption, RemoteOption, current_settings
from modelreg.cli.errors import State
from modelreg.cli.output import human_size, print_json, progress_reporter, stderr, stdout


def ingest(ref: str = typer.Argument(..., help="[NAME:]VERSION to create, e.g. v9"),
           source: Optional[Path] = typer.Option(
               None, "--from", help="Directory holding best_model_VERSION.h5, label_classes_VERSION.npy, "
               "audio_mean_VERSION.npy, audio_std_VERSION.npy"),
           weights: Optional[Path] = typer.Option(None, help="The .h5 weights file."),
           labels: Optional[Path] = typer.Option(None, help="The label classes .npy file."),
           mean: Optional[Path] = typer.Option(None, help="The per-feature mean .npy file."),
           std: Optional[Path] = typer.Option(None, help="The per-feature std .npy file.")) -> None:
    """Validate existing v9 artifacts and store them as a bundle in the local cache."""
    from modelreg.ingest import find_artifacts
    from modelreg.ingest import ingest as ingest_bundle
    from modelreg.refs import parse_ref

    settings = current_settings()
    parsed = parse_ref(ref, settings.default_model)
    paths = find_artifacts(parsed.version, source,
                           {"weights": weights, "labels": labels, "mean": mean, "std": std})
    with progress_reporter(State.quiet) as reporter:
        manifest = ingest_bundle(settings, parsed, paths, reporter=reporter)
    stdout.print(f"Ingested {manifest.ref}: {len(manifest.files)} files ({human_size(manifest.total_size)}), "
                 f"{len(manifest.model['labels'])} labels, manifest {manifest.digest[:12]} pinned in "
                 f"{settings.workspace / 'manifests'}. Next: modelreg push {ref}", highlight=False)


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
            json_output: bool = JsonOption) -> None:
    """Classify utterances with a verified model (pulled if needed)."""
    from modelreg.families.v9.data import load_utterance
    from modelreg.loading import load

    utterances = [load_utterance(path, require_label=False) for path in files]
    with progress_reporter(State.quiet or json_output) as reporter:
        bundle = load(ref, remote, reporter=reporter)
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
