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

from botocore.exceptions import ClientError

from modelreg.storage.s3.errors import not_an_s3_server
from modelreg.storage.s3.listing import server_time, upload_activity


def abort_stale_uploads(client, bucket: str, key: str, older_than: float) -> int:
    """Abort the unfinished multipart uploads of exactly `key` idle for `older_than` seconds;
    returns how many. Raises botocore's errors (the backend translates them)."""
    listing = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    server_now = server_time(listing)
    aborted = 0
    for upload in listing.get("Uploads", ()):
        if upload.get("Key") != key:
            continue
        _size, last_activity = upload_activity(client, bucket, upload)
        if (server_now - last_activity).total_seconds() >= older_than:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            aborted += 1
    return aborted


def abort_upload(client, bucket: str, key: str, upload_id: str) -> None:
    """Abort one multipart upload; one already completed or aborted is not an error.
    Raises botocore's other errors."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404") or not_an_s3_server(exc):
            raise
