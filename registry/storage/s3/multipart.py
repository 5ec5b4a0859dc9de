"""Multipart uploads through s3transfer, imported only by a push that has a file to send in parts.

s3transfer (with boto3, which the backend does not use: it creates botocore clients
itself) took ~40 ms of every S3 command's start-up to import; pulls, lists and pushes of
small files never need it.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from s3transfer.exceptions import CancelledError
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber

from modelreg.hashing import CHUNK_SIZE, HashingReader, Progress
from modelreg.storage.base import Cancelled
from modelreg.storage.s3.backend import MULTIPART_THRESHOLD, UPLOAD_CONCURRENCY, UPLOAD_PART_SIZE

CONFIG = TransferConfig(
    multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=UPLOAD_PART_SIZE,
    max_request_concurrency=UPLOAD_CONCURRENCY, io_chunksize=CHUNK_SIZE,
    max_in_memory_upload_chunks=UPLOAD_CONCURRENCY,
)


class _SizeSubscriber(BaseSubscriber):
    """Tells s3transfer the size of a stream, which it cannot find out without reading it."""

    def __init__(self, size: int) -> None:
        self._size = size

    def on_queued(self, future, **kwargs) -> None:
        future.meta.provide_transfer_size(self._size)


class _ProgressSubscriber(BaseSubscriber):
    """Forwards upload progress, and cancels the multipart upload once the storage is cancelled."""

    def __init__(self, progress: Progress | None, cancelled: threading.Event) -> None:
        self._progress = progress
        self._cancelled = cancelled

    def on_progress(self, future, bytes_transferred: int, **kwargs) -> None:
        if self._cancelled.is_set():
            future.cancel()
        elif self._progress:
            self._progress(bytes_transferred)


def upload_in_parts(client, bucket: str, key: str, source: Path | bytes | HashingReader,
                    progress: Progress | None, cancelled: threading.Event, cancelled_message: str) -> None:
    """Upload `source` to `bucket`/`key` in parts, each with a CRC32 the server checks; raises
    botocore's errors as they come, `Cancelled` once `cancelled` is set."""
    # Per-part CRC32, not SHA-256: S3 cannot check a full-object SHA-256 of a multipart
    # upload, and per-part SHA-256 measured 15% slower for the same protection in transit.
    extra = {"ChecksumAlgorithm": "CRC32"}
    subscribers: list[BaseSubscriber] = [_ProgressSubscriber(progress, cancelled)]
    fileobj: object
    if isinstance(source, HashingReader):
        # A stream, read front to back by the submitting thread: each part's bytes are
        # hashed as they are read, and held in memory until sent (UPLOAD_CONCURRENCY parts).
        fileobj = source
        subscribers.append(_SizeSubscriber(source.size))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        fileobj = io.BytesIO(bytes(source))
    else:
        fileobj = str(source)
    with TransferManager(client, CONFIG) as manager:
        future = manager.upload(fileobj, bucket, key, extra_args=extra, subscribers=subscribers)
        try:
            future.result()
        except CancelledError as exc:
            raise Cancelled(cancelled_message) from exc
