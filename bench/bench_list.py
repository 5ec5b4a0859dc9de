"""`modelreg list` on an S3 registry with many versions: the first list (empty cache) and a repeated one.

    .venv/bin/python -m bench.bench_list [--versions 1000,10000] [--rounds 5] [--out bench/out/list-s3.json]

Starts its own SeaweedFS on loopback. For each count it writes that many versions
straight into the bucket with boto3, as a push leaves them (manifest.json and
SHA256SUMS per version, all naming one shared blob, plus a tag), then times
`modelreg list --remote bench` as a new process, its table sent to /dev/null, in
rounds of two: "first" with the cache removed, then "repeated" with the cache that
run left. Each run also records the CPU seconds of the command (user + system, from
`/usr/bin/time`) and of the server (the `weed` process, from /proc), since client and
server share this machine's cores. It also times `Manifest.from_bytes` on one of those
manifests in this process (the validation every list repeats per version). Goals
(issue 16): first list of 10,000 versions < 15 s, a repeated one < 2 s.
`python -m bench.render_table` renders the result beside the push/pull table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.bench_cli import MODELREG, TIME, machine, summary
from modelreg.manifest import FileEntry, Manifest
from tests.servers.s3 import SeaweedServer

BUCKET = "bench"
GOALS = {("first", 10_000): "< 15 s", ("repeated", 10_000): "< 2 s"}
LABELS = ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad"]


def version_manifest(version: str) -> Manifest:
    """A manifest shaped like a v9 bundle's (four files, seven labels, hyper-parameters, metrics)."""
    blob = "ab" * 32
    files = tuple(FileEntry(path, role, size, blob) for path, role, size in (
        ("best_model_v9.h5", "weights", 4_000_000), ("label_classes_v9.npy", "labels", 200),
        ("audio_mean_v9.npy", "mean", 3_200), ("audio_std_v9.npy", "std", 3_200)))
    hyperparameters = {"sequence_length": 300, "feature_dim": 40, "lstm_units": 128, "dropout": 0.3,
                       "learning_rate": 0.001, "batch_size": 32, "epochs": 40, "masking": "lengths",
                       "optimizer": "adam", "seed": 7}
    return Manifest(name="emotion", version=version, files=files,
                    model={"family": "v9", "input_shape": [None, 300, 40], "labels": LABELS,
                           "hyperparameters": hyperparameters},
                    metrics={"accuracy": 0.71, "macro_f1": 0.69, "loss": 0.83, "val_accuracy": 0.68},
                    provenance={"modelreg_version": "0.1.0", "python_version": "3.11.7",
                                "numpy_version": "2.1.0", "tensorflow_version": "2.21.0",
                                "git_commit": "0" * 40, "dataset_fingerprint": "1" * 64},
                    created="2026-01-01T00:00:00Z")


def populate(client, root: str, count: int) -> bytes:
    """`count` versions under s3://bench/<root>/ and a tag; returns one manifest's bytes."""
    def put(index: int) -> None:
        manifest = version_manifest(f"v{index}")
        prefix = f"{root}/models/emotion/v{index}"
        for attempt in range(5):  # SeaweedFS under load sometimes answers InternalError once
            try:
                client.put_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json", Body=manifest.to_bytes())
                client.put_object(Bucket=BUCKET, Key=f"{prefix}/SHA256SUMS", Body=manifest.sha256sums())
                return
            except Exception:
                if attempt == 4:
                    raise
                time.sleep(1)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))
    sample = version_manifest("v1").to_bytes()
    tag = {"name": "emotion", "tag": "prod", "version": "v1",
           "manifest_sha256": Manifest.from_bytes(sample, source="bench").digest}
    client.put_object(Bucket=BUCKET, Key=f"{root}/tags/emotion/prod.json",
                      Body=json.dumps(tag, sort_keys=True, separators=(",", ":")).encode())
    return sample


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_with_cpu(cmd: list[str], env: dict, server_pid: int) -> dict:
    """Wall seconds, the command's CPU seconds and peak RSS, and the server's CPU seconds, of one run."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        server_before = process_cpu_seconds(server_pid)
        start = time.perf_counter()
        result = subprocess.run([TIME, "-f", "%M %U %S", "-o", report.name, *cmd], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        server = process_cpu_seconds(server_pid) - server_before
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stderr.decode(errors='replace')}")
        peak, user, system = report.read().split()[-3:]
    return {"wall": elapsed, "client_cpu": float(user) + float(system), "server_cpu": server,
            "rss_kib": int(peak)}


def validation_seconds(sample: bytes, repeats: int = 2000) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        Manifest.from_bytes(sample, source="bench")
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "list-s3.json"))
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="modelreg-bench-list-", dir=args.workdir))
    before = machine()
    results = []
    try:
        with SeaweedServer(work / "seaweedfs") as seaweed:
            seaweed.ensure_bucket(BUCKET)
            client = seaweed.client()
            home = work / "home"
            env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MODELREG_", "AWS_"))},
                   **seaweed.admin.env(), "MODELREG_HOME": str(home), "MODELREG_WORKSPACE": str(work / "ws"),
                   "AWS_CONFIG_FILE": str(work / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "none"),
                   "AWS_EC2_METADATA_DISABLED": "true"}
            (work / "ws").mkdir()
            for count in (int(text) for text in args.versions.split(",")):
                start = time.perf_counter()
                sample = populate(client, f"list-{count}", count)
                print(f"{count} versions written in {time.perf_counter() - start:.0f} s", flush=True)
                subprocess.run([MODELREG, "remote", "add", "bench", f"s3://{BUCKET}/list-{count}",
                                "--endpoint-url", seaweed.endpoint_url], env=env, check=True,
                               stdout=subprocess.DEVNULL)
                command = [MODELREG, "list", "--remote", "bench"]
                runs: dict[str, list[dict]] = {"first": [], "repeated": []}
                for _ in range(args.rounds):
                    shutil.rmtree(home / "cache", ignore_errors=True)
                    for case in ("first", "repeated"):
                        runs[case].append(run_with_cpu(command, env, seaweed.process.pid))
                from_bytes_us = round(validation_seconds(sample) * 1e6, 1)
                for case, measured in runs.items():
                    row = {"backend": "s3", "case": case, "versions": count,
                           "modelreg": summary([run["wall"] for run in measured]),
                           "client_cpu_s": summary([run["client_cpu"] for run in measured]),
                           "server_cpu_s": summary([run["server_cpu"] for run in measured]),
                           "modelreg_max_rss_mb": round(max(run["rss_kib"] for run in measured) / 1024, 1),
                           "goal": GOALS.get((case, count)), "from_bytes_us_per_manifest": from_bytes_us,
                           "manifest_bytes": len(sample)}
                    results.append(row)
                    print(f"s3 list {case:8} {count:6} versions: {row['modelreg']['median_s']:.2f} s "
                          f"[{row['modelreg']['min_s']:.2f}-{row['modelreg']['max_s']:.2f}] "
                          f"goal {row['goal'] or '-'}, client CPU {row['client_cpu_s']['median_s']:.2f} s, "
                          f"server CPU {row['server_cpu_s']['median_s']:.2f} s, "
                          f"rss {row['modelreg_max_rss_mb']} MB", flush=True)
                write_report(Path(args.out), args.rounds, before, results)
            client.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


def write_report(out: Path, rounds: int, before: dict, results: list[dict]) -> None:
    report = {"rounds": rounds, "machine_before": before, "machine_after": machine(), "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
