"""The storage contract for listing with sizes and ages, and for unfinished uploads.

Run against every backend on its real server (file://, SeaweedFS S3, OpenSSH sshd),
like tests/storage/test_contract.py, whose fixtures and leftover maker it reuses.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from modelreg.errors import RemoteError, UsageError
from modelreg.storage import open_storage
from modelreg.storage.base import ObjectInfo, UploadInfo
from tests.storage.test_contract import leave_unfinished_write, scheme

CLOCK_SLACK = 5.0
"""Seconds an age may differ from the test's own measure (S3 dates have one-second resolution)."""


@pytest.fixture
def storage(remote):
    with open_storage(remote) as opened:
        yield opened


def backdate(spec, key: str, seconds: float) -> None:
    """Make a file:// or SSH object (or temp file) look `seconds` older: the servers run here."""
    path = Path(urlsplit(spec.url).path).joinpath(*key.split("/"))
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)


def test_list_info_gives_each_key_with_its_size_and_a_fresh_age(storage):
    before = time.time()
    storage.write("blobs/sha256/ab/one", b"12345")
    storage.write("blobs/sha256/cd/two", b"")
    storage.write("models/m/v1/manifest.json", b"{}")

    infos = storage.list_info("blobs/")

    assert [(info.key, info.size) for info in infos] == [("blobs/sha256/ab/one", 5), ("blobs/sha256/cd/two", 0)]
    for info in infos:
        assert isinstance(info, ObjectInfo)
        assert 0 <= info.age < CLOCK_SLACK + (time.time() - before)
        assert abs(info.mtime - before) < CLOCK_SLACK + (time.time() - before)
    assert [info.key for info in storage.list_info("")] == storage.list("")
    assert [info.key for info in storage.list_info("blobs")] == [info.key for info in infos]
    assert storage.list_info("nothing/here") == []


def test_list_info_reports_the_age_of_an_old_object(storage, remote):
    storage.write("blobs/old", b"old bytes")
    if scheme(remote) == "s3":  # S3 objects cannot be backdated: let it age for real
        older, slack = 3.0, 1.5
        time.sleep(older)
    else:
        older, slack = 7200.0, CLOCK_SLACK
        backdate(remote, "blobs/old", older)
    storage.write("blobs/new", b"new")

    ages = {info.key: info.age for info in storage.list_info("blobs/")}

    assert older - slack < ages["blobs/old"] < older + slack
    assert ages["blobs/new"] < slack


def test_list_info_skips_unfinished_writes_which_list_uploads_reports(storage, remote, request):
    storage.write("blobs/sha256/ab/done", b"done")
    leave_unfinished_write(request, remote, "blobs/sha256/ab/half")

    uploads = storage.list_uploads("blobs/")

    assert [info.key for info in storage.list_info("blobs/")] == ["blobs/sha256/ab/done"]
    assert [upload.key for upload in uploads] == ["blobs/sha256/ab/half"]
    assert isinstance(uploads[0], UploadInfo)
    assert uploads[0].size == len(b"half of it")
    assert 0 <= uploads[0].age < CLOCK_SLACK
    assert uploads[0].upload_id
    assert storage.list_uploads("models/") == []


def test_list_uploads_finds_them_at_any_depth_and_remove_upload_removes_only_them(storage, remote,
                                                                                  request):
    storage.write("models/m/v1/manifest.json", b"{}")
    leave_unfinished_write(request, remote, "models/m/v2/manifest.json")
    leave_unfinished_write(request, remote, "blobs/sha256/ab/x")

    uploads = storage.list_uploads("")
    for upload in uploads:
        storage.remove_upload(upload)
        storage.remove_upload(upload)  # already gone: not an error

    assert [upload.key for upload in uploads] == ["blobs/sha256/ab/x", "models/m/v2/manifest.json"]
    assert storage.list_uploads("") == []
    assert storage.list("") == ["models/m/v1/manifest.json"]


def test_remove_upload_refuses_what_is_not_an_upload(storage, remote):
    storage.write("blobs/keep", b"precious")
    fake = UploadInfo(key="blobs/keep", upload_id="blobs/keep", size=8, age=1e9)

    if scheme(remote) == "s3":  # an id that names no upload: nothing aborted (SeaweedFS also refuses it)
        with contextlib.suppress(RemoteError):
            storage.remove_upload(fake)
    else:
        with pytest.raises(UsageError, match="not the temp file"):
            storage.remove_upload(fake)

    assert storage.stat("blobs/keep") == 8


def test_upload_ages_tell_old_from_young_leftovers(storage, remote, request):
    leave_unfinished_write(request, remote, "blobs/young")
    leave_unfinished_write(request, remote, "blobs/old")
    if scheme(remote) == "s3":
        time.sleep(3.5)  # S3 uploads cannot be backdated: let "old" age, then start "young" again
        for upload in storage.list_uploads("blobs/"):
            if upload.key == "blobs/young":
                storage.remove_upload(upload)
        leave_unfinished_write(request, remote, "blobs/young")
    else:
        old = next(upload for upload in storage.list_uploads("blobs/") if upload.key == "blobs/old")
        backdate(remote, old.upload_id, 3600)

    ages = {upload.key: upload.age for upload in storage.list_uploads("blobs/")}

    assert ages["blobs/old"] >= 2.0 > ages["blobs/young"]
    assert storage.remove_stale_uploads("blobs/old", older_than=2.0) == 1
    assert storage.remove_stale_uploads("blobs/young", older_than=2.0) == 0
    assert [upload.key for upload in storage.list_uploads("")] == ["blobs/young"]
