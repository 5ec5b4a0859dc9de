"""The storage contract: one suite, run against every backend on its real server.

Each test gets a fresh, empty registry root from the `remote` fixture (file://,
SeaweedFS S3, OpenSSH sshd; see tests/conftest.py), in the spirit of restic's
`internal/backend/test` suite. Backend-specific behaviour (S3 multipart and
credentials, SSH host keys and auth...) is tested beside each backend, not here.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelreg.config import RemoteSpec
from modelreg.errors import AlreadyExists, NotFound, RemoteError
from modelreg.storage import BACKENDS, Capabilities, Storage, open_storage
from modelreg.storage.base import Cancelled
from modelreg.storage.local import TEMP_PREFIX
from modelreg.storage.ssh import openssh

LARGE = 20 * 1024 * 1024 + 12345
"""Above S3's part size and SSH's multi-connection threshold, not a multiple of either."""

EXPECTED_CAPABILITIES = {
    "file": Capabilities(atomic_create_only=True, atomic_replace=True, server_side_checksums=False,
                         parallel_transfers=1),
    "s3": Capabilities(atomic_create_only=True, atomic_replace=True, server_side_checksums=True,
                       parallel_transfers=4),
    "ssh": Capabilities(atomic_create_only=True, atomic_replace=True, server_side_checksums=False,
                        parallel_transfers=4),
}


@pytest.fixture(params=["file", "s3", "ssh", "ssh-openssh"])
def remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RemoteSpec:
    """Every backend on its real server; "ssh-openssh" moves every non-empty file over an `ssh`
    process (`modelreg.storage.ssh.openssh`, normally only for files of 128 MiB or more)."""
    if request.param == "ssh-openssh":
        monkeypatch.setattr(openssh, "BULK_MIN_BYTES", 1)
        monkeypatch.setattr(openssh, "TAKE_OVER_FIRST", True)
        return request.getfixturevalue("ssh_remote")
    return request.getfixturevalue(f"{request.param}_remote")


@pytest.fixture
def storage(remote: RemoteSpec):
    with open_storage(remote) as opened:
        yield opened


@pytest.fixture(scope="module")
def large_payload() -> bytes:
    return os.urandom(LARGE)


def scheme(spec: RemoteSpec) -> str:
    return urlsplit(spec.url).scheme


def read_bytes(storage: Storage, key: str, offset: int = 0) -> bytes:
    sink = CollectingSink()
    storage.read(key, sink, offset=offset)
    return b"".join(sink.chunks)


class CollectingSink:
    """A sink that is not a file: only `write` exists, which is all a backend may use."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.calling_threads: set[int] = set()

    def write(self, data: bytes) -> None:
        self.calling_threads.add(threading.get_ident())
        self.chunks.append(bytes(data))


class SinkFailure(Exception):
    """What the consumer raises; it must reach the caller of `read` unchanged."""


class FailingSink:
    """Accepts `limit` bytes, then raises one `SinkFailure` on every later write."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received = 0
        self.raised: SinkFailure | None = None

    def write(self, data: bytes) -> None:
        if self.received + len(data) > self.limit:
            self.raised = self.raised or SinkFailure(f"stop after {self.received} bytes")
            raise self.raised
        self.received += len(data)


def leave_unfinished_write(request: pytest.FixtureRequest, spec: RemoteSpec, key: str) -> None:
    """Leave what an interrupted write of `key` leaves behind on this backend.

    file:// and ssh:// write a temp name beside the target (the sshd runs on this
    machine, so its registry directory is a local path); S3 leaves an incomplete
    multipart upload.
    """
    if scheme(spec) == "s3":
        seaweed = request.getfixturevalue("seaweed")
        bucket, prefix = urlsplit(spec.url).netloc, urlsplit(spec.url).path.strip("/")
        client = seaweed.client()
        try:
            upload = client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/{key}")
            client.upload_part(Bucket=bucket, Key=f"{prefix}/{key}", UploadId=upload["UploadId"],
                               PartNumber=1, Body=b"half of it")
        finally:
            client.close()
        return
    target = Path(urlsplit(spec.url).path).joinpath(*key.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{target.name}").write_bytes(b"half of it")


# -- the interface -------------------------------------------------------------------------

def test_open_storage_gives_the_schemes_backend_implementing_the_protocol(storage, remote):
    assert isinstance(storage, Storage)
    assert type(storage).__name__ == BACKENDS[scheme(remote)].target.split(":")[1]
    assert storage.url == remote.url


def test_capabilities_are_reported(storage, remote):
    assert storage.capabilities == EXPECTED_CAPABILITIES[scheme(remote)]
    assert storage.parallel_transfers == storage.capabilities.parallel_transfers >= 1


def test_context_manager_returns_the_storage_and_closing_twice_is_harmless(remote):
    opened = open_storage(remote)
    with opened as entered:
        assert entered is opened
        entered.write("k", b"x")
    opened.close()
    with open_storage(remote) as again:
        assert again.stat("k") == 1


# -- round trips ----------------------------------------------------------------------------

def test_bytes_and_small_file_round_trip_and_stat(storage, tmp_path):
    storage.write("models/emotion/v1/manifest.json", b'{"a": 1}')
    source = tmp_path / "labels.json"
    source.write_bytes(b"[1, 2, 3]")
    storage.write("blobs/small", source)
    assert storage.stat("models/emotion/v1/manifest.json") == 8
    assert read_bytes(storage, "models/emotion/v1/manifest.json") == b'{"a": 1}'
    assert storage.stat("blobs/small") == 9
    assert read_bytes(storage, "blobs/small") == b"[1, 2, 3]"


def test_large_file_round_trips_every_byte_with_upload_progress(storage, large_payload, tmp_path):
    source = tmp_path / "weights.h5"
    source.write_bytes(large_payload)
    sent = []
    storage.write("blobs/big", source, progress=sent.append)
    sink = CollectingSink()
    storage.read("blobs/big", sink)
    assert storage.stat("blobs/big") == LARGE
    assert b"".join(sink.chunks) == large_payload
    assert sum(sent) == LARGE
    assert sink.calling_threads == {threading.get_ident()}


def test_empty_object_round_trips(storage):
    storage.write("empty", b"")
    assert storage.stat("empty") == 0
    assert read_bytes(storage, "empty") == b""


@pytest.mark.parametrize("offset", [0, 1, 16 * 1024 * 1024 - 1, 16 * 1024 * 1024 + 7, LARGE - 1, LARGE])
def test_read_from_an_offset_returns_the_remaining_bytes(storage, large_payload, offset):
    storage.write("blobs/big", large_payload)
    assert read_bytes(storage, "blobs/big", offset=offset) == large_payload[offset:]


def test_read_from_beyond_the_end_is_a_remote_error(storage):
    storage.write("blobs/x", b"12345")
    with pytest.raises(RemoteError, match="only 5 bytes"):
        read_bytes(storage, "blobs/x", offset=9)


def test_writing_a_missing_local_file_is_not_found_and_stores_nothing(storage, tmp_path):
    with pytest.raises(NotFound, match="does-not-exist"):
        storage.write("blobs/x", tmp_path / "does-not-exist")
    assert storage.stat("blobs/x") is None
    assert storage.list("") == []


# -- create-only and overwrite --------------------------------------------------------------

def test_create_only_refuses_an_existing_key_and_keeps_the_first(storage):
    storage.write("tags/emotion/prod.json", b"first", create_only=True)
    with pytest.raises(AlreadyExists, match="tags/emotion/prod.json"):
        storage.write("tags/emotion/prod.json", b"second", create_only=True)
    assert read_bytes(storage, "tags/emotion/prod.json") == b"first"
    assert storage.list("tags/") == ["tags/emotion/prod.json"]


def test_overwrite_replaces_the_object(storage):
    storage.write("tags/emotion/latest.json", b"v1")
    storage.write("tags/emotion/latest.json", b"version 2")
    assert read_bytes(storage, "tags/emotion/latest.json") == b"version 2"
    assert storage.stat("tags/emotion/latest.json") == 9


def test_racing_create_only_writers_exactly_one_wins(storage):
    outcomes = []
    barrier = threading.Barrier(4)

    def publish(index: int) -> None:
        barrier.wait()
        try:
            storage.write("models/m/v1/manifest.json", f"writer {index}".encode(), create_only=True)
            outcomes.append(f"writer {index}")
        except AlreadyExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [outcome for outcome in outcomes if outcome != "refused"]
    assert storage.list("models/") == ["models/m/v1/manifest.json"]
    assert read_bytes(storage, "models/m/v1/manifest.json").decode() in winners
    if storage.capabilities.atomic_create_only:
        assert len(winners) == 1 and outcomes.count("refused") == 3
    else:  # the backend says racing writers are not decided exactly: at least one won
        assert len(outcomes) == 4 and winners


# -- list, delete, missing keys ---------------------------------------------------------------

def test_list_is_recursive_sorted_and_relative_to_the_root(storage):
    for key in ("models/emotion/v2/manifest.json", "models/emotion/v1/manifest.json",
                "models/emotional/v1/manifest.json", "tags/emotion/prod.json"):
        storage.write(key, b"{}")
    assert storage.list("models/emotion/") == ["models/emotion/v1/manifest.json",
                                               "models/emotion/v2/manifest.json"]
    assert storage.list("models/emotion") == storage.list("models/emotion/")
    assert storage.list("") == ["models/emotion/v1/manifest.json", "models/emotion/v2/manifest.json",
                                "models/emotional/v1/manifest.json", "tags/emotion/prod.json"]
    assert storage.list("nothing/here") == []


def test_list_skips_what_an_interrupted_write_left(storage, remote, request):
    storage.write("models/a/v1/manifest.json", b"{}")
    leave_unfinished_write(request, remote, "models/a/v2/manifest.json")
    assert storage.list("models/") == ["models/a/v1/manifest.json"]
    assert storage.stat("models/a/v2/manifest.json") is None


def test_delete_removes_a_key_and_ignores_a_missing_one(storage):
    storage.write("blobs/x", b"x")
    storage.delete("blobs/x")
    storage.delete("blobs/x")
    storage.delete("never/written")
    assert storage.stat("blobs/x") is None
    assert storage.list("blobs/") == []


def test_missing_key_stats_none_and_reads_not_found(storage):
    assert storage.stat("blobs/none") is None
    with pytest.raises(NotFound, match="blobs/none"):
        read_bytes(storage, "blobs/none")


# -- the consumer's error, threads -------------------------------------------------------------

@pytest.mark.parametrize("size", [1000, LARGE], ids=["small", "large"])
def test_sink_exception_propagates_unchanged_and_the_storage_stays_usable(storage, large_payload, size):
    payload = large_payload[:size]
    storage.write("blob", payload)
    sink = FailingSink(limit=size // 2)
    started = time.monotonic()
    with pytest.raises(SinkFailure) as caught:
        storage.read("blob", sink)
    assert caught.value is sink.raised
    assert time.monotonic() - started < 10  # not retried as if it were a network failure
    assert read_bytes(storage, "blob") == payload
    storage.write("after", b"still usable")
    assert storage.stat("after") == 12


def test_concurrent_writes_and_reads_from_threads(storage):
    payloads = {f"blobs/{i:02d}": os.urandom(300_000 + i) for i in range(12)}
    errors, results = [], {}

    def move(key: str) -> None:
        try:
            storage.write(key, payloads[key])
            results[key] = read_bytes(storage, key)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(key,)) for key in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == payloads
    assert storage.list("blobs") == sorted(payloads)


class CancellingSink:
    """Cancels the storage on its first write, as Ctrl-C would mid-download."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.received = 0

    def write(self, data: bytes) -> None:
        self.received += len(data)
        self.storage.cancel()


def test_cancel_stops_a_read_in_flight_keeping_what_the_sink_got(storage, large_payload):
    storage.write("big", large_payload)
    sink = CancellingSink(storage)

    with pytest.raises(Cancelled):
        storage.read("big", sink)

    assert 0 < sink.received < len(large_payload)


def test_cancel_stops_an_upload_in_flight_and_leaves_nothing(storage, large_payload, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(large_payload)

    with pytest.raises(Cancelled):
        storage.write("blobs/big", source, progress=lambda _count: storage.cancel())

    assert storage.stat("blobs/big") is None
    storage.cancelled.clear()  # only to look: a cancelled storage is not meant to be used again
    assert storage.remove_stale_uploads("blobs/big", older_than=0) == 0
