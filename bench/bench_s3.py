"""Throughput of the S3 backend against `aws s3 cp`, both ways, on a throwaway SeaweedFS.

    .venv/bin/python -m bench.bench_s3 [--sizes 12M,1G] [--repeat 3] [--workdir /tmp] [--json]

For each size it writes a random file, then times (median of --repeat rounds; the
tools take turns going first so background load hits them alike):
- up:   `S3Storage.write(key, path, sha256=...)`  vs  `aws s3 cp path s3://...`
- down: `S3Storage.read(key, HashingSink(file))`  vs  `aws s3 cp s3://... path`
`aws s3 cp` is timed twice: as the command a user runs (a new process, so its
start-up is included) and in-process through awscli's own driver after a warm-up
(the transfer alone). Ours hashes every downloaded byte; aws does not.
Everything lives in a temp directory under --workdir, deleted at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modelreg.config import RemoteSpec
from modelreg.hashing import HashingSink
from modelreg.storage.s3.backend import S3Storage
from tests.servers.s3 import SeaweedServer

BUCKET = "bench"
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
TOOLS = ("ours", "aws", "aws-in-process")


def parse_size(text: str) -> int:
    """`12M`, `1G`, `512K` or a byte count."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text[-1:] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def human(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size >= UNITS[unit] and size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return str(size)


def make_random_file(path: Path, size: int) -> str:
    """Write `size` random bytes; return their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 8 << 20))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def find_aws() -> str:
    beside = Path(sys.executable).with_name("aws")
    found = str(beside) if beside.exists() else shutil.which("aws")
    if not found:
        raise SystemExit("The aws CLI is needed for the comparison: pip install awscli.")
    return found


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class Bench:
    """One server, one `S3Storage`, and the aws CLI configured with the same credentials."""

    def __init__(self, server: SeaweedServer, workdir: Path) -> None:
        from awscli.clidriver import create_clidriver

        self.server = server
        self.workdir = workdir
        self.aws = find_aws()
        self._create_clidriver = create_clidriver
        nowhere = str(workdir / "no-aws-config")
        credentials = {**server.admin.env(), "AWS_CONFIG_FILE": nowhere,
                       "AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_EC2_METADATA_DISABLED": "true"}
        os.environ.update(credentials)  # for S3Storage's and the in-process CLI's credential chain
        os.environ.pop("AWS_PROFILE", None)
        self.env = dict(os.environ)
        self.storage = S3Storage(RemoteSpec(url=f"s3://{BUCKET}/ours",
                                            options={"endpoint_url": server.endpoint_url}))
        self.client = server.client()

    def close(self) -> None:
        self.storage.close()
        self.client.close()

    def _cp_args(self, source: str, target: str) -> list[str]:
        return ["s3", "cp", "--only-show-errors", "--endpoint-url", self.server.endpoint_url, source, target]

    def aws_cp(self, source: str, target: str) -> None:
        subprocess.run([self.aws, *self._cp_args(source, target)], check=True, env=self.env)

    def aws_cp_in_process(self, source: str, target: str) -> None:
        if self._create_clidriver().main(self._cp_args(source, target)) != 0:
            raise SystemExit(f"In-process `aws s3 cp {source} {target}` failed.")

    def upload(self, tool: str, source: Path, digest: str) -> float:
        if tool == "ours":
            return timed(lambda: self.storage.write(f"blob-{tool}", source, sha256=digest))
        copy = self.aws_cp if tool == "aws" else self.aws_cp_in_process
        return timed(lambda: copy(str(source), f"s3://{BUCKET}/{tool}/blob"))

    def download(self, tool: str, target: Path, digest: str) -> float:
        if tool == "ours":
            with open(target, "wb") as out:
                sink = HashingSink(out)
                elapsed = timed(lambda: self.storage.read(f"blob-{tool}", sink))
            if sink.hexdigest() != digest:
                raise SystemExit("Our download has the wrong sha256.")
            return elapsed
        copy = self.aws_cp if tool == "aws" else self.aws_cp_in_process
        return timed(lambda: copy(f"s3://{BUCKET}/{tool}/blob", str(target)))

    def warm_up(self) -> None:
        """One small round trip per tool, so imports and first connections are not timed."""
        source = self.workdir / "warm-up"
        digest = make_random_file(source, 1 << 20)
        for tool in TOOLS:
            self.upload(tool, source, digest)
            self.download(tool, self.workdir / "warm-up-copy", digest)
        source.unlink()

    def run_size(self, size: int, repeat: int) -> list[dict]:
        source = self.workdir / "source"
        digest = make_random_file(source, size)
        copy = self.workdir / "copy"
        times = {(direction, tool): [] for direction in ("up", "down") for tool in TOOLS}
        for round_number in range(repeat):
            shift = round_number % len(TOOLS)
            order = TOOLS[shift:] + TOOLS[:shift]
            for tool in order:
                times["up", tool].append(self.upload(tool, source, digest))
            for tool in order:
                times["down", tool].append(self.download(tool, copy, digest))
                if tool != "ours" and hashlib.sha256(copy.read_bytes()).hexdigest() != digest:
                    raise SystemExit(f"{tool} downloaded the wrong bytes.")
                copy.unlink()
            self._delete_uploads()  # SeaweedFS keeps overwritten data until a vacuum
        source.unlink()
        rows = []
        for direction in ("up", "down"):
            medians = {tool: statistics.median(times[direction, tool]) for tool in TOOLS}
            row = {"size": size, "direction": direction}
            for tool in TOOLS:
                name = tool.replace("-", "_")
                row[f"{name}_s"] = round(medians[tool], 3)
                row[f"{name}_MBps"] = round(size / medians[tool] / 1e6, 1)
                row[f"{name}_runs_s"] = [round(t, 3) for t in times[direction, tool]]
            row["ratio_vs_aws"] = round(medians["aws"] / medians["ours"], 2)
            row["ratio_vs_aws_in_process"] = round(medians["aws-in-process"] / medians["ours"], 2)
            rows.append(row)
        return rows

    def _delete_uploads(self) -> None:
        self.storage.delete("blob-ours")
        for tool in TOOLS[1:]:
            self.client.delete_object(Bucket=BUCKET, Key=f"{tool}/blob")


def print_table(rows: list[dict], repeat: int) -> None:
    header = (f"{'size':>5}  {'dir':<4}  {'ours MB/s':>9}  {'aws MB/s':>8}  {'ours/aws':>8}  "
              f"{'aws in-proc MB/s':>16}  {'ours/in-proc':>12}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{human(row['size']):>5}  {row['direction']:<4}  {row['ours_MBps']:>9.1f}  "
              f"{row['aws_MBps']:>8.1f}  {row['ratio_vs_aws']:>7.2f}x  "
              f"{row['aws_in_process_MBps']:>16.1f}  {row['ratio_vs_aws_in_process']:>11.2f}x")
    print(f"\nMedians of {repeat} rounds; a ratio above 1 means ours was faster. 'aws' is the "
          f"`aws s3 cp` command (start-up included);\n'in-proc' is the same copy through awscli's "
          f"driver inside this process, warmed up. Ours also SHA-256-hashes every downloaded byte.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="12M,1G", help="comma-separated sizes (default 12M,1G)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per size; medians are reported")
    parser.add_argument("--workdir", default=tempfile.gettempdir(),
                        help="where temp data goes (default: the system temp dir)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    sizes = [parse_size(part) for part in args.sizes.split(",") if part.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="modelreg-bench-s3-", dir=args.workdir))
    try:
        with SeaweedServer(workdir / "seaweedfs") as server:
            server.ensure_bucket(BUCKET)
            bench = Bench(server, workdir)
            try:
                bench.warm_up()
                rows = [row for size in sizes for row in bench.run_size(size, args.repeat)]
            finally:
                bench.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"repeat": args.repeat, "results": rows}, indent=2))
    else:
        print_table(rows, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
