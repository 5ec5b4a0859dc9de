"""Aborting the unfinished multipart uploads a killed push left on S3.

An unfinished multipart upload is invisible to readers and listings but its parts are
stored (and billed) until it is completed or aborted. Uploads take no lock, so one
still receiving parts may be another push of the same blob: only uploads whose last
activity (initiation or latest part, as the server reports them) is older than the
caller's limit are aborted. Ages are measured against the server's `Date` header, so
a skewed local clock does not matter. A bucket lifecycle rule
(`AbortIncompleteMultipartUpload`, see the README) covers keys never pushed again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def abort_stale_uploads(client, bucket: str, key: str, older_than: float) -> int:
    """Abort the unfinished multipart uploads of exactly `key` idle for `older_than` seconds;
    returns how many. Raises botocore's errors (the backend translates them)."""
    listing = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    server_now = _server_time(listing["ResponseMetadata"].get("HTTPHeaders", {}).get("date"))
    aborted = 0
    for upload in listing.get("Uploads", ()):
        if upload.get("Key") != key:
            continue
        parts = client.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"]).get("Parts", ())
        last_activity = max([upload["Initiated"], *(part["LastModified"] for part in parts)])
        if (server_now - last_activity).total_seconds() >= older_than:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            aborted += 1
    return aborted


def _server_time(date_header: str | None) -> datetime:
    """The server's clock from its `Date` header, else this machine's."""
    try:
        if date_header:
            return parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        pass
    return datetime.now(UTC)
