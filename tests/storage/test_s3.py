"""What only the S3 backend does, against a real SeaweedFS server (tests/servers/s3.py).

The behaviour every backend shares (round trips, offsets, create-only, list, delete,
missing keys, the sink's errors, threads) is in tests/storage/test_contract.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ResponseStreamingError

from modelreg.config import RemoteSpec
from modelreg.errors import AlreadyExists, ConfigError, IntegrityError, RemoteError, UsageError
from modelreg.hashing import HashingSink
from modelreg.storage.s3.backend import MULTIPART_THRESHOLD, PART_SIZE, UPLOAD_PART_SIZE, S3Storage, parse_s3_url
from tests.servers.s3 import S3Server, use_s3_keys

MULTIPART_SIZE = 20 * 1024 * 1024 + 12345


@pytest.fixture
def make_storage():
    """Open `S3Storage`s that are closed after the test."""
    opened: list[S3Storage] = []

    def make(spec: RemoteSpec) -> S3Storage:
        opened.append(S3Storage(spec))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def storage(make_storage, s3_remote: RemoteSpec) -> S3Storage:
    return make_storage(s3_remote)


@pytest.fixture(scope="module")
def big_payload() -> bytes:
    """Larger than one part, not a multiple of the part size."""
    assert MULTIPART_SIZE > MULTIPART_THRESHOLD and MULTIPART_SIZE > PART_SIZE
    return os.urandom(MULTIPART_SIZE)


def read_all(store: S3Storage, key: str, offset: int = 0) -> bytes:
    out = io.BytesIO()
    store.read(key, out, offset=offset)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Recorder:
    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def __call__(self, count: int) -> None:
        with self._lock:
            self.total += count


# -- no server needed -------------------------------------------------------------

def test_s3_url_splits_into_bucket_and_prefix():
    assert parse_s3_url("s3://models/speech/team/") == ("models", "speech/team")
    assert parse_s3_url("s3://models") == ("models", "")


@pytest.mark.parametrize("url", ["s3:///prefix", "http://bucket/x", "s3://bucket/x?versionId=1"])
def test_malformed_s3_url_is_a_usage_error(url):
    with pytest.raises(UsageError, match="s3://bucket"):
        S3Storage(RemoteSpec(url=url))


def test_unknown_addressing_style_is_a_usage_error():
    with pytest.raises(UsageError, match="path, virtual, auto"):
        S3Storage(RemoteSpec(url="s3://bucket", options={"addressing_style": "sideways"}))


def test_atomic_create_only_is_reported_unless_the_remote_declares_a_server_that_ignores_it():
    def capabilities(**options):
        store = S3Storage(RemoteSpec(url="s3://bucket", options=options))
        try:
            return store.capabilities
        finally:
            store.close()

    assert capabilities().atomic_create_only is True
    assert capabilities(atomic_create_only=False).atomic_create_only is False
    assert capabilities(atomic_create_only="no").atomic_create_only is False
    assert capabilities(atomic_create_only="true").atomic_create_only is True
    with pytest.raises(UsageError, match="atomic_create_only 'sometimes'.*true or false"):
        S3Storage(RemoteSpec(url="s3://bucket", options={"atomic_create_only": "sometimes"}))


def test_unknown_aws_profile_is_a_config_error(monkeypatch):
    use_s3_keys(monkeypatch, None)
    with pytest.raises(ConfigError, match="AWS profile 'missing-profile'"):
        S3Storage(RemoteSpec(url="s3://bucket", options={"profile": "missing-profile"}))


# -- round trips ----------------------------------------------------------------------



@pytest.mark.s3
@pytest.mark.parametrize("size", [100, MULTIPART_SIZE], ids=["single-put", "multipart"])
def test_write_with_its_sha256_is_accepted_and_large_files_go_up_in_parts(
        storage, seaweed, s3_remote, big_payload, tmp_path, size):
    payload = big_payload[:size]
    source = tmp_path / "weights.h5"
    source.write_bytes(payload)
    sent = Recorder()
    storage.write("blobs/big", source, sha256=sha256(payload), progress=sent)
    with open(tmp_path / "copy", "wb") as target:
        sink = HashingSink(target, limit=size)
        storage.read("blobs/big", sink)
    assert sink.hexdigest() == sha256(payload) and sink.size == size == sent.total
    bucket, prefix = parse_s3_url(s3_remote.url)
    client = seaweed.client()
    try:
        etag = client.head_object(Bucket=bucket, Key=f"{prefix}/blobs/big")["ETag"].strip('"')
    finally:
        client.close()
    parts = -(-size // UPLOAD_PART_SIZE)
    assert etag.endswith(f"-{parts}") if size >= MULTIPART_THRESHOLD else "-" not in etag




@pytest.mark.s3
def test_write_with_wrong_digest_is_refused_by_the_server(storage):
    with pytest.raises(IntegrityError, match="do not match the checksum"):
        storage.write("blobs/bad", b"actual bytes", sha256=sha256(b"other bytes"))
    assert storage.stat("blobs/bad") is None




# -- create-only ------------------------------------------------------------------------


@pytest.mark.s3
@pytest.mark.parametrize("size", [10, MULTIPART_SIZE], ids=["single-put", "multipart"])
def test_create_only_is_enforced_by_the_server_when_the_key_appears_after_the_check(
        storage, monkeypatch, size):
    storage.write("k", b"winner")
    monkeypatch.setattr(storage, "stat", lambda key: None)  # the key appeared after the HEAD
    with pytest.raises(AlreadyExists):
        storage.write("k", b"x" * size, create_only=True, sha256=sha256(b"x" * size))
    assert read_all(storage, "k") == b"winner"


# -- paging, resumed reads ------------------------------------------------------------------


@pytest.mark.s3
def test_list_pages_through_more_than_one_thousand_keys(storage, seaweed, s3_remote):
    bucket, prefix = parse_s3_url(s3_remote.url)
    client = seaweed.client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: client.put_object(Bucket=bucket, Key=f"{prefix}/many/{n:05d}", Body=b""),
                      range(1005)))
    keys = storage.list("many")
    assert len(keys) == 1005 and keys[0] == "many/00000" and keys == sorted(keys)





@pytest.mark.s3
def test_read_resumes_when_a_stream_drops_mid_part(storage, big_payload, monkeypatch):
    storage.write("blobs/big", big_payload)
    real_get, dropped = storage._get, set()

    def flaky_get(key, start, end, etag=None):
        response = real_get(key, start, end, etag)
        if end not in dropped:  # each part fails once, after 1 MiB (a resumed part keeps its end)
            dropped.add(end)
            response["Body"] = DroppingBody(response["Body"], good=1 << 20)
        return response

    monkeypatch.setattr(storage, "_get", flaky_get)
    assert sha256(read_all(storage, "blobs/big")) == sha256(big_payload)
    assert len(dropped) == 2  # the streamed first part and one fetched part both recovered


@pytest.mark.s3
def test_read_gives_up_when_every_attempt_drops(storage, big_payload, monkeypatch):
    storage.write("blobs/big", big_payload)
    real_get = storage._get
    monkeypatch.setattr(storage, "_get", lambda *args, **kwargs: {
        **(response := real_get(*args, **kwargs)), "Body": DroppingBody(response["Body"], good=0)})
    with pytest.raises(RemoteError, match="connection failed mid-transfer"):
        read_all(storage, "blobs/big")



# -- errors -------------------------------------------------------------------------------

def assert_no_secrets(message: str, server: S3Server) -> None:
    for keys in (server.admin, server.read_only, server.wrong_secret, server.unknown_key):
        assert keys.secret_key not in message


@pytest.mark.s3
@pytest.mark.parametrize("operation", ["stat", "read", "write", "list"])
def test_wrong_secret_key_is_a_remote_error_naming_the_fix_not_the_secret(
        make_storage, s3_remote, s3_server, monkeypatch, operation):
    use_s3_keys(monkeypatch, s3_server.wrong_secret)
    store = make_storage(s3_remote)
    calls = {"stat": lambda: store.stat("k"), "read": lambda: read_all(store, "k"),
             "write": lambda: store.write("k", b"x"), "list": lambda: store.list("")}
    with pytest.raises(RemoteError) as caught:
        calls[operation]()
    message = str(caught.value)
    assert "secret access key does not match" in message and "AWS_SECRET_ACCESS_KEY" in message
    assert s3_server.endpoint_url in message and s3_remote.url.split("/")[2] in message
    assert_no_secrets(message, s3_server)
    assert caught.value.__cause__ is not None


@pytest.mark.s3
def test_unknown_access_key_is_a_remote_error(make_storage, s3_remote, s3_server, monkeypatch):
    use_s3_keys(monkeypatch, s3_server.unknown_key)
    with pytest.raises(RemoteError, match="access key ID is not known") as caught:
        make_storage(s3_remote).stat("k")
    assert_no_secrets(str(caught.value), s3_server)


@pytest.mark.s3
def test_read_only_credentials_cannot_write(make_storage, s3_remote, s3_server, monkeypatch):
    use_s3_keys(monkeypatch, s3_server.read_only)
    with pytest.raises(RemoteError, match="access denied"):
        make_storage(s3_remote).write("k", b"x")


@pytest.mark.s3
@pytest.mark.parametrize("operation", ["stat", "read", "write", "list"])
def test_missing_bucket_is_a_remote_error_not_a_missing_key(make_storage, s3_remote, operation):
    store = make_storage(replace(s3_remote, url="s3://modelreg-no-such-bucket/reg"))
    calls = {"stat": lambda: store.stat("k"), "read": lambda: read_all(store, "k"),
             "write": lambda: store.write("k", b"x"), "list": lambda: store.list("")}
    with pytest.raises(RemoteError, match="bucket does not exist") as caught:
        calls[operation]()
    assert "modelreg-no-such-bucket" in str(caught.value)


@pytest.mark.s3
def test_unreachable_endpoint_fails_quickly(make_storage, s3_remote):
    closed_port = _closed_port()
    store = make_storage(replace(s3_remote, options={"endpoint_url": f"http://127.0.0.1:{closed_port}"}))
    started = time.monotonic()
    with pytest.raises(RemoteError, match="unreachable") as caught:
        store.stat("k")
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{closed_port}" in str(caught.value)


@pytest.mark.s3
def test_missing_credentials_say_how_to_provide_them(make_storage, s3_remote, monkeypatch):
    use_s3_keys(monkeypatch, None)
    with pytest.raises(RemoteError, match="no AWS credentials found.*AWS_ACCESS_KEY_ID.*AWS_PROFILE"):
        make_storage(s3_remote).write("k", b"x")


@pytest.mark.s3
def test_throttling_that_outlasts_retries_is_a_remote_error(make_storage, s3_remote):
    """SlowDown responses injected into a real client: botocore retries, then we explain."""
    store = make_storage(replace(s3_remote, options={**s3_remote.options, "max_attempts": 2}))
    sent = []

    def slow_down(request, **kwargs):
        sent.append(request.url)
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, _RawBody(body))

    store._client.meta.events.register("before-send.s3.PutObject", slow_down)
    with pytest.raises(RemoteError, match="throttling.*after 2 attempts"):
        store.write("k", b"x")
    assert len(sent) == 2


@pytest.mark.s3
def test_aws_cli_reads_back_what_write_stored(storage, s3_server, s3_remote, big_payload, tmp_path):
    aws = Path(sys.executable).with_name("aws")
    aws = str(aws) if aws.exists() else shutil.which("aws")
    assert aws, "the aws CLI (awscli, part of the test extra) is needed for the interop test"
    source = tmp_path / "weights.h5"
    source.write_bytes(big_payload)
    storage.write("blobs/big", source, sha256=sha256(big_payload))
    copy = tmp_path / "copy.h5"
    subprocess.run([aws, "s3", "cp", "--only-show-errors", "--endpoint-url", s3_server.endpoint_url,
                    f"{s3_remote.url}/blobs/big", str(copy)], check=True, env=os.environ.copy(), timeout=60)
    assert sha256(copy.read_bytes()) == sha256(big_payload)


class DroppingBody:
    """A response body that delivers `good` bytes, then fails like a reset connection."""

    def __init__(self, body, good: int) -> None:
        self._body = body
        self._good = good

    def iter_chunks(self, size):
        sent = 0
        for chunk in self._body.iter_chunks(size):
            if sent + len(chunk) > self._good:
                self._body.close()
                raise ResponseStreamingError(error="injected connection reset")
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self._body.close()


class _RawBody:
    """The minimal urllib3-like raw stream botocore reads an injected response from."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def stream(self, amt=1024, decode_content=True):
        while chunk := self._data.read(amt):
            yield chunk

    def read(self, amt=None):
        return self._data.read(amt)


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_stale_multipart_uploads_are_not_looked_for_before_a_single_put(storage):
    """A blob below 5 MiB goes up in one PUT, which a kill cannot leave half done: the push does
    not list multipart uploads for it (gc still finds any leftover, whatever its size)."""
    key = "blobs/sha256/cd/" + "cd" * 32
    storage._client.create_multipart_upload(Bucket=storage.bucket, Key=storage._key(key))
    listed = []
    real = storage._client.list_multipart_uploads
    storage._client.list_multipart_uploads = lambda **kwargs: listed.append(kwargs) or real(**kwargs)
    assert storage.remove_stale_uploads(key, older_than=0, size=4 * 1024 * 1024) == 0 and listed == []
    assert storage.remove_stale_uploads(key, older_than=0, size=MULTIPART_SIZE) == 1 and listed
    assert [upload.key for upload in storage.list_uploads("")] == []
