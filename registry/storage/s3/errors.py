"""Turning botocore failures into modelreg's typed errors, with what to do about each.

One function, `translate_error`, used by every S3 call; messages name the bucket,
key and endpoint and the server's own code, never credentials.
"""

from __future__ import annotations

import http.client
import socket

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from modelreg.errors import IntegrityError, RegistryError, RemoteError
from modelreg.storage.base import stall_advice

STREAM_ERRORS = (socket.timeout, ConnectionError, ReadTimeoutError, IncompleteReadError, http.client.HTTPException,
                  ResponseStreamingError)
"""Failures while reading a response body, which botocore does not retry: resume the range."""
STALLS = (ReadTimeoutError, ConnectTimeoutError, socket.timeout)
"""No byte within the stall timeout: reported at once, never retried (see `S3Storage`)."""
S3_HEADERS = ("x-amz-request-id", "x-amz-id-2")
"""Every S3 implementation we know (AWS, MinIO, SeaweedFS, Ceph) sends one of these on every reply."""

_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
              "TooManyRequests", "RequestThrottled", "RequestThrottledException"}
ADVICE = {
    "InvalidAccessKeyId": "the access key ID is not known to this server. Check AWS_ACCESS_KEY_ID "
                          "(or the profile's aws_access_key_id) and that endpoint_url names the "
                          "right server.",
    "SignatureDoesNotMatch": "the secret access key does not match the access key ID. Check "
                             "AWS_SECRET_ACCESS_KEY (or the profile's aws_secret_access_key).",
    "AccessDenied": "access denied: these credentials are not allowed to do this (a registry needs "
                    "s3:GetObject, s3:PutObject, s3:ListBucket and s3:DeleteObject on the bucket and "
                    "prefix). Ask the bucket's administrator, or use other credentials (AWS_PROFILE).",
    "NoSuchBucket": "the bucket does not exist. Create it (aws s3 mb s3://BUCKET) or fix the remote URL.",
    "ExpiredToken": "the session credentials have expired. Refresh them (aws sso login, or a new "
                    "AWS_SESSION_TOKEN) and retry.",
    "RequestTimeTooSkewed": "this machine's clock is too far from the server's. Synchronise it (NTP).",
    "AuthorizationHeaderMalformed": "the request was signed for the wrong region. Set the remote's "
                                    "region option to the bucket's region.",
    "PermanentRedirect": "the bucket lives in another region or endpoint. Set the remote's region "
                         "(or endpoint_url) option to the bucket's.",
}
ADVICE["403"] = ADVICE["Forbidden"] = ADVICE["AccessDenied"]
ADVICE["TokenRefreshRequired"] = ADVICE["InvalidToken"] = ADVICE["ExpiredToken"]


def not_an_s3_server(exc: ClientError) -> str | None:
    """What gives away a reply that did not come from an S3 server (a web server, a proxy's
    error page), or None when it looks like S3.

    botocore turns any HTTP error into a ClientError whose code is the status when the
    body is not S3's XML, so a plain web server answering 404 reads as "no such bucket".
    """
    metadata = exc.response.get("ResponseMetadata", {})
    headers = {name.lower(): value for name, value in (metadata.get("HTTPHeaders") or {}).items()}
    if any(name in headers for name in S3_HEADERS):
        return None
    code = str(exc.response.get("Error", {}).get("Code", ""))
    content_type = headers.get("content-type", "")
    if not (code.isdigit() or "html" in content_type):
        return None
    clues = [f"HTTP {metadata.get('HTTPStatusCode', code)}", "no x-amz-request-id header"]
    if headers.get("server"):
        clues.append(f"Server: {headers['server']}")
    if content_type:
        clues.append(f"Content-Type: {content_type}")
    return ", ".join(clues)


def translate_error(exc: Exception, *, action: str, bucket: str, key: str, endpoint: str,
                    stall_timeout: float | None = None) -> RegistryError:
    """One typed error, with what failed, where and what to do, for a boto/botocore exception.

    Messages never contain credentials: only the bucket, key, endpoint and the server's
    error code and message.
    """
    where = f"Cannot {action} s3://{bucket}/{key} at {endpoint}"
    if isinstance(exc, ClientError) and (clues := not_an_s3_server(exc)):
        return RemoteError(f"{where}: {endpoint} did not answer as an S3 server ({clues}). Check the "
                           f"remote's endpoint_url: it must name the S3 API's host and port.")
    if stall_timeout is not None and isinstance(exc, STALLS):
        return RemoteError(f"{where}: the server stopped answering: {stall_advice(stall_timeout)}.")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return RemoteError(f"{where}: no AWS credentials found. Set AWS_ACCESS_KEY_ID and "
                           f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (or the remote's profile option), "
                           f"or run where an instance role provides them.")
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return RemoteError(f"{where}: the endpoint is unreachable ({exc}). Check endpoint_url, that "
                           f"the server is running and that the network or proxy lets you reach it.")
    if isinstance(exc, (ReadTimeoutError, ConnectionClosedError, *STREAM_ERRORS)):
        return RemoteError(f"{where}: the connection failed mid-transfer ({exc}). Retry; if it keeps "
                           f"happening, check the network or the server's health.")
    if not isinstance(exc, ClientError):
        return RemoteError(f"{where}: {exc}.")
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    server_says = error.get("Message") or code or f"HTTP {status}"
    attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
    if code in _THROTTLED or status == 503:
        return RemoteError(f"{where}: the server is throttling requests or overloaded ({server_says}) "
                           f"and still was after {attempts} attempts. Retry later, or move fewer files "
                           f"at once.")
    if code in ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"):
        return IntegrityError(f"{where}: the server received bytes that do not match the checksum "
                              f"(SHA-256 or CRC32) sent with them ({server_says}). The local file changed "
                              f"during the upload, or its digest is wrong; check it and push again.",
                              path=key, source="upload")
    if code in ADVICE:
        return RemoteError(f"{where}: {ADVICE[code]} (server said: {server_says})")
    if status and status >= 500:
        return RemoteError(f"{where}: server error {code or status} ({server_says}) after {attempts} "
                           f"attempts. Retry later; if it persists, check the server.")
    return RemoteError(f"{where}: {code or status}: {server_says}.")
