"""`make bench`: every benchmark in one run, each printing its own table.

    .venv/bin/python -m bench.run [--sizes 12M,1G] [--only local,s3,ssh,train]   (from the repository root)

Each benchmark measures modelreg next to the tool a user would otherwise use
(cp / sha256sum, aws s3 cp, scp) on the same files, in the same run, and prints
ratios. Speed targets live here, never in timed tests.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHES = {
    "local": "bench.bench_local",
    "s3": "bench.bench_s3",
    "ssh": "bench.bench_ssh",
    "train": "bench.bench_train",
}
SIZED = {"local", "s3", "ssh"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="12M,1G")
    parser.add_argument("--only", default=",".join(BENCHES))
    args = parser.parse_args()
    failed = []
    for name in args.only.split(","):
        command = [sys.executable, "-m", BENCHES[name]]
        if name in SIZED:
            command += ["--sizes", args.sizes]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
            failed.append(name)
        print(f"({name} took {time.perf_counter() - start:.0f} s)", flush=True)
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
