"""`make bench`: the whole-command benchmark, written to bench/out/cli-*.json and rendered into README.md.

    .venv/bin/python -m bench.run [--rounds 5] [--big 500M] [--only ssh,s3] [--list-versions 1000,10000]
                                  [--no-list] [--in-process]

Runs `bench.bench_cli` (modelreg push/pull as new processes next to `scp -r` and
`aws s3 cp --recursive`, alternating, medians and spread, peak RSS), then
`bench.bench_list` (`modelreg list` of an S3 registry with 1,000 and 10,000 versions, first
and repeated, into bench/out/list-s3.json; skipped with --no-list), then
`bench.render_table --readme README.md` (both tables). With --in-process it also runs the older
per-backend benchmarks (warm, in-process transfers; labelled as such in their output)
into bench/out/*.json. Speed targets live here and in the table's goal column, never
in timed tests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import installed

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "bench" / "out"
IN_PROCESS = {"local": "bench.bench_local", "s3": "bench.bench_s3", "ssh": "bench.bench_ssh"}


def step(command: list[str], output: Path | None = None) -> bool:
    print(f"\n=== {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    if output is None:
        ok = subprocess.run(command, cwd=REPO_ROOT).returncode == 0
    else:
        with open(output, "w") as out:
            ok = subprocess.run(command, cwd=REPO_ROOT, stdout=out).returncode == 0
    print(f"({time.perf_counter() - start:.0f} s)", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", default="5")
    parser.add_argument("--big", default="500M")
    parser.add_argument("--only", default="ssh,s3", help="backends, each run with fresh servers")
    parser.add_argument("--in-process", action="store_true",
                        help="also run the in-process backend benchmarks (12M,1G) into bench/out/")
    parser.add_argument("--list-versions", default="1000,10000", help="version counts for bench.bench_list")
    parser.add_argument("--editable", action="store_true", help="time the checkout's editable install "
                        "instead of the wheel installed into build/bench-venv (see bench.installed)")
    parser.add_argument("--no-list", action="store_true", help="skip bench.bench_list (and keep the "
                        "list table of an earlier run, if any)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    if not args.editable:
        print("=== building the wheel into build/bench-venv", flush=True)
        os.environ["MODELREG_BENCH_BIN"] = str(installed.prepare())
    # One run (with its own sshd and SeaweedFS) per backend: SeaweedFS left idle for minutes
    # while the SSH cases ran answered InternalError to every upload (seen twice).
    results = [OUT / f"cli-{backend}.json" for backend in args.only.split(",")]
    ok = all([step([py, "-m", "bench.bench_cli", "--rounds", args.rounds, "--big", args.big, "--only",
                    backend, "--out", str(out)]) for backend, out in zip(args.only.split(","), results)])
    if not args.no_list:
        ok = step([py, "-m", "bench.bench_list", "--versions", args.list_versions, "--rounds", args.rounds,
                   "--out", str(OUT / "list-s3.json")]) and ok
    ok = ok and step([py, "-m", "bench.render_table", *(f"--json={out}" for out in results),
                      "--readme", str(REPO_ROOT / "README.md")])
    if args.in_process:
        for name, module in IN_PROCESS.items():
            ok = step([py, "-m", module, "--json"], OUT / f"in-process-{name}.json") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
