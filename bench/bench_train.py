"""v9 training speed on synthetic demo data: seconds per epoch.

    .venv/bin/python -m bench.bench_train [--profiles default,short] [--epochs 3] [--json]

Writes the demo dataset (96 utterances, 13 classes, 768 features; see
registry/family/demo_data.py) into a temp directory, trains each profile for a
few epochs and reports the first epoch (which includes importing TensorFlow,
loading the data, building and tracing the graph) apart from the median of the
later ones. Profiles:

- default: the v9 hyper-parameters (sequence length up to 221, BiLSTM 128 units);
- short:   utterances capped at 64 frames, BiLSTM 32 units, attention/dense 32.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import print_table
from modelreg.families.v9.demo_data import write_demo_dataset
from modelreg.families.v9.training import TrainOptions, train

PROFILES = {
    "default": {"max_len": None, "hyperparameters": {}},
    "short": {"max_len": 64, "hyperparameters": {"lstm_units": 32, "attention_units": 32,
                                                  "dense_units": 32}},
}


def bench_profile(data_dir: Path, out_dir: Path, name: str, epochs: int) -> dict:
    profile = PROFILES[name]
    stamps = [time.perf_counter()]
    options = TrainOptions(epochs=epochs, patience=epochs, max_len=profile["max_len"],
                           hyperparameters=profile["hyperparameters"])
    result = train(data_dir, out_dir, options=options,
                   on_epoch=lambda epoch, logs: stamps.append(time.perf_counter()))
    total = time.perf_counter() - stamps[0]
    per_epoch = [b - a for a, b in itertools.pairwise(stamps)]
    steady = statistics.median(per_epoch[1:]) if len(per_epoch) > 1 else per_epoch[0]
    return {"profile": name, "epochs": len(per_epoch), "first_epoch_s": per_epoch[0],
            "epoch_s": steady, "train_total_s": total,
            "sequence_length": result.hyperparameters["sequence_length"],
            "lstm_units": result.hyperparameters["lstm_units"],
            "val_accuracy": result.metrics["val_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default="default,short")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = [n for n in args.profiles.split(",") if n]
    unknown = sorted(set(names) - set(PROFILES))
    if unknown:
        parser.error(f"unknown profile(s) {unknown}; known: {sorted(PROFILES)}")
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-train-") as work:
        started = time.perf_counter()
        write_demo_dataset(Path(work) / "data")
        demo_s = time.perf_counter() - started
        results = [bench_profile(Path(work) / "data", Path(work) / name, name, args.epochs)
                   for name in names]
    if args.json:
        print(json.dumps({"demo_data_s": demo_s, "train": results}, indent=2))
        return
    rows = [[r["profile"], r["sequence_length"], r["lstm_units"], r["epochs"], r["first_epoch_s"],
             r["epoch_s"], r["train_total_s"], r["val_accuracy"]] for r in results]
    print_table("v9 training on demo data (96 utterances, 13 classes, 768 features), seconds",
                ["profile", "seq len", "lstm units", "epochs", "first epoch", "per epoch (median)",
                 "total", "val acc"], rows)
    print(f"\nwriting the demo data: {demo_s:.2f} s")


if __name__ == "__main__":
    main()
