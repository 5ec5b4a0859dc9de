"""Opening authenticated SSH connections for the `ssh://` backend.

Turns `ssh://[user@]host[:port]/path` plus `~/.ssh/config` (Host aliases, HostName,
User, Port, IdentityFile, IdentitiesOnly, UserKnownHostsFile, HostKeyAlias,
ConnectTimeout) into an `SSHTarget`, and opens a paramiko `Transport` tuned for bulk
transfer: AES-GCM first (no separate MAC pass), a large receive window. The host
key is checked (`ssh_hostkeys`) before any credential is offered. Keys are tried in
this order: the `identity_file` option, ssh-agent (unless IdentitiesOnly), the
IdentityFile entries (or the default `~/.ssh/id_*` files). Every failure is raised
as a `modelreg.errors` class whose message names the host and says what to do.
"""

from __future__ import annotations

import getpass
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paramiko

from modelreg.config import RemoteSpec
from modelreg.errors import RemoteError, UsageError
from modelreg.storage.base import DEFAULT_STALL_TIMEOUT, stall_advice, stall_timeout_of
from modelreg.storage.ssh.hostkeys import HostKeyVerifier, fingerprint, known_hosts_name

logging.getLogger("paramiko").addHandler(logging.NullHandler())
"""paramiko logs a failed handshake with its traceback from its own thread; without a handler
of ours, Python's last-resort handler would print it although the failure is reported as a
RemoteError."""

DEFAULT_CONNECT_TIMEOUT = 10.0
WINDOW_SIZE = 16 * 1024 * 1024
MAX_PACKET_SIZE = 256 * 1024
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr")
DEFAULT_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")
SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")

Passphrase = str | Callable[[Path], "str | None"]


@dataclass(frozen=True)
class SSHTarget:
    """Where to connect and as whom, after `~/.ssh/config` was applied."""

    alias: str
    hostname: str
    port: int
    user: str
    root: str
    identity_files: tuple[Path, ...] = ()
    identities_only: bool = False
    known_hosts: tuple[Path, ...] = ()
    host_key_alias: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @property
    def display(self) -> str:
        """`user@host:port` for messages."""
        return f"{self.user}@{self.hostname}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        return known_hosts_name(self.host_key_alias or self.hostname, self.port)


@dataclass(frozen=True)
class ConnectOptions:
    """The backend options of a `RemoteSpec` that concern connecting."""

    identity_file: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    connect_timeout: float | None = None
    passphrase: Passphrase | None = None
    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    """Seconds without a byte from the server (handshake or SFTP reply) before giving up."""

    @classmethod
    def from_spec(cls, spec: RemoteSpec) -> ConnectOptions:
        options = spec.options
        timeout = options.get("connect_timeout")
        try:
            timeout = float(timeout) if timeout is not None else None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"Invalid connect_timeout {timeout!r} for {spec.label}: "
                             f"give a number of seconds.") from exc
        identity = options.get("identity_file")
        known_hosts = options.get("known_hosts")
        return cls(
            identity_file=Path(identity).expanduser() if identity else None,
            known_hosts=Path(known_hosts).expanduser() if known_hosts else None,
            accept_new_host_key=bool(options.get("accept_new_host_key", False)),
            connect_timeout=timeout,
            passphrase=options.get("passphrase"),
            stall_timeout=stall_timeout_of(options, spec.label),
        )


def parse_ssh_url(url: str) -> tuple[str | None, str, int | None, str]:
    """Split `ssh://[user@]host[:port]/path` into (user, host, port, root path).

    The path is absolute on the server; `/~/x` (or `/~`) is relative to the login directory.
    """
    example = "ssh://user@host:22/srv/models (or ssh://host/~/models)"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"Invalid port in {url!r}: use {example}.") from exc
    if parts.scheme != "ssh" or not parts.hostname or not parts.path:
        raise UsageError(f"Invalid SSH registry URL {url!r}: use {example}.")
    if parts.password is not None:
        raise UsageError(f"The SSH URL {url!r} contains a password: remove it and log in with a key "
                         f"(identity_file option, ~/.ssh/config or ssh-agent).")
    path = unquote(parts.path)
    if path == "/~" or path.startswith("/~/"):
        path = path[3:]
    return (unquote(parts.username) if parts.username else None), parts.hostname, port, path


def resolve_target(spec: RemoteSpec, options: ConnectOptions) -> SSHTarget:
    """Apply `~/.ssh/config` to the URL (the URL's user and port win over the config's)."""
    user, alias, port, root = parse_ssh_url(spec.url)
    config_path = Path("~/.ssh/config").expanduser()
    try:
        if config_path.exists():
            _allow_match_exec(config_path)
        config = paramiko.SSHConfig.from_path(str(config_path)).lookup(alias) if config_path.exists() else {}
    except (OSError, paramiko.ConfigParseError, ValueError) as exc:
        raise UsageError(f"Cannot read {config_path} for {spec.label}: {exc}. Fix the file.") from exc
    for key, option in (("proxyjump", "ProxyJump"), ("proxycommand", "ProxyCommand")):
        if config.get(key, "none").lower() != "none":
            jump = config.get("proxyjump", "JUMPHOST")
            raise UsageError(
                f"{config_path} sets {option} for {alias}, which modelreg's SSH backend does "
                f"not support. Open a tunnel instead (ssh -N -L 2222:"
                f"{config.get('hostname', alias)}:{config.get('port', 22)} {jump}) and use "
                f"ssh://user@localhost:2222/path.")
    if config_path.exists() and "identityfile" in config:
        identity_files = tuple(Path(p).expanduser() for p in config["identityfile"])
    else:
        identity_files = tuple(Path("~/.ssh").expanduser() / name for name in DEFAULT_KEY_FILES)
    known_hosts = tuple(Path(p).expanduser()
                        for p in config.get("userknownhostsfile", "~/.ssh/known_hosts").split())
    try:
        port = port or int(config.get("port", 22))
        timeout = options.connect_timeout or float(config.get("connecttimeout", DEFAULT_CONNECT_TIMEOUT))
    except ValueError as exc:
        raise UsageError(f"Invalid Port or ConnectTimeout for {alias} in {config_path}: {exc}.") from exc
    return SSHTarget(
        alias=alias,
        hostname=config.get("hostname", alias),
        port=port,
        user=user or config.get("user") or getpass.getuser(),
        root=root,
        identity_files=identity_files,
        identities_only=config.get("identitiesonly", "no").lower() == "yes",
        known_hosts=(*known_hosts, SYSTEM_KNOWN_HOSTS),
        host_key_alias=config.get("hostkeyalias"),
        connect_timeout=timeout,
    )


def _allow_match_exec(config_path: Path) -> None:
    """Give paramiko `invoke` (not imported at start-up, see `modelreg.storage.ssh`) when the
    config has a `Match ... exec` line, the only thing paramiko needs it for."""
    import re

    import paramiko.config

    if paramiko.config.invoke is None and re.search(r"(?im)^\s*match\b.*\bexec\b",
                                                    config_path.read_text(errors="replace")):
        import invoke

        paramiko.config.invoke = invoke


class KeyFiles:
    """Private key files loaded once per storage, so an encrypted key's passphrase is asked for
    (or tried) once, not once per pooled connection."""

    def __init__(self, passphrase: Passphrase | None) -> None:
        self._passphrase = passphrase
        self._lock = threading.Lock()
        self._loaded: dict[Path, tuple[paramiko.PKey | None, str | None]] = {}
        self.accepted: tuple[str, Path | None] | None = None
        """How the last login succeeded: ("file", path of an unencrypted key), ("encrypted", path)
        or ("agent", None)."""
        self._encrypted: set[Path] = set()

    def load(self, path: Path) -> tuple[paramiko.PKey | None, str | None]:
        """(key, None), or (None, why the file cannot be used)."""
        with self._lock:
            if path not in self._loaded:
                key, problem, encrypted = _load_key(path, self._passphrase)
                self._loaded[path] = key, problem
                if encrypted:
                    self._encrypted.add(path)
            return self._loaded[path]

    def record_login(self, label: str) -> None:
        """Remember the key `_candidate_keys` labelled `label` as the one the server accepted."""
        path = Path(label)
        if path in self._loaded:
            self.accepted = ("encrypted" if path in self._encrypted else "file", path)
        else:
            self.accepted = ("agent", None)


def open_transport(target: SSHTarget, options: ConnectOptions, verifier: HostKeyVerifier,
                   keys: KeyFiles) -> paramiko.Transport:
    """An authenticated Transport to `target`, its host key verified; raises RemoteError/UntrustedError."""
    sock = _ClientSocket(_open_socket(target, target.connect_timeout))
    timeout = min(target.connect_timeout, options.stall_timeout)
    transport = paramiko.Transport(sock, default_window_size=WINDOW_SIZE,
                                   default_max_packet_size=MAX_PACKET_SIZE)
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
    security = transport.get_security_options()
    security.ciphers = _prefer(security.ciphers, FAST_CIPHERS)
    known_algorithms = verifier.preferred_algorithms(target.known_hosts_name)
    if known_algorithms:
        security.key_types = _prefer(security.key_types, known_algorithms)
    try:
        try:
            transport.start_client(timeout=timeout)
            server_key = transport.get_remote_server_key()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise _handshake_error(target, sock.received, timeout, options, exc) from exc
        finally:
            sock.stop_recording()
        verifier.verify(target.known_hosts_name, server_key)
        _authenticate(transport, target, options, keys)
    except BaseException:
        transport.close()
        raise
    return transport


class _ClientSocket:
    """The connection's socket as paramiko sees it.

    - During the handshake it keeps the first bytes the server sent, so a failure can
      say what answered (a web server's `HTTP/1.1 400`, say) instead of paramiko's
      "Error reading SSH protocol banner" (`stop_recording` ends that).
    - Every receive re-arms TCP_QUICKACK (Linux): sshd leaves Nagle on for SFTP
      sessions, so when it sends two small packets in a row (its hostkeys-00 notice
      after login, then the reply to our channel open) the second waits for our ACK of
      the first, which the kernel delays by up to 40 ms because we have nothing to send
      while we wait for that reply. Measured on loopback: opening the SFTP channel took
      42-46 ms, with immediate ACKs 1-2 ms; `modelreg pull` of the 4 MB bundle ~40 ms
      faster. The flag does not stick (the kernel leaves quick-ACK mode on its own),
      hence after each receive.
    """

    LIMIT = 200

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.received = b""
        self._recording = True
        self._quickack = getattr(socket, "TCP_QUICKACK", None)

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if self._recording and len(self.received) < self.LIMIT:
            self.received += data[:self.LIMIT - len(self.received)]
        if self._quickack is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            except OSError:
                self._quickack = None
        return data

    def stop_recording(self) -> None:
        self._recording = False

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _handshake_error(target: SSHTarget, received: bytes, timeout: float, options: ConnectOptions,
                     exc: BaseException) -> RemoteError:
    """Why the SSH handshake failed: not an SSH server, a stall, or the connection breaking."""
    address = f"{target.hostname}:{target.port}"
    if received and not received.startswith(b"SSH-"):
        text = received.splitlines()[0].decode("utf-8", "replace")[:80]
        first_line = "".join(char if char.isprintable() else "?" for char in text)
        return RemoteError(f"{address} did not answer as an SSH server (got '{first_line}'); check the "
                           f"host and port of the registry URL ({target.display}).")
    if not received:
        limit = (stall_advice(timeout) if timeout == options.stall_timeout else
                 f"no byte arrived for {timeout:g} s (connect_timeout)")
        return RemoteError(f"The SSH server {target.display} accepted the connection but never "
                           f"answered the SSH handshake ({exc or type(exc).__name__}): {limit}.")
    return RemoteError(
        f"The SSH handshake with {target.display} failed or did not finish within "
        f"{timeout:g} s ({exc or type(exc).__name__}). Check that an SSH server listens "
        f"on that port and that nothing in between interrupts the connection.")


def _open_socket(target: SSHTarget, timeout: float) -> socket.socket:
    address = f"{target.hostname}:{target.port}"
    try:
        sock = socket.create_connection((target.hostname, target.port), timeout=timeout)
    except socket.gaierror as exc:
        raise RemoteError(f"Cannot resolve the SSH host name {target.hostname!r} ({exc.strerror}). "
                          f"Check the registry URL or the HostName in ~/.ssh/config.") from exc
    except ConnectionRefusedError as exc:
        raise RemoteError(f"Cannot connect to {address}: connection refused. No SSH server "
                          f"listens there: check the host and port in the registry URL "
                          f"(ssh://user@host:port/path) and that sshd is running.") from exc
    except TimeoutError as exc:
        raise RemoteError(f"Cannot connect to {address}: no answer within {timeout:g} s. Check "
                          f"the host name, the network and firewalls, or raise the "
                          f"connect_timeout option.") from exc
    except OSError as exc:
        raise RemoteError(f"Cannot connect to {address}: {exc.strerror or exc}. Check the host "
                          f"and port in the registry URL and the network.") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _authenticate(transport: paramiko.Transport, target: SSHTarget, options: ConnectOptions,
                  keys: KeyFiles) -> None:
    """Offer each candidate key until the server accepts one; else raise RemoteError naming them."""
    tried: list[str] = []
    notes: list[str] = []
    agent = None if target.identities_only else _open_agent(notes)
    try:
        for label, key in _candidate_keys(target, options, agent, keys, notes):
            tried.append(f"{label} ({key.get_name()} {fingerprint(key.asbytes())})")
            try:
                transport.auth_publickey(target.user, key)
            except paramiko.BadAuthenticationType as exc:
                notes.append(f"the server only allows {', '.join(exc.allowed_types)} logins, "
                             f"and modelreg logs in with keys only")
                break
            except paramiko.AuthenticationException:
                continue
            except (paramiko.SSHException, EOFError, OSError) as exc:
                notes.append(f"the server closed the connection ({exc})")
                break
            if transport.is_authenticated():
                keys.record_login(label)
                return
    finally:
        if agent is not None:
            agent.close()
    offered = "; ".join(tried) or "none (no usable key file, no key in ssh-agent)"
    detail = (" " + "; ".join(notes) + ".") if notes else ""
    raise RemoteError(
        f"SSH login to {target.display} was refused. Keys offered: {offered}.{detail} Add the "
        f"public key to ~{target.user}/.ssh/authorized_keys on the server, or name the right "
        f"private key with the identity_file option, IdentityFile in ~/.ssh/config or ssh-add.")


def _open_agent(notes: list[str]) -> paramiko.Agent | None:
    """The ssh-agent named by $SSH_AUTH_SOCK (no keys if none runs), or None if it cannot be used."""
    try:
        return paramiko.Agent()
    except (paramiko.SSHException, OSError) as exc:
        notes.append(f"ssh-agent could not be used ({exc})")
        return None


def _candidate_keys(target: SSHTarget, options: ConnectOptions, agent: paramiko.Agent | None,
                    keys: KeyFiles, notes: list[str]):
    """Yield (label, key): the identity_file option, agent keys, then IdentityFile/default key files."""
    if options.identity_file is not None:
        if not options.identity_file.exists():
            raise UsageError(f"The SSH identity file {options.identity_file} does not exist: fix "
                             f"the identity_file option of the remote.")
        yield from _key_from_file(options.identity_file, keys, notes)
    if agent is not None:
        for key in agent.get_keys():
            yield "ssh-agent key", key
    for path in target.identity_files:
        if path.exists() and path != options.identity_file:
            yield from _key_from_file(path, keys, notes)


def _key_from_file(path: Path, keys: KeyFiles, notes: list[str]):
    key, problem = keys.load(path)
    if key is not None:
        yield str(path), key
    elif problem:
        notes.append(problem)


def _load_key(path: Path, passphrase: Passphrase | None) -> tuple[paramiko.PKey | None, str | None, bool]:
    """(the private key in `path`, decrypted with the passphrase option if needed, or None; why it is
    unusable, or None; whether the file is encrypted)."""
    try:
        return paramiko.PKey.from_path(path), None, False
    except TypeError:
        pass
    except (ValueError, OSError, paramiko.SSHException, paramiko.UnknownKeyType) as exc:
        return None, f"{path} is not a usable private key ({exc})", False
    secret = passphrase(path) if callable(passphrase) else passphrase
    if not secret:
        return None, (f"{path} is encrypted and no passphrase was given (set "
                      f"MODELREG_SSH_PASSPHRASE or load it into ssh-agent with 'ssh-add {path}')"), True
    try:
        return paramiko.PKey.from_path(path, secret.encode() if isinstance(secret, str) else secret), None, True
    except (TypeError, ValueError, paramiko.SSHException):
        return None, f"the passphrase given for {path} is wrong", True


def _prefer(available: tuple[str, ...], first: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`available` reordered so the names in `first` that it contains come first."""
    leading = [name for name in first if name in available]
    return tuple(leading + [name for name in available if name not in leading])
