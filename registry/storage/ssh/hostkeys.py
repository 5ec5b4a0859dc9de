"""SSH host key trust for the `ssh://` backend: OpenSSH known_hosts files, checked strictly.

A server is trusted only when one of its known_hosts entries holds exactly the key it
presented. An unknown server is refused (or, when the caller opted in with
`accept_new`, recorded in the modelreg known_hosts file); a server whose key differs
from a recorded one is always refused, naming the file and line of the old entry.
Hashed entries (`|1|salt|hash`), wildcard and negated patterns, `[host]:port` names
and `@revoked` markers are understood; `@cert-authority` entries are ignored
(host certificates are not supported).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko

from modelreg.errors import LocalIOError, UntrustedError, UsageError
from modelreg.local.lockfile import FileLock

_RECORD_LOCK = threading.Lock()
RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256")


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH files a host under: `host` on port 22, else `[host]:port`."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(blob: bytes) -> str:
    """The OpenSSH SHA256 fingerprint of a public key blob (`SHA256:` + unpadded base64)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _pattern_matches(name: str, pattern: str) -> bool:
    """OpenSSH host pattern matching: `*` and `?` are wildcards, everything else (`[`, `]`) literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def blob_key_type(blob: bytes) -> str:
    """The key type a public key blob declares (its first SSH string), e.g. `ssh-ed25519`."""
    try:
        (length,) = struct.unpack(">I", blob[:4])
        return blob[4:4 + length].decode("ascii")
    except (struct.error, UnicodeDecodeError):
        return "unknown"


@dataclass(frozen=True)
class KnownHostEntry:
    """One key line of a known_hosts file."""

    path: Path
    line: int
    marker: str
    patterns: str
    blob: bytes

    @property
    def key_type(self) -> str:
        return blob_key_type(self.blob)

    @property
    def where(self) -> str:
        return f"{self.path} line {self.line}"

    def matches(self, name: str) -> bool:
        """Does this entry apply to `name` (as made by `known_hosts_name`)?"""
        if self.patterns.startswith("|1|"):
            return paramiko.HostKeys.hash_host(name, self.patterns) == self.patterns
        matched = False
        for pattern in self.patterns.split(","):
            negated = pattern.startswith("!")
            if _pattern_matches(name, pattern.lstrip("!")):
                if negated:
                    return False
                matched = True
        return matched


def read_known_hosts(path: Path) -> list[KnownHostEntry]:
    """The key entries of one known_hosts file; a missing file has none, malformed lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UntrustedError(f"Cannot read the known_hosts file {path}: {exc.strerror}. "
                             f"Fix its permissions so host keys can be checked.") from exc
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except ValueError:
            continue
        entries.append(KnownHostEntry(path, number, marker, fields[0], blob))
    return entries


class HostKeyVerifier:
    """Checks server keys against known_hosts files and records newly accepted ones.

    `known_hosts` are read only (the user's `~/.ssh/known_hosts`, the system one);
    `modelreg_known_hosts` is read too and is where `accept_new` records a key.
    """

    def __init__(self, known_hosts: list[Path], modelreg_known_hosts: Path | None,
                 accept_new: bool = False) -> None:
        self.known_hosts = list(known_hosts)
        self.modelreg_known_hosts = modelreg_known_hosts
        self.accept_new = accept_new

    def _files(self) -> list[Path]:
        return self.known_hosts + ([self.modelreg_known_hosts] if self.modelreg_known_hosts else [])

    def _entries(self, name: str) -> list[KnownHostEntry]:
        return [entry for path in self._files() for entry in read_known_hosts(path)
                if entry.matches(name)]

    def preferred_algorithms(self, name: str) -> list[str]:
        """Host key algorithms of the keys already known for `name`, so the server presents one of those."""
        algorithms: list[str] = []
        for entry in self._entries(name):
            if entry.marker:
                continue
            names = RSA_ALGORITHMS if entry.key_type == "ssh-rsa" else (entry.key_type,)
            algorithms += [n for n in names if n not in algorithms]
        return algorithms

    def verify(self, name: str, key: paramiko.PKey) -> None:
        """Return if `key` is trusted for `name`; record it if new and accepted; else raise UntrustedError."""
        blob = key.asbytes()
        entries = self._entries(name)
        for entry in entries:
            if entry.marker == "@revoked" and entry.blob == blob:
                raise UntrustedError(
                    f"The SSH host key of {name} ({key.get_name()} {fingerprint(blob)}) is marked "
                    f"@revoked in {entry.where}. Refusing to connect: ask the server's administrator "
                    f"for its current key.")
        recorded = [entry for entry in entries if not entry.marker]
        if any(entry.blob == blob for entry in recorded):
            return
        if recorded:
            raise self._changed_key_error(name, key, recorded)
        if not self.accept_new:
            target = self.modelreg_known_hosts or "the modelreg known_hosts file"
            raise UntrustedError(
                f"The SSH host {name} is not known: it presented a {key.get_name()} key with "
                f"fingerprint {fingerprint(blob)}, found in none of {self._describe_files()}. "
                f"Compare that fingerprint with the one the server's administrator reads with "
                f"'ssh-keygen -lf /etc/ssh/ssh_host_{_short_type(key)}_key.pub'; if they match, "
                f"rerun with --accept-new-host-key to trust it and record it in {target}.")
        self._record(name, key)

    def _changed_key_error(self, name: str, key: paramiko.PKey,
                           recorded: list[KnownHostEntry]) -> UntrustedError:
        old = "; ".join(f"{entry.key_type} {fingerprint(entry.blob)} in {entry.where}"
                        for entry in recorded)
        first = recorded[0]
        return UntrustedError(
            f"WARNING: the SSH host key of {name} has CHANGED. The server now presents "
            f"{key.get_name()} {fingerprint(key.asbytes())}, but the recorded key is {old}. "
            f"Someone may be intercepting the connection (man-in-the-middle), or the server was "
            f"reinstalled. Refusing to connect, even with --accept-new-host-key. If the "
            f"administrator confirms the new key, remove the old entry with "
            f"\"ssh-keygen -R '{name}' -f {first.path}\" and connect again with "
            f"--accept-new-host-key.")

    def _describe_files(self) -> str:
        return ", ".join(str(path) for path in self._files()) or "no known_hosts file"

    def _record(self, name: str, key: paramiko.PKey) -> None:
        """Append `name key` to the modelreg known_hosts file atomically (temp file + rename)."""
        path = self.modelreg_known_hosts
        if path is None:
            raise UsageError(
                f"Cannot accept the new SSH host key of {name}: no modelreg known_hosts file was "
                f"given to record it in. Pass the 'known_hosts' option with a file path.")
        try:
            self._append(path, name, key)
        except OSError as exc:
            raise LocalIOError(
                f"Cannot record the SSH host key of {name} in {path}: {exc.strerror or exc}"
                f"{f' ({exc.filename})' if exc.filename else ''}. Nothing was changed. Make that "
                f"directory writable (a symlink at {path}.lock is refused, never followed: remove "
                f"it) and rerun with --accept-new-host-key.") from exc

    @staticmethod
    def _append(path: Path, name: str, key: paramiko.PKey) -> None:
        """Add the line under a lock (`lockfile`), by writing a temp file and renaming it over."""
        line = f"{name} {key.get_name()} {key.get_base64()}\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        with _RECORD_LOCK, FileLock(f"{path}.lock"):
            if any(entry.blob == key.asbytes() and entry.matches(name) and not entry.marker
                   for entry in read_known_hosts(path)):
                return
            try:
                existing = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                existing = ""
            if existing and not existing.endswith("\n"):
                existing += "\n"
            temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                with open(temp, "w", encoding="utf-8") as handle:
                    handle.write(existing + line)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, path)
            finally:
                temp.unlink(missing_ok=True)


def _short_type(key: paramiko.PKey) -> str:
    """`ed25519`, `ecdsa` or `rsa`: the suffix of the matching sshd host key file."""
    name = key.get_name()
    return "ecdsa" if name.startswith("ecdsa") else name.removeprefix("ssh-")
