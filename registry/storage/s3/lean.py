"""Small GETs and ListObjectsV2 pages without botocore's per-request pipeline, for `list` at scale.

A botocore client's `get_object` of a 2 KB manifest costs about 0.8 ms of client CPU (parameter
validation, endpoint rules, a dozen event hooks, response parsing), and parsing a
ListObjectsV2 page of 1,000 keys about 50 ms (`LastModified` goes through dateutil).
Both hold the GIL, so for 10,000 versions they, not the server, set the pace.

`LeanRequests` sends the same requests with the client's own pieces, kept whole:
- the URL botocore itself resolves for this client (endpoint, https or http, path or
  virtual addressing as configured), learnt once per operation from a request that
  is stopped before it is sent, with only the key or the query changed afterwards;
- the client's `RequestSigner` (credentials chain and refresh, SigV4, region) and the
  request context botocore built for that operation;
- the client's HTTP session (TLS verification, CA bundle, proxies, connection pool,
  the connect and stall timeouts).

What it skips is what it cannot get wrong for these two requests: retries and error
parsing. It answers only a plain success; anything else (an HTTP error, a dropped
connection, an answer it does not understand) is `LeanUnavailable`, and the caller
repeats the request through the botocore client, which retries, and explains failures with the
backend's usual messages. A request that stalled (no byte for `stall_timeout`) is the
exception: it is not repeated (as the client would not), its error is raised as is.
"""

from __future__ import annotations

import threading
import uuid
import xml.etree.ElementTree as ElementTree
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_plus

import urllib3
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from botocore.utils import percent_encode, percent_encode_sequence

from modelreg.storage.s3.errors import STALLS

PROBE_KEY = "modelreg-lean-probe"


class LeanUnavailable(Exception):
    """This request needs the client's full path (an error to retry or explain, or an unexpected answer)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        """The HTTP status when the server answered (404: no such key, for a GET), else None."""


class _Stopped(Exception):
    """Raised from botocore's `before-send` hook: the request was built and signed, not sent."""


class ListPage:
    """One ListObjectsV2 page: (key, size, ETag, LastModified) per object, the server's clock, the next token."""

    def __init__(self, objects: list[tuple[str, int, str, datetime]], server_time: datetime | None,
                 next_token: str | None) -> None:
        self.objects = objects
        self.server_time = server_time
        self.next_token = next_token


class LeanRequests:
    """GetObject and ListObjectsV2 for one client and bucket, as the module docstring describes; thread-safe."""

    def __init__(self, client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket
        self._lock = threading.Lock()
        self._templates: dict[str, tuple[str, dict]] = {}

    def _template(self, operation: str) -> tuple[str, dict]:
        """(URL, request context) botocore builds for `operation` on a probe key, learnt once."""
        with self._lock:
            if operation not in self._templates:
                self._templates[operation] = self._learn(operation)
            return self._templates[operation]

    def _learn(self, operation: str) -> tuple[str, dict]:
        seen: dict = {}
        events = self._client.meta.events
        probe = f"{PROBE_KEY}-{uuid.uuid4().hex}"  # the hooks touch this request only, not another thread's

        def before_sign(request, **_kwargs) -> None:
            if probe in request.url:
                seen["context"] = dict(request.context)

        def before_send(request, **_kwargs) -> None:
            if probe in request.url:
                seen["url"] = request.url
                raise _Stopped

        sign_event, send_event = f"before-sign.s3.{operation}", f"before-send.s3.{operation}"
        events.register(sign_event, before_sign, unique_id="modelreg-lean-sign")
        events.register_first(send_event, before_send, unique_id="modelreg-lean-send")
        try:
            if operation == "GetObject":
                self._client.get_object(Bucket=self._bucket, Key=probe)
            else:
                self._client.list_objects_v2(Bucket=self._bucket, Prefix=probe)
        except _Stopped:
            pass
        except (BotoCoreError, ClientError) as exc:  # e.g. no credentials: the client's path will say so
            raise LeanUnavailable(str(exc)) from exc
        finally:
            events.unregister(sign_event, unique_id="modelreg-lean-sign")
            events.unregister(send_event, unique_id="modelreg-lean-send")
        if "url" not in seen or "context" not in seen:
            raise LeanUnavailable(f"botocore built no {operation} request to learn from")
        url = seen["url"]
        if operation == "GetObject":
            encoded = percent_encode(probe, safe="/~")
            if not url.endswith("/" + encoded):
                raise LeanUnavailable(f"unexpected GetObject URL {url}")
            return url[:-len(encoded)], seen["context"]
        return url.partition("?")[0], seen["context"]

    def _send(self, operation: str, url: str, headers: dict[str, str], context: dict):
        request = AWSRequest(method="GET", url=url, headers=headers)
        request.context = dict(context)
        try:
            self._client._request_signer.sign(operation, request)
            prepared = request.prepare()
            prepared.stream_output = True
            return self._client._endpoint.http_session.send(prepared)
        except STALLS:
            raise
        except (BotoCoreError, ClientError, OSError, ValueError) as exc:
            raise LeanUnavailable(str(exc)) from exc

    def get(self, s3_key: str, limit: int) -> bytes:
        """The whole object at `s3_key` if it has at most `limit` bytes; `LeanUnavailable` otherwise
        (absent, too large, any error): ask the client then."""
        base, context = self._template("GetObject")
        url = base + percent_encode(s3_key, safe="/~")
        response = self._send("GetObject", url, {"Range": f"bytes=0-{limit}"}, context)
        length = response.headers.get("content-length", "")
        if response.status_code not in (200, 206) or not length.isdigit() or int(length) > limit:
            _finish(response, complete=False)
            raise LeanUnavailable(f"HTTP {response.status_code}, {length or 'unknown'} bytes",
                                  response.status_code)
        data = _body(response, url)
        if len(data) != int(length):
            raise LeanUnavailable(f"{len(data)} of {length} bytes arrived")
        return data

    def list_page(self, s3_prefix: str, token: str | None) -> ListPage:
        """One ListObjectsV2 page of the keys under `s3_prefix`, from `token` on (None: the first page)."""
        base, context = self._template("ListObjectsV2")
        query = {"list-type": "2", "prefix": s3_prefix, "encoding-type": "url"}
        if token is not None:
            query["continuation-token"] = token
        url = f"{base}?{percent_encode_sequence(query)}"
        response = self._send("ListObjectsV2", url, {}, context)
        body = _body(response, url)
        if response.status_code != 200:
            raise LeanUnavailable(f"HTTP {response.status_code}", response.status_code)
        return parse_list_page(body, response.headers.get("date"))


def parse_list_page(body: bytes, date_header: str | None) -> ListPage:
    """A ListObjectsV2 result document as a `ListPage`; `LeanUnavailable` for anything unexpected."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise LeanUnavailable(f"not XML: {exc}") from exc
    if _local(root.tag) != "ListBucketResult":
        raise LeanUnavailable(f"not a ListBucketResult but {root.tag}")
    fields: dict[str, str] = {}
    objects = []
    try:
        for element in root:
            name = _local(element.tag)
            if name == "Contents":
                item = {_local(child.tag): child.text or "" for child in element}
                objects.append((item["Key"], int(item["Size"]), item["ETag"],
                                datetime.fromisoformat(item["LastModified"])))
            else:
                fields[name] = element.text or ""
        if fields.get("EncodingType") == "url":
            objects = [(unquote_plus(key), size, etag, modified) for key, size, etag, modified in objects]
        truncated = fields["IsTruncated"].strip().lower()
        if truncated not in ("true", "false"):
            raise ValueError(f"IsTruncated {truncated!r}")
        next_token = fields["NextContinuationToken"] if truncated == "true" else None
        if next_token == "":
            raise ValueError("empty NextContinuationToken")
        server_time = parsedate_to_datetime(date_header) if date_header else None
    except (KeyError, ValueError, TypeError) as exc:
        raise LeanUnavailable(f"unexpected ListBucketResult: {exc}") from exc
    if any(modified.tzinfo is None for *_, modified in objects):
        raise LeanUnavailable("LastModified without a time zone")
    return ListPage(objects, server_time, next_token)


def _body(response, url: str) -> bytes:
    """The whole body of a streamed response; a stall is botocore's `ReadTimeoutError`, as from the client."""
    try:
        body = response.raw.read()
    except urllib3.exceptions.ReadTimeoutError as exc:
        _finish(response, complete=False)
        raise ReadTimeoutError(endpoint_url=url, error=exc) from exc
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        _finish(response, complete=False)
        raise LeanUnavailable(str(exc)) from exc
    _finish(response, complete=True)
    return body


def _finish(response, complete: bool) -> None:
    """Give the connection back to the pool after a whole body, else drop it (unread bytes would
    reach the next request)."""
    if complete:
        response.raw.release_conn()
    else:
        response.raw.close()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
