"""Listing an S3 registry root: keys with size, modification time and age, and unfinished uploads.

Ages are measured against the server's clock (the `Date` header of the same response),
so a skewed local clock does not make a young object look old. S3's `LastModified` is
when an object's upload completed (a multipart upload: when it was initiated, on AWS),
with a resolution of one second on some servers; an age below zero is reported as 0.

Objects are listed through `LeanRequests` when the storage has one (the same request,
signed and sent by the client's own pieces, parsed without botocore's response parser:
20,000 keys took 1 s of CPU through botocore's paginator, dateutil parsing each date);
should it be unavailable for any page, the whole listing is repeated through the botocore client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from modelreg.storage.base import ObjectInfo, UploadInfo
from modelreg.storage.s3.lean import LeanRequests, LeanUnavailable


def server_time(response: dict) -> datetime:
    """The server's clock from a response's `Date` header, else this machine's."""
    date_header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        if date_header:
            return parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        pass
    return datetime.now(UTC)


def directory_prefix(root: str, prefix: str) -> str:
    """The S3 key prefix of the directory `prefix` under the registry `root` (both without slashes)."""
    directory = prefix.strip("/")
    base = f"{root}/" if root else ""
    return f"{base}{directory}/" if directory else base


def list_objects(client, bucket: str, root: str, prefix: str,
                 lean: LeanRequests | None = None) -> list[ObjectInfo]:
    """Every object under `prefix`, keys relative to `root`, sorted. Raises botocore's errors."""
    if lean is not None:
        try:
            return _list_lean(lean, root, prefix)
        except LeanUnavailable:
            pass
    strip = len(f"{root}/") if root else 0
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix=directory_prefix(root, prefix)):
        now = server_time(page)
        for item in page.get("Contents", ()):
            if item["Key"].endswith("/"):
                continue
            modified = item["LastModified"]
            found.append(ObjectInfo(key=item["Key"][strip:], size=item["Size"], mtime=modified.timestamp(),
                                    age=max(0.0, (now - modified).total_seconds()), etag=item.get("ETag")))
    return sorted(found, key=lambda info: info.key)


def _list_lean(lean: LeanRequests, root: str, prefix: str) -> list[ObjectInfo]:
    """`list_objects` through `lean`; `LeanUnavailable` when any page needs the client's full path."""
    strip = len(f"{root}/") if root else 0
    found = []
    token: str | None = None
    while True:
        page = lean.list_page(directory_prefix(root, prefix), token)
        now = page.server_time or datetime.now(UTC)
        for key, size, etag, modified in page.objects:
            if not key.endswith("/"):
                found.append(ObjectInfo(key=key[strip:], size=size, mtime=modified.timestamp(),
                                        age=max(0.0, (now - modified).total_seconds()), etag=etag))
        token = page.next_token
        if token is None:
            return sorted(found, key=lambda info: info.key)


def list_multipart_uploads(client, bucket: str, root: str, prefix: str) -> list[UploadInfo]:
    """Every incomplete multipart upload under `prefix`, with its parts' total size and its age since
    its last activity (initiation or latest part). Raises botocore's errors."""
    strip = len(f"{root}/") if root else 0
    found = []
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket,
                                                                        Prefix=directory_prefix(root, prefix)):
        now = server_time(page)
        for upload in page.get("Uploads", ()):
            size, last_activity = upload_activity(client, bucket, upload)
            found.append(UploadInfo(key=upload["Key"][strip:], upload_id=upload["UploadId"], size=size,
                                    age=max(0.0, (now - last_activity).total_seconds())))
    return sorted(found, key=lambda upload: (upload.key, upload.upload_id))


def upload_activity(client, bucket: str, upload: dict) -> tuple[int, datetime]:
    """(bytes stored in its parts, time of its last activity) of one multipart upload from a listing."""
    size, last_activity = 0, upload["Initiated"]
    pages = client.get_paginator("list_parts").paginate(Bucket=bucket, Key=upload["Key"],
                                                        UploadId=upload["UploadId"])
    for page in pages:
        for part in page.get("Parts", ()):
            size += part.get("Size", 0)
            last_activity = max(last_activity, part["LastModified"])
    return size, last_activity
