"""SSH registry backend throughput next to OpenSSH's `scp`, both directions, on the same files.

    .venv/bin/python -m bench.bench_ssh [--sizes 12M,1G] [--rounds 3] [--json]

Starts its own sshd (`SshdServer` from tests/servers/ssh.py) on a loopback port.
Each round runs scp and SSHStorage back to back, so both see the same machine load;
the table shows medians over the rounds. "warm" reuses one open SSHStorage (its
connection pool, as a push or pull of many files does); "cold" opens a new one per
transfer and so pays the SSH handshakes, like each scp run does. Downloads go
through a `HashingSink` into a temp file (what a pull does); uploads are fsynced
on the server before they are published (scp does not fsync).

Tuning knobs, for measuring what each setting buys: --streams (connections per
file), --depth (requests in flight per connection), --request-size (bytes per SFTP
request), --ciphers (preference order), --window / --packet (SSH channel receive
window and packet size), --no-fsync. --stock adds paramiko's own SFTPClient.put/get
with its default settings, the starting point.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import paramiko

from bench.common import parse_size, print_table, write_random_file
from modelreg.config import RemoteSpec
from modelreg.hashing import HashingSink
from modelreg.storage.ssh import backend as ssh
from modelreg.storage.ssh import connect as ssh_connect
from modelreg.storage.ssh import pipeline as ssh_pipeline
from modelreg.storage.ssh import sftp as ssh_sftp
from modelreg.storage.ssh.backend import SSHStorage
from tests.servers.ssh import SshdServer

MEASURES = ("scp_up", "warm_up", "cold_up", "stock_up", "scp_down", "warm_down", "cold_down", "stock_down")


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def stock_sftp(server: SshdServer) -> paramiko.SFTPClient:
    """paramiko as it comes: default Transport, ciphers, window and SFTPClient.put/get."""
    transport = paramiko.Transport(socket.create_connection(("127.0.0.1", server.port)))
    transport.connect(username=server.user, pkey=paramiko.PKey.from_path(server.client_key))
    return paramiko.SFTPClient.from_transport(transport)


def bench_size(server: SshdServer, work: Path, label: str, size: int, rounds: int,
               measures: tuple[str, ...]) -> dict:
    source = write_random_file(work / f"payload-{label}.bin", size)
    remote = work / "remote"
    known_hosts = server.write_known_hosts(work / "known_hosts")
    spec = RemoteSpec(url=server.url(str(remote)),
                      options={"identity_file": str(server.client_key), "known_hosts": str(known_hosts)})
    download = work / "download.bin"
    seconds: dict[str, list[float]] = {name: [] for name in measures}

    def measure(name: str, func) -> None:
        if name in seconds:
            seconds[name].append(timed(func))

    def scp(*args: str) -> None:
        subprocess.run(server.scp_command(known_hosts, *args), check=True)

    def read_into_file(storage: SSHStorage, key: str) -> None:
        with open(download, "wb") as out:
            storage.read(key, HashingSink(out))

    def cold(action) -> None:
        with SSHStorage(spec) as storage:
            action(storage)

    remote.mkdir()
    scp_target = f"{server.user}@127.0.0.1:{remote}/scp-{label}.bin"
    stock = stock_sftp(server) if "stock_up" in measures else None
    with SSHStorage(spec) as warm:
        warm.write("warmup", b"connect before timing")
        for index in range(rounds):
            key = f"blobs/{label}-{index}"
            measure("scp_up", lambda: scp(str(source), scp_target))
            measure("warm_up", lambda: warm.write(key, source))
            measure("cold_up", lambda: cold(lambda s: s.write(key + "-cold", source)))
            measure("stock_up", lambda: stock.put(str(source), f"{remote}/stock.bin"))
            measure("scp_down", lambda: scp(scp_target, str(download)))
            measure("warm_down", lambda: read_into_file(warm, key))
            measure("cold_down", lambda: cold(lambda s: read_into_file(s, key)))
            measure("stock_down", lambda: stock.get(f"{remote}/stock.bin", str(download)))
            for stale in (key, key + "-cold"):
                warm.delete(stale)
    if stock is not None:
        stock.get_channel().get_transport().close()
    shutil.rmtree(remote, ignore_errors=True)
    source.unlink()
    download.unlink(missing_ok=True)
    mbps = {name: size / 1e6 / statistics.median(values) for name, values in seconds.items()}
    return {"size": label, "size_bytes": size, "MBps": mbps,
            "seconds": {name: [round(v, 3) for v in values] for name, values in seconds.items()}}


def apply_knobs(args: argparse.Namespace) -> dict:
    if args.streams is not None:
        ssh.STREAMS_PER_FILE = args.streams
    if args.depth is not None:
        ssh_pipeline.DEPTH = args.depth
    if args.ciphers:
        ssh_connect.FAST_CIPHERS = tuple(args.ciphers.split(","))
    if args.request_size:
        ssh_sftp.MAX_REQUEST_SIZE = parse_size(args.request_size)
    if args.window:
        ssh_connect.WINDOW_SIZE = parse_size(args.window)
    if args.packet:
        ssh_connect.MAX_PACKET_SIZE = parse_size(args.packet)
    if args.no_fsync:
        ssh_sftp.BulkSFTPClient.fsync = lambda client, handle: None
    return {"streams": ssh.STREAMS_PER_FILE, "depth": ssh_pipeline.DEPTH,
            "request_size": ssh_sftp.MAX_REQUEST_SIZE, "ciphers": ",".join(ssh_connect.FAST_CIPHERS),
            "window": ssh_connect.WINDOW_SIZE, "packet": ssh_connect.MAX_PACKET_SIZE,
            "fsync": not args.no_fsync}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="12M,1G")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--streams", type=int, help="connections per large file")
    parser.add_argument("--depth", type=int, help="SFTP requests in flight per connection")
    parser.add_argument("--ciphers", help="cipher preference, comma-separated")
    parser.add_argument("--request-size", help="SFTP request size cap, e.g. 32K")
    parser.add_argument("--window", help="SSH channel receive window, e.g. 2M")
    parser.add_argument("--packet", help="SSH max packet size we accept, e.g. 32K")
    parser.add_argument("--no-fsync", action="store_true", help="skip the server-side fsync")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold (new connection) runs")
    parser.add_argument("--stock", action="store_true", help="also time stock paramiko put/get")
    args = parser.parse_args()
    measures = tuple(name for name in MEASURES
                     if not (args.no_cold and name.startswith("cold"))
                     and (args.stock or not name.startswith("stock")))
    knobs = apply_knobs(args)
    results = []
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-ssh-") as temp:
        work = Path(temp)
        with SshdServer(work / "sshd") as server:
            for label in args.sizes.split(","):
                results.append(bench_size(server, work, label, parse_size(label), args.rounds, measures))
    if args.json:
        print(json.dumps({"knobs": knobs, "rounds": args.rounds, "results": results}, indent=2))
        return
    columns = [kind for kind in ("warm", "cold", "stock") if f"{kind}_up" in measures]
    rows = []
    for result in results:
        speed = result["MBps"]
        for direction in ("up", "down"):
            scp = speed[f"scp_{direction}"]
            row = [result["size"], direction, scp]
            for kind in columns:
                row += [speed[f"{kind}_{direction}"], speed[f"{kind}_{direction}"] / scp]
            rows.append(row)
    header = ["size", "dir", "scp"] + [name for kind in columns for name in (kind, f"{kind}/scp")]
    print_table(f"SSH backend vs scp, MB/s, median of {args.rounds}", header, rows)
    print("knobs: " + ", ".join(f"{name}={value}" for name, value in knobs.items()))


if __name__ == "__main__":
    main()
