"""Whole commands, as a user times them: `modelreg push/pull` next to `scp -r` and `aws s3 cp --recursive`.

    .venv/bin/python -m bench.bench_cli [--rounds 5] [--big 500M] [--only ssh,s3] [--out bench/out/cli.json]

Starts its own sshd and SeaweedFS on loopback. Two bundles are made with
`modelreg ingest NAME:VERSION --from DIR --family files`: "bundle" (four files shaped
like the v9 bundle, 4 MB) and "big" (the same plus one --big file). Every case runs
modelreg and the reference tool as new processes on the same files and server, taking
turns going first, --rounds times; the JSON keeps every run, the median and the spread,
and modelreg's peak RSS (`os.wait4`'s ru_maxrss of that process). Ratios are speeds:
reference time / modelreg time, so >1 means modelreg was faster.

Cases (fresh cache and empty --dest for every pull, an empty remote root for every push):
pull/push of each bundle; a pull of a version already cached; an identical re-push;
`--offline` pull of a cached version; `modelreg --help`; and one push and one pull of a
"huge" bundle (--huge, 1.5 GB) for peak memory only: it should match the big bundle's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import parse_size, write_random_file
from bench.installed import modelreg_command
from tests.servers.s3 import SeaweedServer
from tests.servers.ssh import SshdServer

BUCKET = "bench"
MODELREG = modelreg_command()
PYTHON = str(Path(MODELREG).with_name("python"))
"""The interpreter modelreg runs on, for the `python -c pass` row."""
TIME = "/usr/bin/time"
BUNDLE_FILES = {"best_model_v9.h5": 4_000_000, "label_classes_v9.npy": 200,
                "audio_mean_v9.npy": 3_200, "audio_std_v9.npy": 3_200}


def run_measured(cmd: list[str], env: dict, cwd: Path | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one command, run under `/usr/bin/time -f %M`.

    The RSS comes from `time` because a child forked from this (large) process would
    report this process's RSS as its own peak. Both tools are wrapped alike.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        start = time.perf_counter()
        result = subprocess.run([TIME, "-f", "%M", "-o", rss_file.name, *cmd], env=env, cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stderr.decode(errors='replace')}")
        peak = int(rss_file.read().split()[-1])
    return elapsed, peak


def summary(runs: list[float]) -> dict:
    return {"median_s": round(statistics.median(runs), 4), "min_s": round(min(runs), 4),
            "max_s": round(max(runs), 4), "runs_s": [round(r, 4) for r in runs]}


class Bench:
    def __init__(self, work: Path, sshd: SshdServer, seaweed: SeaweedServer, big: int, huge: int = 0,
                 warmup: int = 1, settle: int = 1) -> None:
        self.work, self.sshd, self.seaweed = work, sshd, seaweed
        self.warmup, self.settle = warmup, settle
        self.known_hosts = sshd.write_known_hosts(work / "known_hosts")
        home = work / "user-home"
        home.mkdir()
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("MODELREG_", "AWS_", "SSH_AUTH_SOCK"))}
        nowhere = str(work / "no-aws-config")
        self.env = {**base, "HOME": str(home), **seaweed.admin.env(), "AWS_CONFIG_FILE": nowhere,
                    "AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_EC2_METADATA_DISABLED": "true",
                    "MODELREG_HOME": str(work / "publisher"), "MODELREG_WORKSPACE": str(work / "ws")}
        (work / "ws").mkdir()
        (work / "ssh-remote").mkdir()
        self.client = seaweed.client()
        seaweed.ensure_bucket(BUCKET)
        self.sources = {"bundle": self._make_source("bundle", 0), "big": self._make_source("big", big)}
        if huge:
            self.sources["huge"] = self._make_source("huge", huge)
        for label, source in self.sources.items():
            subprocess.run([MODELREG, "-q", "ingest", f"{label}:v1", "--from", str(source), "--family",
                            "files"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        self.results: list[dict] = []

    def _make_source(self, label: str, extra: int) -> Path:
        source = self.work / "src" / label
        source.mkdir(parents=True)
        for name, size in BUNDLE_FILES.items():
            write_random_file(source / name, size)
        if extra:
            write_random_file(source / "extra_weights.bin", extra)
        return source

    # -- remotes --------------------------------------------------------------

    def remote_url(self, backend: str, root: str) -> tuple[str, list[str]]:
        """The remote URL for a registry root and the `remote add` options it needs."""
        if backend == "ssh":
            return (self.sshd.url(str(self.work / "ssh-remote" / root)),
                    ["--identity-file", str(self.sshd.client_key)])
        return f"s3://{BUCKET}/{root}", ["--endpoint-url", self.seaweed.endpoint_url]

    def add_remote(self, backend: str, name: str, root: str, env: dict) -> None:
        url, options = self.remote_url(backend, root)
        subprocess.run([MODELREG, "remote", "add", name, url, *options], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        if backend == "ssh":  # modelreg's own known_hosts, where the config puts it
            shutil.copyfile(self.known_hosts, Path(env["MODELREG_HOME"]) / "known_hosts")

    def clear_remote(self, backend: str, root: str) -> None:
        if backend == "ssh":
            shutil.rmtree(self.work / "ssh-remote" / root, ignore_errors=True)
            return
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET, Prefix=f"{root}/"):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
            if keys:
                self.client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})

    # -- reference commands ----------------------------------------------------

    def reference_pull(self, backend: str, label: str, dest: Path) -> list[str]:
        if backend == "ssh":
            source = f"{self.sshd.user}@127.0.0.1:{self.sources[label]}"
            return self.sshd.scp_command(self.known_hosts, "-r", source, str(dest))
        return [self.aws(), "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url",
                self.seaweed.endpoint_url, f"s3://{BUCKET}/plain/{label}/", str(dest)]

    def reference_push(self, backend: str, label: str, root: str) -> list[str]:
        if backend == "ssh":
            target = f"{self.sshd.user}@127.0.0.1:{self.work / 'ssh-remote' / root}"
            return self.sshd.scp_command(self.known_hosts, "-r", str(self.sources[label]), target)
        return [self.aws(), "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url",
                self.seaweed.endpoint_url, str(self.sources[label]), f"s3://{BUCKET}/{root}/"]

    @staticmethod
    def aws() -> str:
        beside = Path(sys.executable).with_name("aws")
        return str(beside) if beside.exists() else (shutil.which("aws") or "aws")

    # -- cases -----------------------------------------------------------------

    def record(self, backend: str, case: str, label: str, ours: list[float], rss: list[int],
               reference: list[float] | None, reference_tool: str | None) -> None:
        row = {"backend": backend, "case": case, "bundle": label,
               "bytes": sum(p.stat().st_size for p in self.sources[label].iterdir()) if label else 0,
               "modelreg": summary(ours), "modelreg_max_rss_mb": round(max(rss) / 1024, 1),
               "reference_tool": reference_tool}
        if reference is not None:
            row["reference"] = summary(reference)
            row["speed_ratio"] = round(statistics.median(reference) / statistics.median(ours), 2)
        self.results.append(row)
        ratio = f"  ratio {row['speed_ratio']:.2f}x vs {reference_tool}" if reference else ""
        print(f"{backend:4} {case:13} {label:7} modelreg {row['modelreg']['median_s']:.3f} s "
              f"[{row['modelreg']['min_s']:.3f}-{row['modelreg']['max_s']:.3f}] rss "
              f"{row['modelreg_max_rss_mb']} MB{ratio}"
              + (f" ({row['reference']['median_s']:.3f} s)" if reference else ""), flush=True)

    def alternate(self, rounds: int, ours, reference, setup) -> tuple[list[float], list[int], list[float]]:
        """Run both commands `rounds` times, taking turns going first; `setup()` is untimed.

        Each command first runs `self.warmup` times untimed (as hyperfine's --warmup): the
        first run of a case paid for whatever the previous case left (page cache, memory the
        VM's host took back) and always fell to whichever tool went first.

        With a reference, each timed run is followed by `self.settle` untimed runs of the same
        command. On this VM the large pulls alternated between slow and fast runs by their
        position in the sequence, whichever tool ran: in two `make bench` runs the first
        command of every S3 504 MB round took 1.69-2.44 s and the second 1.16-1.29 s, and
        with 5 rounds taken in turns one tool is first 3 times. With one settling run, every
        timed run has the same position in that alternation.
        """
        times: list[float] = []
        rss: list[int] = []
        ref_times: list[float] = []
        for index in range(self.warmup):
            for who in ("ours", "ref"):
                setup(who, index)
                if who == "ours":
                    run_measured(*ours(index))
                elif reference is not None:
                    run_measured(*reference(index))
        for index in range(rounds):
            order = ("ours", "ref") if index % 2 == 0 else ("ref", "ours")
            for who in order:
                if who == "ref" and reference is None:
                    continue
                command = ours(index) if who == "ours" else reference(index)
                setup(who, index)
                elapsed, peak = run_measured(*command)
                if who == "ours":
                    times.append(elapsed)
                    rss.append(peak)
                else:
                    ref_times.append(elapsed)
                for _ in range(self.settle if reference is not None else 0):
                    setup(who, index)
                    run_measured(*command)
        return times, rss, ref_times

    def pull_env(self, backend: str, tag: str) -> dict:
        """A second machine: its own home (config, cache) and workspace, with the remote added."""
        home = self.work / f"puller-{backend}-{tag}"
        env = {**self.env, "MODELREG_HOME": str(home), "MODELREG_WORKSPACE": str(home / "ws")}
        (home / "ws").mkdir(parents=True, exist_ok=True)
        self.add_remote(backend, "bench", f"registry-{tag}", env)
        return env

    def run_memory(self, backend: str) -> None:
        """One push and one pull of the "huge" bundle, for their peak RSS (timed, with no reference)."""
        if "huge" not in self.sources:
            return
        env_push = {**self.env}
        self.add_remote(backend, "huge", "registry-huge", env_push)
        self.clear_remote(backend, "registry-huge")
        elapsed, peak = run_measured([MODELREG, "-q", "push", "huge:v1", "--remote", "huge"], env_push)
        self.record(backend, "push, memory", "huge", [elapsed], [peak], None, None)
        env_pull = {**self.pull_env(backend, "huge")}
        self.add_remote(backend, "bench", "registry-huge", env_pull)
        dest = self.work / "dest"
        shutil.rmtree(dest, ignore_errors=True)
        elapsed, peak = run_measured([MODELREG, "-q", "pull", "huge:v1", "--remote", "bench", "--dest",
                                      str(dest)], env_pull)
        self.record(backend, "pull, memory", "huge", [elapsed], [peak], None, None)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(Path(env_pull["MODELREG_HOME"]) / "cache", ignore_errors=True)
        self.clear_remote(backend, "registry-huge")

    def run_backend(self, backend: str, rounds: int) -> None:
        reference_tool = "scp -r" if backend == "ssh" else "aws s3 cp --recursive"
        for label in ("bundle", "big"):
            if backend == "s3":
                self._upload_plain(label)
            pushed = f"registry-{label}"
            env_push = {**self.env}
            self.add_remote(backend, f"pushed-{label}", pushed, env_push)
            self.clear_remote(backend, pushed)
            subprocess.run([MODELREG, "-q", "push", f"{label}:v1", "--remote", f"pushed-{label}"],
                           env=env_push, check=True, stdout=subprocess.DEVNULL)
            env_pull = self.pull_env(backend, label)
            dest = self.work / "dest"

            def pull_setup(who: str, index: int) -> None:
                shutil.rmtree(dest, ignore_errors=True)
                shutil.rmtree(Path(env_pull["MODELREG_HOME"]) / "cache", ignore_errors=True)

            times, rss, ref = self.alternate(
                rounds,
                lambda i: ([MODELREG, "-q", "pull", f"{label}:v1", "--remote", "bench", "--dest",
                            str(dest)], env_pull),
                lambda i: (self.reference_pull(backend, label, dest), self.env),
                pull_setup)
            self.record(backend, "pull", label, times, rss, ref, reference_tool)

            fresh = f"push-{label}"
            self.add_remote(backend, "fresh", fresh, env_push)

            def push_setup(who: str, index: int) -> None:
                self.clear_remote(backend, fresh)
                self.clear_remote(backend, f"scp-{label}")

            times, rss, ref = self.alternate(
                rounds, lambda i: ([MODELREG, "-q", "push", f"{label}:v1", "--remote", "fresh"], env_push),
                lambda i: (self.reference_push(backend, label, f"scp-{label}"), self.env), push_setup)
            self.record(backend, "push", label, times, rss, ref, reference_tool)

            if label != "bundle":
                continue
            subprocess.run([MODELREG, "-q", "pull", f"{label}:v1", "--remote", "bench"], env=env_pull,
                           check=True, stdout=subprocess.DEVNULL)
            nothing = lambda who, index: None  # noqa: E731
            for case, cmd, env in (
                    ("cached pull", ["pull", f"{label}:v1", "--remote", "bench"], env_pull),
                    ("re-push", ["push", f"{label}:v1", "--remote", f"pushed-{label}"], env_push),
                    ("offline pull", ["--offline", "pull", f"{label}:v1", "--remote", "bench"], env_pull)):
                times, rss, _ = self.alternate(rounds, lambda i, c=cmd, e=env: ([MODELREG, "-q", *c], e),
                                               None, nothing)
                self.record(backend, case, label, times, rss, None, None)

    def _upload_plain(self, label: str) -> None:
        """The files as plain objects, for `aws s3 cp --recursive` to download (retried: SeaweedFS
        under load occasionally answers InternalError while it grows a volume)."""
        for path in self.sources[label].iterdir():
            for attempt in range(5):
                try:
                    self.client.upload_file(str(path), BUCKET, f"plain/{label}/{path.name}")
                    break
                except Exception:
                    if attempt == 4:
                        raise
                    time.sleep(2)

    def run_help(self, rounds: int) -> None:
        times, rss, _ = self.alternate(rounds, lambda i: ([MODELREG, "--help"], self.env), None,
                                       lambda who, index: None)
        baseline, _rss, _ = self.alternate(rounds, lambda i: ([PYTHON, "-c", "pass"], self.env),
                                           None, lambda who, index: None)
        self.record("-", "--help", "", times, rss, None, None)
        self.record("-", "python -c pass", "", baseline, _rss, None, None)


def machine() -> dict:
    load = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in load], "python": platform.python_version(),
            "modelreg": "wheel" if "bench-venv" in MODELREG else "editable checkout",
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--big", default="500M", help="size of the extra file of the big bundle")
    parser.add_argument("--huge", default="1500M", help="size of the extra file of the bundle pushed and "
                        "pulled once for peak memory (0: skip)")
    parser.add_argument("--only", default="ssh,s3")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "cli.json"))
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each command before its rounds")
    parser.add_argument("--settle", type=int, default=1, help="untimed runs of the same command after each timed "
                        "run of a case with a reference (see Bench.alternate)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="modelreg-bench-cli-", dir=args.workdir))
    before = machine()
    try:
        with SshdServer(work / "sshd") as sshd, SeaweedServer(work / "seaweedfs") as seaweed:
            bench = Bench(work, sshd, seaweed, parse_size(args.big), parse_size(args.huge), args.warmup,
                          args.settle)
            bench.run_help(args.rounds)
            for backend in args.only.split(","):
                bench.run_backend(backend, args.rounds)
                bench.run_memory(backend)
                write_report(Path(args.out), args.rounds, args.warmup, args.settle, before,
                             bench.results)  # keep what is done
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


def write_report(out: Path, rounds: int, warmup: int, settle: int, before: dict, results: list[dict]) -> None:
    report = {"rounds": rounds, "warmup": warmup, "settle": settle, "machine_before": before,
              "machine_after": machine(), "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
