"""The `s3://bucket/prefix` backend: AWS S3 or any S3-compatible store (SeaweedFS, MinIO...).

Credentials come only from botocore's standard chain (environment, profile, config
files, instance roles); they are never stored, logged or put in a message.
`spec.options` (declared in `modelreg.storage.schemes`) may set `endpoint_url`,
`region`, `profile`, `addressing_style` (`path`, `virtual` or `auto`; default `path`
with an `endpoint_url`, else `auto`), `max_attempts` (per request, default
`MAX_ATTEMPTS`), `atomic_create_only` (default true; see below) and `stall_timeout`
(seconds without a byte before a request fails; a request that stalled is not
retried, so a silent server fails after about that long, not attempts x that long).

What a caller can rely on beyond the `Storage` protocol:
- A PUT or a completed multipart upload is atomic in S3, so there are no temp names;
  an unfinished multipart upload is never listed.
- `write(create_only=True)` sends `If-None-Match: *` (on PutObject, or on
  CompleteMultipartUpload for large files), which AWS S3 and SeaweedFS enforce:
  of two racing writers exactly one wins, the other gets `AlreadyExists`. The key is
  also HEADed first, which avoids uploading a large file for nothing and is the
  fallback for servers that ignore the header: they still refuse a key that
  exists, but two writers racing within the HEAD-to-PUT window both succeed. Such a
  server is declared with the remote option `atomic_create_only = false`, and the
  backend then reports `capabilities.atomic_create_only` False. (It is declared, not
  probed: finding out would take test writes to the bucket.)
- With `sha256`, an object below `MULTIPART_THRESHOLD` is sent with its SHA-256 and
  the server refuses bytes that do not match (`IntegrityError`). S3 has no
  full-object SHA-256 for multipart uploads (only a composite of per-part digests),
  so larger files carry a CRC32 per part, which the server checks, and their full
  digest is verified by whoever reads the blob back (pull hashes every byte).
- `read` streams objects up to `PART_SIZE` from one GET and fetches larger ones as
  parallel ranged GETs, each read into a reused buffer (`parts`); either way bytes
  reach the sink in order, from the calling thread, so exceptions raised by
  `sink.write` propagate unchanged.
"""

from __future__ import annotations

import base64
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from modelreg.config import RemoteSpec
from modelreg.errors import AlreadyExists, ConfigError, NotFound, RegistryError, RemoteError, UsageError
from modelreg.hashing import CHUNK_SIZE, HashingReader, Progress, is_sha256_hex
from modelreg.storage.base import (
    Capabilities,
    ObjectInfo,
    Sink,
    StorageBase,
    UploadInfo,
    stall_timeout_of,
)
from modelreg.storage.s3.cleanup import abort_stale_uploads, abort_upload
from modelreg.storage.s3.errors import ADVICE, STALLS, STREAM_ERRORS, not_an_s3_server, translate_error
from modelreg.storage.s3.lean import LeanRequests, LeanUnavailable
from modelreg.storage.s3.listing import list_multipart_uploads, list_objects
from modelreg.storage.s3.loader import new_session
from modelreg.storage.s3.parts import BufferPool, Part, read_part

MiB = 1 << 20
PART_SIZE = 16 * MiB
"""Ranged-GET size of downloads."""
MULTIPART_THRESHOLD = PART_SIZE
"""Files this size or larger go up in parts; smaller ones in one PUT verified by the server."""
UPLOAD_PART_SIZE = 8 * MiB
"""Multipart upload part size: 8 MiB pushed 504 MB to SeaweedFS in 3.6-3.7 s against 4.0 s
with 16 MiB parts (alternating, 5 rounds each; `aws s3 cp` 3.7 s), with half the memory."""
MIN_PART_SIZE = 5 * MiB
"""S3's smallest part (but the last): no smaller object was ever uploaded in parts by modelreg."""
UPLOAD_CONCURRENCY = 8
"""Parts of one file uploaded at once."""
DOWNLOAD_WINDOW = 4
"""Parts of one file fetched ahead of the sink; each is held in a pooled buffer until written."""
PARALLEL_TRANSFERS = 4
"""Files the orchestration may move at once (so at most 4 x 4 x 16 MiB of download buffers)."""
MAX_ATTEMPTS = 3
"""Attempts per request, with botocore's "standard" backoff (throttling, 5xx, dropped connections)."""
CONNECT_TIMEOUT = 5
"""Seconds to open a TCP connection (at most: never more than the stall timeout)."""
ADDRESSING_STYLES = ("path", "virtual", "auto")


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix without slashes) of `s3://bucket/prefix`; the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise UsageError(f"Invalid S3 URL {url!r}: use s3://bucket or s3://bucket/prefix.")
    return parts.netloc, parts.path.strip("/")


def parse_flag(value: object, name: str, label: str) -> bool:
    """A boolean option from TOML (true/false) or text (`true`, `no`, `1`...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise UsageError(f"Invalid {name} {value!r} for {label}: use true or false.")


def _release_part(future) -> None:
    """A part fetched for a read that failed or was cancelled meanwhile: its buffer goes back."""
    if not future.cancelled() and future.exception() is None:
        future.result().release()


def _no_retry_after_a_stall(caught_exception: Exception | None = None, **_kwargs) -> None:
    """botocore `needs-retry` hook: a request that got no byte for `stall_timeout` fails at once.

    botocore would retry it `max_attempts` times (with backoff); a server that accepts
    connections and never answers would then take several stall timeouts to report.
    """
    if isinstance(caught_exception, STALLS):
        raise caught_exception


def _require_absent(params: dict, **_kwargs) -> None:
    """botocore hook: make CompleteMultipartUpload create-only (`If-None-Match: *`)."""
    params.setdefault("IfNoneMatch", "*")


class S3Storage(StorageBase):
    """A registry root at `s3://bucket/prefix`; thread-safe, one client shared by all calls."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.url = spec.url
        self.bucket, self.prefix = parse_s3_url(spec.url)
        self.cancelled = threading.Event()
        options = spec.options
        self.capabilities = Capabilities(
            atomic_create_only=parse_flag(options.get("atomic_create_only", True), "atomic_create_only",
                                          spec.label),
            atomic_replace=True,
            # Every upload carries a checksum the server verifies: the given SHA-256 below
            # MULTIPART_THRESHOLD, a CRC32 per part above it.
            server_side_checksums=True,
            parallel_transfers=PARALLEL_TRANSFERS,
        )
        endpoint_url = options.get("endpoint_url") or None
        style = options.get("addressing_style") or ("path" if endpoint_url else "auto")
        if style not in ADDRESSING_STYLES:
            raise UsageError(f"Invalid addressing_style {style!r} for {spec.label}: "
                             f"use one of {', '.join(ADDRESSING_STYLES)}.")
        try:
            session = new_session(options.get("profile") or None)
            if options.get("region"):
                session.set_config_variable("region", options["region"])
        except ProfileNotFound as exc:
            raise ConfigError(f"AWS profile {exc.kwargs.get('profile')!r} for {spec.label} is not in "
                              f"~/.aws/config or ~/.aws/credentials: add it (aws configure "
                              f"--profile NAME) or fix the remote's profile option.") from exc
        pool_size = self.parallel_transfers * (UPLOAD_CONCURRENCY + 1)  # parts, plus HEAD/LIST
        self.stall_timeout = stall_timeout_of(options, spec.label)
        self._config = Config(
            connect_timeout=min(CONNECT_TIMEOUT, self.stall_timeout), read_timeout=self.stall_timeout,
            retries={"mode": "standard",
                     "total_max_attempts": int(options.get("max_attempts", MAX_ATTEMPTS))},
            max_pool_connections=pool_size,
            # Every upload carries a checksum header (SHA-256, else CRC32) that the server
            # verifies, so the payload is not hashed a second time for the signature.
            s3={"addressing_style": style, "payload_signing_enabled": False},
            request_checksum_calculation="when_supported",
            # Downloads are hashed by the caller's sink; do not hash them twice.
            response_checksum_validation="when_required",
        )
        self._session = session
        self._endpoint_url = endpoint_url
        self._client = self._new_client()
        self.endpoint = self._client.meta.endpoint_url
        self._create_only_client = None
        self._readers = ThreadPoolExecutor(self.parallel_transfers * DOWNLOAD_WINDOW,
                                           thread_name_prefix="s3-read")
        self._buffers = BufferPool(PART_SIZE, keep=DOWNLOAD_WINDOW + 1)
        """Part buffers; one file's window is kept for reuse (80 MiB), more are dropped once written."""
        self._lock = threading.Lock()
        self._bucket_seen = False
        self._lean: LeanRequests | None = LeanRequests(self._client, self.bucket)

    def _new_client(self):
        client = self._session.create_client("s3", endpoint_url=self._endpoint_url, config=self._config)
        client.meta.events.register_first("needs-retry.s3", _no_retry_after_a_stall)
        return client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, action: str, key: str = "") -> RegistryError:
        return translate_error(exc, action=action, bucket=self.bucket,
                               key=self._key(key) if key else self.prefix, endpoint=self.endpoint,
                               stall_timeout=self.stall_timeout)

    def _check_bucket(self) -> None:
        """Raise when the bucket is missing (a HEAD 404 cannot tell a missing key from it)."""
        if self._bucket_seen:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not_an_s3_server(exc):
                raise self._error(exc, "open bucket") from exc
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                raise RemoteError(f"Cannot use s3://{self.bucket} at {self.endpoint}: "
                                  f"{ADVICE['NoSuchBucket']}") from exc
            return  # 403 and friends: the bucket may exist but listing it is not allowed.
        except BotoCoreError as exc:
            raise self._error(exc, "open bucket") from exc
        self._bucket_seen = True

    def stat(self, key: str) -> int | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound") and not not_an_s3_server(exc):
                self._check_bucket()
                return None
            raise self._explain_head_failure(exc, key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "stat", key) from exc

    def _explain_head_failure(self, exc: ClientError, key: str) -> RegistryError:
        """HEAD errors carry no body; repeat as a 1-byte GET to learn the real error code."""
        try:
            self._client.get_object(Bucket=self.bucket, Key=self._key(key), Range="bytes=0-0")["Body"].close()
        except ClientError as detailed:
            if detailed.response.get("Error", {}).get("Code") not in ("NoSuchKey", "InvalidRange"):
                return self._error(detailed, "stat", key)
        except BotoCoreError:
            pass
        return self._error(exc, "stat", key)

    # -- read ---------------------------------------------------------------

    def read(self, key: str, sink: Sink, *, offset: int = 0) -> None:
        try:
            first = self._get(key, offset, offset + PART_SIZE - 1)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            size = self.stat(key) if code in ("InvalidRange", "416") else None
            if size == offset:
                return  # an empty object, or a resume that already has every byte
            if size is not None:
                raise self._error(RuntimeError(f"cannot resume at byte {offset}: the object has only "
                                               f"{size} bytes; delete the partial download and retry"),
                                  "resume", key) from exc
            raise self._read_error(exc, key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "download", key) from exc
        content_range = first.get("ContentRange")
        if not content_range and offset:
            first["Body"].close()
            raise self._error(RuntimeError("the server ignored the Range header, so the download "
                                           "cannot resume; delete the partial file and retry"), "resume", key)
        total = int(content_range.rsplit("/", 1)[1]) if content_range else first["ContentLength"]
        starts = iter(range(offset + PART_SIZE, total, PART_SIZE) if content_range else ())
        etag = first.get("ETag")
        stop = threading.Event()
        pending: deque = deque()

        def submit_next() -> None:
            start = next(starts, None)
            if start is not None:
                pending.append(self._readers.submit(self._fetch_part, key, start, total, etag, stop))

        try:
            for _ in range(DOWNLOAD_WINDOW):
                submit_next()
            self._stream(key, first, offset, sink)
            while pending:
                part = pending.popleft().result()
                self.check_cancelled()
                submit_next()
                part.write_to(sink)
        except (ClientError, BotoCoreError) as exc:
            raise self._read_error(exc, key) from exc
        finally:
            stop.set()
            for future in pending:
                if not future.cancel():
                    future.add_done_callback(_release_part)

    def _get(self, key: str, start: int, end: int, etag: str | None = None) -> dict:
        extra = {"IfMatch": etag} if etag else {}
        return self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                       Range=f"bytes={start}-{end}", **extra)

    def _stream(self, key: str, response: dict, start: int, sink: Sink) -> None:
        """Copy the first part to the sink as it arrives; a dropped stream resumes from the next byte.

        Only reading the body is retried: whatever `sink.write` raises propagates at once.
        """
        end = start + response["ContentLength"] - 1
        position = start
        for attempt in range(1, MAX_ATTEMPTS + 1):
            chunks = response["Body"].iter_chunks(CHUNK_SIZE)
            while True:
                try:
                    chunk = next(chunks, None)
                except STREAM_ERRORS as exc:
                    if attempt == MAX_ATTEMPTS or isinstance(exc, STALLS):
                        raise self._error(exc, "download", key) from exc
                    break
                if chunk is None:
                    break
                self.check_cancelled()
                sink.write(chunk)
                position += len(chunk)
            if position > end:
                return
            if attempt < MAX_ATTEMPTS:
                response = self._get(key, position, end, response.get("ETag"))
        raise self._error(RuntimeError(f"the stream ended at byte {position} of {end + 1}"), "download", key)

    def _fetch_part(self, key: str, start: int, total: int, etag: str | None,
                    stop: threading.Event) -> Part:
        """One ranged GET read fully into a pooled buffer (`parts`); a dropped stream is retried from the start."""
        end = min(start + PART_SIZE, total) - 1
        stopped = lambda: stop.is_set() or self.cancelled.is_set()  # noqa: E731
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                part = read_part(self._get(key, start, end, etag)["Body"], end - start + 1, self._buffers,
                                 stopped)
            except STREAM_ERRORS as exc:
                if attempt == MAX_ATTEMPTS or isinstance(exc, STALLS):
                    raise self._error(exc, "download", key) from exc
                continue
            if part is None:
                return Part(0)
            if part.length == end - start + 1:
                return part
            part.release()
        raise self._error(RuntimeError(f"short read of bytes {start}-{end}"), "download", key)

    def _read_error(self, exc: Exception, key: str) -> RegistryError:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        if isinstance(exc, ClientError) and not_an_s3_server(exc):
            return self._error(exc, "download", key)
        if code in ("NoSuchKey", "404"):
            self._check_bucket()
            return NotFound(f"{key} does not exist in {self.url}.")
        if code in ("PreconditionFailed", "412"):
            return self._error(RuntimeError("the object was replaced while it was being downloaded; "
                                            "download it again"), "download", key)
        return self._error(exc, "download", key)

    def fetch_small(self, key: str, limit: int) -> bytes | None:
        """The whole object at `key` when it has at most `limit` bytes, by one lean GET
        (`modelreg.storage.s3.lean`); None when that cannot tell (absent, larger, an error to
        retry or explain): `read` it then. A stall raises as `read` would. After a refusal, a
        redirect, a server error or a failed connection the lean path is given up for this
        storage (they would repeat); not after a missing key or one larger than `limit`."""
        lean = self._lean
        if lean is None:
            return None
        self.check_cancelled()
        try:
            return lean.get(self._key(key), limit)
        except LeanUnavailable as exc:
            if exc.status not in (200, 206, 404, 416):
                self._lean = None
            return None
        except STALLS as exc:
            raise self._error(exc, "download", key) from exc

    # -- write --------------------------------------------------------------

    def write(self, key: str, source: Path | bytes | HashingReader, *, create_only: bool = False,
              sha256: str | None = None, progress: Progress | None = None) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            size = len(source)
        elif isinstance(source, HashingReader):
            size = source.size
        else:
            try:
                size = Path(source).stat().st_size
            except FileNotFoundError as exc:
                raise NotFound(f"Cannot upload {source}: the local file does not exist.") from exc
        if sha256 is not None and not is_sha256_hex(sha256):
            raise UsageError(f"Not a sha256 hex digest: {sha256!r}.")
        if create_only and self.stat(key) is not None:
            raise AlreadyExists(f"{key} already exists in {self.url}.")
        try:
            if size < MULTIPART_THRESHOLD:
                self._put(key, source, create_only=create_only, sha256=sha256)
                if progress:
                    progress(size)
            else:
                self._upload_parts(key, source, create_only=create_only, progress=progress)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412") and \
                    not not_an_s3_server(exc):
                raise AlreadyExists(f"{key} already exists in {self.url}.") from exc
            raise self._error(exc, "upload", key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "upload", key) from exc

    def _put(self, key: str, source: Path | bytes | HashingReader, *, create_only: bool,
             sha256: str | None) -> None:
        extra = {}
        if sha256:
            extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(sha256)).decode()
        if create_only:
            extra["IfNoneMatch"] = "*"
        if isinstance(source, HashingReader):  # below MULTIPART_THRESHOLD: read once, into memory
            source = source.read_at(0, source.size)
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(source), **extra)
            return
        with open(source, "rb") as body:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **extra)

    def _upload_parts(self, key: str, source: Path | bytes | HashingReader, *, create_only: bool,
                      progress: Progress | None) -> None:
        from modelreg.storage.s3.multipart import upload_in_parts  # s3transfer: only when uploading parts

        client = self._create_only() if create_only else self._client
        upload_in_parts(client, self.bucket, self._key(key), source, progress, self.cancelled,
                        f"upload of {key} to {self.url} cancelled")

    def _create_only(self):
        """A second client whose CompleteMultipartUpload requests carry `If-None-Match: *`."""
        with self._lock:
            if self._create_only_client is None:
                client = self._new_client()
                client.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload",
                                            _require_absent)
                self._create_only_client = client
            return self._create_only_client

    # -- list, delete, close --------------------------------------------------

    def list_info(self, prefix: str) -> list[ObjectInfo]:
        """As the protocol says; ages by the server's clock (`modelreg.storage.s3.listing`)."""
        return self._translated("list", prefix, list_objects, self._client, self.bucket, self.prefix, prefix,
                                self._lean)

    def list_uploads(self, prefix: str) -> list[UploadInfo]:
        """The incomplete multipart uploads under `prefix` (`list_multipart_uploads`)."""
        return self._translated("list unfinished uploads in", prefix, list_multipart_uploads, self._client,
                                self.bucket, self.prefix, prefix)

    def remove_upload(self, upload: UploadInfo) -> None:
        self._translated("abort an unfinished upload of", upload.key, abort_upload, self._client, self.bucket,
                         self._key(upload.key), upload.upload_id)

    def remove_stale_uploads(self, key: str, older_than: float, size: int | None = None) -> int:
        """Abort unfinished multipart uploads of `key` idle for `older_than` seconds (`abort_stale_uploads`).

        Not looked for when `size` is below S3's minimum part size (5 MiB): such an object
        is written by one PUT (below `MULTIPART_THRESHOLD`), which leaves nothing behind.
        """
        if size is not None and size < MIN_PART_SIZE:
            return 0
        return self._translated("clean up unfinished uploads of", key, abort_stale_uploads, self._client,
                                self.bucket, self._key(key), older_than)

    def delete(self, key: str) -> None:
        self._translated("delete", key, self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def _translated(self, action: str, key: str, call, *args, **kwargs):
        """`call(*args, **kwargs)`, with botocore's errors raised as `RegistryError`s naming `action`."""
        try:
            return call(*args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, action, key) from exc

    def close(self) -> None:
        """Stop the download threads and close the HTTP connections; calling it twice is harmless."""
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._buffers.clear()
        self._client.close()
        if self._create_only_client is not None:
            self._create_only_client.close()
