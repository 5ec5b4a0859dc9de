"""Local (file://) registry: push and pull throughput next to `cp` and `sha256sum` on the same files.

    .venv/bin/python -m bench.bench_local [--sizes 12M,1G] [--json]     (from the repository root)

A push re-hashes each cached blob before copying it (the cache is untrusted), and a
pull hashes while copying, so the honest comparison is `cp` alone and
`sha256sum` alone: modelreg should land near cp + sha256sum.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import median_seconds, parse_size, print_table, run, settings_in, write_random_file
from modelreg.bundle import create_bundle
from modelreg.config import RemoteSpec
from modelreg.refs import Ref
from modelreg.transfer import pull, push


def bench_size(work: Path, size: int) -> dict:
    source = write_random_file(work / "payload.bin", size)
    home, workspace = work / "home", work / "ws"
    settings = settings_in(home, workspace)
    model = {"family": "bench", "input_shape": [], "labels": [], "hyperparameters": {}}
    create_bundle(settings, Ref("bench", "v1"), {"payload.bin": ("other", source)}, model=model,
                  metrics={}, provenance={"modelreg_version": "bench"})
    registry_root = work / "registry"

    def reset_remote():
        shutil.rmtree(registry_root, ignore_errors=True)
        shutil.rmtree(workspace / "manifests", ignore_errors=True)

    spec = RemoteSpec(url=registry_root.as_uri())
    push_s = median_seconds(lambda: push(settings, Ref("bench", "v1"), spec), setup=reset_remote)
    pull_settings = settings_in(work / "home2", work / "ws2")

    def reset_cache():
        shutil.rmtree(pull_settings.cache_dir, ignore_errors=True)

    pull_s = median_seconds(lambda: pull(pull_settings, Ref("bench", "v1"), spec), setup=reset_cache)
    cp_s = median_seconds(lambda: run("cp", str(source), str(work / "copy.bin")),
                          setup=lambda: (work / "copy.bin").unlink(missing_ok=True))
    sum_s = median_seconds(lambda: run("sha256sum", str(source)))
    mb = size / 1e6
    return {"size_bytes": size, "push_s": push_s, "pull_s": pull_s, "cp_s": cp_s, "sha256sum_s": sum_s,
            "push_MBps": mb / push_s, "pull_MBps": mb / pull_s, "cp_MBps": mb / cp_s,
            "sha256sum_MBps": mb / sum_s}


def help_wall_time() -> float:
    exe = str(Path(sys.executable).with_name("modelreg"))
    return median_seconds(lambda: subprocess.run([exe, "--help"], check=True, capture_output=True),
                          repeats=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="12M,1G")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for text in args.sizes.split(","):
        with tempfile.TemporaryDirectory(prefix="modelreg-bench-") as work:
            results.append({"size": text, **bench_size(Path(work), parse_size(text))})
    help_s = help_wall_time()
    if args.json:
        print(json.dumps({"local": results, "help_s": help_s}, indent=2))
        return
    rows = [[r["size"], r["push_MBps"], r["pull_MBps"], r["cp_MBps"], r["sha256sum_MBps"],
             r["push_s"] / (r["cp_s"] + r["sha256sum_s"]), r["pull_s"] / (r["cp_s"] + r["sha256sum_s"])]
            for r in results]
    print_table("Local registry (file://), median of 3, MB/s",
                ["size", "push", "pull", "cp", "sha256sum", "push/(cp+sum) time", "pull/(cp+sum) time"], rows)
    print(f"\nmodelreg --help wall time (median of 5): {help_s:.3f} s")


if __name__ == "__main__":
    main()
