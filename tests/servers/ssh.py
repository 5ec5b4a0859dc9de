"""A real OpenSSH sshd on a free loopback port, for the SSH backend's tests and benchmark.

Plain classes and helpers, no pytest: the fixtures in tests/conftest.py and
`bench.bench_ssh` start the same server, which `stop()` ends by its pid.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
START_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def generate_key(path: Path, key_type: str = "ed25519", passphrase: str = "") -> Path:
    """Create an OpenSSH key pair at `path` / `path.pub` with ssh-keygen."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", key_type, "-N", passphrase, "-C", "modelreg-test",
                    "-f", str(path)], check=True, capture_output=True)
    return path


@dataclass
class SshdServer:
    """An OpenSSH sshd started from its own config in `workdir`, stopped by pid.

    Accepts public-key logins for `user` with `client_key` (and for a second,
    unprivileged account when run as root, see `unprivileged_user`).
    """

    workdir: Path
    user: str = ""
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def host_key(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def known_hosts_line(self) -> str:
        """The server's host key as a known_hosts line (`[127.0.0.1]:port type base64`)."""
        key_type, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {blob}\n"

    @property
    def unprivileged_user(self) -> str | None:
        """An account that file permissions apply to (root ignores them): `nobody` when we are root."""
        if os.geteuid() != 0:
            return self.user
        try:
            return pwd.getpwnam("nobody").pw_name
        except KeyError:
            return None

    def start(self) -> SshdServer:
        if not SSHD.exists():
            raise RuntimeError(f"{SSHD} is missing: install the openssh-server package "
                               f"(apt-get install openssh-server) to run the SSH tests.")
        self.user = self.user or getpass.getuser()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # sshd reads authorized_keys as the logged-in user: let an unprivileged one reach it.
        self.workdir.chmod(0o755)
        if not self.host_key.exists():
            generate_key(self.host_key)
            generate_key(self.client_key)
            authorized = self.workdir / "authorized_keys"
            shutil.copyfile(self.client_key.with_suffix(".pub"), authorized)
            authorized.chmod(0o644)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port()
            self._spawn()
            if self._wait_for_banner():
                return self
            self.stop()
        raise RuntimeError(f"sshd did not start on 127.0.0.1:{self.port}; its log:\n"
                           f"{self.log_path.read_text(errors='replace')}")

    def _spawn(self) -> None:
        config = self.workdir / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.workdir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\n"
            "MaxStartups 64:30:128\n"
            "MaxSessions 32\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel VERBOSE\n"
        )
        log = open(self.log_path, "ab")
        with log:
            self.process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    def _wait_for_banner(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                    if conn.recv(64).startswith(b"SSH-2.0-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; open sessions are separate processes ending with their clients."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(self.known_hosts_line)
        return path

    def scp_command(self, known_hosts: Path, *args: str) -> list[str]:
        """An `scp` command line that trusts this server through `known_hosts` only."""
        return ["scp", "-q", "-B", "-P", str(self.port), "-i", str(self.client_key),
                "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", *args]

    def url(self, path: str, user: str | None = None) -> str:
        return f"ssh://{user or self.user}@127.0.0.1:{self.port}{path}"

    def __enter__(self) -> SshdServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
