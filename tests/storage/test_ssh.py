"""What only the ssh:// backend does, against a real OpenSSH sshd (tests/servers/ssh.py).

The behaviour every backend shares (round trips, offsets, create-only, list, delete,
missing keys, the sink's errors, threads) is in tests/storage/test_contract.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelreg.config import RemoteSpec
from modelreg.errors import AlreadyExists, LocalIOError, RemoteError, UntrustedError, UsageError
from modelreg.hashing import HashingSink
from modelreg.layout import blob_key
from modelreg.storage.ssh import backend as ssh
from modelreg.storage.ssh import pipeline as ssh_pipeline
from modelreg.storage.ssh.backend import SSHStorage
from modelreg.storage.ssh.connect import parse_ssh_url
from tests.servers.ssh import SshdServer, free_port, generate_key

pytestmark = pytest.mark.ssh


@pytest.fixture
def storage(ssh_remote: RemoteSpec):
    with SSHStorage(ssh_remote) as opened:
        yield opened


def remote_root(spec: RemoteSpec) -> Path:
    """The registry directory on the (local) server's filesystem."""
    return Path(urlsplit(spec.url).path)


def read_bytes(storage: SSHStorage, key: str, offset: int = 0) -> bytes:
    sink = io.BytesIO()
    storage.read(key, sink, offset=offset)
    return sink.getvalue()


def with_options(spec: RemoteSpec, **options) -> RemoteSpec:
    return replace(spec, options={**spec.options, **options})


def openssh_fingerprint(public_key: Path) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(public_key)], check=True, capture_output=True,
                          text=True).stdout.split()[1]




@pytest.fixture(params=["one connection", "two connections"])
def streams(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Large-file transfers over one connection, or spread over two (even for a small file)."""
    if request.param == "two connections":
        monkeypatch.setattr(ssh_pipeline, "NEW_CONNECTION_MIN_BYTES", 0)
        return 2
    monkeypatch.setattr(ssh, "STREAMS_PER_FILE", 1)
    return 1


def test_large_file_round_trip_keeps_every_byte(storage: SSHStorage, streams: int, tmp_path: Path):
    payload = tmp_path / "weights.h5"
    payload.write_bytes(os.urandom(20 * 1024 * 1024 + 12345))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    uploaded = []

    storage.write(blob_key(digest), payload, create_only=True, sha256=digest, progress=uploaded.append)
    with open(tmp_path / "copy", "wb") as out:
        sink = HashingSink(out)
        storage.read(blob_key(digest), sink)

    assert sink.hexdigest() == digest
    assert sum(uploaded) == sink.size == payload.stat().st_size
    assert storage._pool._count == streams



def test_refused_create_only_write_leaves_no_temp_file(storage: SSHStorage, ssh_remote):
    storage.write("tags/emotion/prod.json", b"first", create_only=True)

    with pytest.raises(AlreadyExists, match="tags/emotion/prod.json"):
        storage.write("tags/emotion/prod.json", b"second", create_only=True)

    assert read_bytes(storage, "tags/emotion/prod.json") == b"first"
    assert os.listdir(remote_root(ssh_remote) / "tags" / "emotion") == ["prod.json"]






@pytest.mark.parametrize("size", [1000, 12 * 1024 * 1024])
def test_sink_exception_propagates_over_one_or_two_connections(storage: SSHStorage, streams, size: int):
    storage.write("blob", os.urandom(size))

    with pytest.raises(OverflowError):
        storage.read("blob", HashingSink(io.BytesIO(), limit=size // 2))

    assert len(read_bytes(storage, "blob")) == size



def test_file_copied_in_by_scp_is_readable_with_its_sha256(sshd_server: SshdServer, ssh_remote, tmp_path):
    payload = tmp_path / "model.h5"
    payload.write_bytes(os.urandom(3 * 1024 * 1024))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    target = remote_root(ssh_remote) / blob_key(digest)
    target.parent.mkdir(parents=True)
    subprocess.run(sshd_server.scp_command(Path(ssh_remote.options["known_hosts"]), str(payload),
                                           f"{sshd_server.user}@127.0.0.1:{target}"), check=True)

    with SSHStorage(ssh_remote) as storage, open(tmp_path / "copy", "wb") as out:
        sink = HashingSink(out)
        storage.read(blob_key(digest), sink)

    assert sink.hexdigest() == digest


def test_unknown_host_is_refused_with_its_fingerprint_and_the_fix(sshd_server, ssh_remote, tmp_path):
    spec = with_options(ssh_remote, known_hosts=str(tmp_path / "empty_known_hosts"))

    with pytest.raises(UntrustedError) as caught, SSHStorage(spec) as storage:
        storage.stat("x")

    message = str(caught.value)
    assert f"[127.0.0.1]:{sshd_server.port}" in message
    assert openssh_fingerprint(sshd_server.host_key.with_suffix(".pub")) in message
    assert "ssh-ed25519" in message and "--accept-new-host-key" in message


def test_hashed_known_hosts_entry_is_trusted(ssh_remote, tmp_path):
    known_hosts = Path(ssh_remote.options["known_hosts"])
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert known_hosts.read_text().startswith("|1|")

    with SSHStorage(ssh_remote) as storage:
        assert storage.stat("x") is None


def test_accepted_new_host_key_is_recorded_and_trusted_afterwards(sshd_server, ssh_remote, tmp_path):
    known_hosts = tmp_path / "config" / "known_hosts"
    with SSHStorage(with_options(ssh_remote, known_hosts=str(known_hosts),
                                 accept_new_host_key=True)) as storage:
        storage.write("blob", b"x")

    assert known_hosts.read_text() == sshd_server.known_hosts_line
    with SSHStorage(with_options(ssh_remote, known_hosts=str(known_hosts))) as storage:
        assert storage.stat("blob") == 1


def test_a_symlink_at_the_known_hosts_lock_is_refused_with_a_clear_error_and_nothing_changes(
        ssh_remote, tmp_path):
    known_hosts = tmp_path / "config" / "known_hosts"
    known_hosts.parent.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "config" / "known_hosts.lock").symlink_to(victim)
    spec = with_options(ssh_remote, known_hosts=str(known_hosts), accept_new_host_key=True)
    refused = r"Cannot record the SSH host key .*known_hosts.lock is refused"
    with pytest.raises(LocalIOError, match=refused), SSHStorage(spec) as storage:
        storage.stat("x")
    assert not known_hosts.exists() and victim.read_text() == "keep"
    assert [p.name for p in known_hosts.parent.iterdir()] == ["known_hosts.lock"]


def test_accepting_a_new_host_key_needs_a_modelreg_known_hosts_file(ssh_remote):
    options = {k: v for k, v in ssh_remote.options.items() if k != "known_hosts"}
    spec = replace(ssh_remote, options={**options, "accept_new_host_key": True})

    with pytest.raises(UsageError, match="known_hosts"), SSHStorage(spec) as storage:
        storage.stat("x")


def test_changed_host_key_is_refused_even_with_accept_new(sshd_server, ssh_remote, tmp_path):
    impostor = generate_key(tmp_path / "other_host_key")
    key_type, blob = impostor.with_suffix(".pub").read_text().split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"# modelreg\n[127.0.0.1]:{sshd_server.port} {key_type} {blob}\n")
    spec = with_options(ssh_remote, known_hosts=str(known_hosts), accept_new_host_key=True)

    with pytest.raises(UntrustedError) as caught, SSHStorage(spec) as storage:
        storage.stat("x")

    message = str(caught.value)
    assert "CHANGED" in message and f"{known_hosts} line 2" in message
    assert openssh_fingerprint(impostor.with_suffix(".pub")) in message
    assert openssh_fingerprint(sshd_server.host_key.with_suffix(".pub")) in message
    assert known_hosts.read_text().count("\n") == 2


def test_wrong_client_key_is_refused_naming_the_key(ssh_remote, tmp_path):
    stranger = generate_key(tmp_path / "id_stranger")

    with pytest.raises(RemoteError, match="refused") as caught, \
            SSHStorage(with_options(ssh_remote, identity_file=str(stranger))) as storage:
        storage.stat("x")

    assert str(stranger) in str(caught.value)


def test_encrypted_key_needs_the_passphrase_option(sshd_server, ssh_remote, tmp_path):
    key = generate_key(tmp_path / "id_locked", passphrase="open sesame")
    with open(sshd_server.workdir / "authorized_keys", "a") as authorized:
        authorized.write(key.with_suffix(".pub").read_text())
    spec = with_options(ssh_remote, identity_file=str(key))

    with pytest.raises(RemoteError, match="MODELREG_SSH_PASSPHRASE"), SSHStorage(spec) as storage:
        storage.stat("x")
    with SSHStorage(with_options(spec, passphrase="open sesame")) as storage:
        assert storage.stat("x") is None


def test_passphrase_callback_is_asked_once_for_all_connections(sshd_server, ssh_remote, tmp_path):
    key = generate_key(tmp_path / "id_locked", passphrase="open sesame")
    with open(sshd_server.workdir / "authorized_keys", "a") as authorized:
        authorized.write(key.with_suffix(".pub").read_text())
    asked = []

    def ask(path: Path) -> str:
        asked.append(path)
        return "open sesame"

    with SSHStorage(with_options(ssh_remote, identity_file=str(key), passphrase=ask)) as storage:
        connections = [storage._pool.acquire() for _ in range(3)]
        for connection in connections:
            storage._pool.release(connection)

    assert asked == [key]


def test_ssh_agent_key_is_used_when_no_key_file_is_named(sshd_server, ssh_remote, tmp_path,
                                                          monkeypatch: pytest.MonkeyPatch):
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            time.sleep(0.02)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        subprocess.run(["ssh-add", "-q", str(sshd_server.client_key)], check=True, capture_output=True)
        options = {k: v for k, v in ssh_remote.options.items() if k != "identity_file"}

        with SSHStorage(replace(ssh_remote, options=options)) as storage:
            storage.write("blob", b"signed by the agent")

        assert (remote_root(ssh_remote) / "blob").exists()
    finally:
        agent.terminate()
        agent.wait(timeout=5)


def test_ssh_config_alias_supplies_host_port_user_and_key(sshd_server, ssh_remote, ssh_home):
    (ssh_home / ".ssh").mkdir()
    (ssh_home / ".ssh" / "config").write_text(
        f"Host registry-box\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n"
        f"  User {sshd_server.user}\n  IdentityFile {sshd_server.client_key}\n")
    spec = RemoteSpec(url=f"ssh://registry-box{remote_root(ssh_remote)}",
                      options={"known_hosts": ssh_remote.options["known_hosts"]})

    with SSHStorage(spec) as storage:
        storage.write("blob", b"via alias")

    assert (remote_root(ssh_remote) / "blob").read_bytes() == b"via alias"


def test_proxy_jump_is_refused_as_unsupported(ssh_home):
    (ssh_home / ".ssh").mkdir()
    (ssh_home / ".ssh" / "config").write_text("Host inner\n  ProxyJump bastion\n")

    with pytest.raises(UsageError, match="ProxyJump"):
        SSHStorage(RemoteSpec(url="ssh://inner/srv/models"))


def test_closed_port_fails_fast(ssh_remote):
    spec = RemoteSpec(url=f"ssh://root@127.0.0.1:{free_port()}/srv", options=ssh_remote.options)
    started = time.monotonic()

    with pytest.raises(RemoteError, match="connection refused"), SSHStorage(spec) as storage:
        storage.stat("x")

    assert time.monotonic() - started < 2


def test_silent_server_times_out_after_connect_timeout(ssh_remote):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"ssh://root@127.0.0.1:{silent.getsockname()[1]}/srv"
        spec = RemoteSpec(url=url, options={**ssh_remote.options, "connect_timeout": 1})
        started = time.monotonic()

        with pytest.raises(RemoteError, match="handshake"), SSHStorage(spec) as storage:
            storage.stat("x")

    assert time.monotonic() - started < 5


def test_permission_denied_on_a_read_only_directory(sshd_server: SshdServer, ssh_remote: RemoteSpec):
    user = sshd_server.unprivileged_user
    if user is None:
        pytest.skip("no unprivileged account ('nobody') to log in as")
    read_only = sshd_server.workdir / f"read-only-{uuid.uuid4().hex[:8]}"
    read_only.mkdir(mode=0o555)
    spec = replace(ssh_remote, url=sshd_server.url(f"{read_only}/registry", user=user))
    try:
        with pytest.raises(RemoteError, match="Permission denied") as caught, \
                SSHStorage(spec) as storage:
            storage.write("blob", b"x")
        assert user in str(caught.value) and str(read_only) in str(caught.value)
    finally:
        shutil.rmtree(read_only)


def test_full_remote_disk_is_reported_and_the_partial_upload_removed(ssh_remote: RemoteSpec):
    root = remote_root(ssh_remote)
    root.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "modelreg-test", str(root)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with pytest.raises(RemoteError, match="full") as caught, SSHStorage(ssh_remote) as storage:
            storage.write("blobs/big", os.urandom(3 * 1024 * 1024))
        assert "removed" in str(caught.value)
        assert list(root.rglob("*")) == [root / "blobs"]
    finally:
        subprocess.run(["umount", str(root)], check=True)


@pytest.mark.parametrize("url", ["ssh://host", "ssh://host:notaport/x", "ssh://u:secret@host/x"])
def test_malformed_urls_are_rejected(url: str):
    with pytest.raises(UsageError):
        parse_ssh_url(url)


def test_tilde_path_is_relative_to_the_login_directory():
    assert parse_ssh_url("ssh://alice@box:2222/~/models") == ("alice", "box", 2222, "models")
    assert parse_ssh_url("ssh://box/~") == (None, "box", None, "")
    assert parse_ssh_url("ssh://box/srv/models") == (None, "box", None, "/srv/models")


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
def test_the_client_socket_acks_at_once_after_every_receive_and_records_only_the_handshake():
    """sshd's second small reply waits for our ACK of its first; a delayed ACK cost 40 ms per channel."""
    from modelreg.storage.ssh.connect import _ClientSocket

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        wrapped = _ClientSocket(client)
        for round_ in range(3):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
            server.sendall(b"SSH-2.0-x\r\n" if round_ == 0 else b"more")
            data = wrapped.recv(100)
            assert data
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1
            if round_ == 0:
                wrapped.stop_recording()
        assert wrapped.received == b"SSH-2.0-x\r\n"
        assert wrapped.getsockname() == client.getsockname()  # everything else is the socket's own
    finally:
        for sock in (client, server, listener):
            sock.close()
