"""The S3 backend's lean requests (`modelreg.storage.s3.lean`) answer as boto3 does, or hand over to it.

Against the session's SeaweedFS, except the addressing tests, which only learn the URL
botocore would use (no request is sent).
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from modelreg.config import RemoteSpec
from modelreg.errors import RemoteError
from modelreg.layout import version_key
from modelreg.manifest import FileEntry, Manifest
from modelreg.remote.scan import scan_remote
from modelreg.storage.s3.backend import S3Storage, parse_s3_url
from modelreg.storage.s3.lean import LeanUnavailable, parse_list_page
from modelreg.storage.s3.listing import _list_lean, list_objects
from tests.servers.s3 import S3Keys, use_s3_keys

ODD_KEYS = ["plain", "with space", "plus+sign", "percent%41", "amp&lt;<>", "ünïcödé/ß", "tilde~x", "q?x=1#f",
            "dir/nested/deep", "trailing."]


@pytest.fixture
def storage(s3_remote: RemoteSpec):
    with S3Storage(s3_remote) as store:
        yield store


def listed(infos) -> list[tuple]:
    return [(info.key, info.size, info.etag, info.mtime) for info in infos]


@pytest.mark.s3
def test_lean_listing_matches_boto3_for_odd_keys_and_several_pages(storage, seaweed, s3_remote):
    bucket, prefix = parse_s3_url(s3_remote.url)
    client = seaweed.client()
    keys = [f"odd/{key}" for key in ODD_KEYS] + [f"odd/many/{n:04d}" for n in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=f"{prefix}/{key}",
                                                    Body=key.encode()), keys))
    assert storage._lean is not None
    lean = _list_lean(storage._lean, storage.prefix, "odd")
    by_boto3 = list_objects(storage._client, storage.bucket, storage.prefix, "odd")
    assert listed(lean) == listed(by_boto3)
    assert [info.key for info in lean] == sorted(keys)
    assert all(info.etag and info.etag.startswith('"') for info in lean)
    assert listed(storage.list_info("odd")) == listed(by_boto3)


@pytest.mark.s3
def test_fetch_small_reads_whole_objects_and_hands_the_rest_to_read(storage):
    storage.write("small/a", b"abc")
    storage.write("small/empty", b"")
    assert storage.fetch_small("small/a", 10) == b"abc"
    assert storage.fetch_small("small/a", 3) == b"abc"
    assert storage.fetch_small("small/a", 2) is None  # larger than the limit: read() says so
    assert storage.fetch_small("small/missing", 10) is None  # absent: read() raises NotFound
    assert storage.fetch_small("small/empty", 10) in (b"", None)
    assert storage._lean is not None  # none of these gives the lean path up
    assert storage.fetch_small("small/a", 10) == b"abc"


@pytest.mark.s3
def test_a_refused_get_hands_over_to_boto3_and_its_message(storage, s3_remote, seaweed, monkeypatch):
    storage.write("secret", b"x")
    use_s3_keys(monkeypatch, S3Keys(seaweed.list_only.access_key, seaweed.list_only.secret_key))
    with S3Storage(s3_remote) as lister:
        assert lister.fetch_small("secret", 10) is None
        assert lister._lean is None  # a refusal would repeat for every key
        with pytest.raises(RemoteError, match="access denied"):
            lister.read("secret", io.BytesIO())


@pytest.mark.s3
def test_a_listing_the_lean_path_cannot_read_is_repeated_through_boto3(storage, monkeypatch):
    storage.write("keep/a", b"a")

    def unavailable(*_args, **_kwargs):
        raise LeanUnavailable("test")

    monkeypatch.setattr(storage._lean, "list_page", unavailable)
    assert [info.key for info in storage.list_info("keep")] == ["keep/a"]


@pytest.mark.parametrize(("options", "get_base", "list_base"), [
    ({"endpoint_url": "https://s3.example.test", "addressing_style": "virtual"},
     "https://my-bucket.s3.example.test/", "https://my-bucket.s3.example.test/"),
    ({"endpoint_url": "https://s3.example.test:8443"},
     "https://s3.example.test:8443/my-bucket/", "https://s3.example.test:8443/my-bucket"),
    ({"region": "eu-west-1"},
     "https://my-bucket.s3.eu-west-1.amazonaws.com/", "https://my-bucket.s3.eu-west-1.amazonaws.com/"),
])
def test_lean_requests_use_the_url_botocore_resolves(monkeypatch, options, get_base, list_base):
    use_s3_keys(monkeypatch, S3Keys("AKIDEXAMPLE", "not-a-secret"))
    with S3Storage(RemoteSpec(url="s3://my-bucket/root", options=options)) as store:
        assert store._lean is not None
        assert store._lean._template("GetObject")[0] == get_base
        assert store._lean._template("ListObjectsV2")[0] == list_base


def test_a_list_page_it_does_not_understand_is_unavailable_not_misread():
    good = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated><Contents><Key>a%20b%2Bc</Key>"
            b"<LastModified>2026-01-02T03:04:05.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>3</Size>"
            b"</Contents></ListBucketResult>")
    page = parse_list_page(good, "Fri, 02 Jan 2026 03:04:06 GMT")
    assert [(key, size, etag) for key, size, etag, _ in page.objects] == [("a b+c", 3, '"e"')]
    assert page.next_token is None
    for bad in (b"<Error><Code>AccessDenied</Code></Error>", b"not xml",
                good.replace(b"<IsTruncated>false", b"<IsTruncated>true"),  # no continuation token
                good.replace(b"<Size>3</Size>", b""),
                good.replace(b".000Z", b"")):  # a time without a zone
        with pytest.raises(LeanUnavailable):
            parse_list_page(bad, None)


@pytest.mark.s3
def test_missing_bucket_through_the_lean_path_is_still_named(s3_remote):
    with S3Storage(replace(s3_remote, url="s3://modelreg-no-such-bucket/reg")) as store:
        assert store.fetch_small("k", 10) is None
        with pytest.raises(RemoteError, match="bucket does not exist"):
            store.list_info("")


@pytest.mark.s3
def test_scan_of_a_remote_needs_neither_boto3_reads_nor_its_paginator(storage, tmp_path, monkeypatch):
    """The lean path serves a whole `list` on a plain S3 server: were it lost (say a botocore
    upgrade changed the URL it learns), lists would still work, only slowly; this says so."""
    for version in ("v1", "v2"):
        storage.write(version_key("emotion", version), Manifest(
            name="emotion", version=version, files=(FileEntry("w.bin", "weights", 1, "ab" * 32),),
            model={"family": "files", "input_shape": [], "labels": ["a"], "hyperparameters": {}},
            provenance={"modelreg_version": "test"}).to_bytes())

    def refused(*_args, **_kwargs):
        raise AssertionError("boto3 was used")

    monkeypatch.setattr(storage, "read", refused)
    monkeypatch.setattr(storage._client, "get_paginator", refused)
    scan = scan_remote(storage, tmp_path / "cache")
    assert [found.manifest.version for found in scan.versions] == ["v1", "v2"] and scan.broken == []
    assert scan.fetched == 2
