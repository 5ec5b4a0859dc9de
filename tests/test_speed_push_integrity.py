"""Push hashes the bytes it sends instead of re-reading each blob first, and keeps the guarantee:
a cached blob altered after it was cached is refused before anything is published."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from modelreg.errors import DigestMismatch
from modelreg.hashing import HashingReader, hash_bytes
from modelreg.layout import blob_key, version_key
from modelreg.local.cache import Cache
from modelreg.storage import open_storage
from tests.helpers import make_bundle, register_remote, run_cli

EXIT_VERIFY = 3
BIG = 20 * 1024 * 1024
"""Above S3's multipart threshold and large enough for SSH to spread it over two connections."""


def flip_a_byte(path: Path, offset: int) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("size", [300_000, BIG], ids=["small", "multipart"])
def test_push_refuses_a_cached_blob_altered_after_caching(size, settings, remote, tmp_path):
    bundle = make_bundle(settings, "v9", {"weights.h5": os.urandom(size), "labels.npy": b"labels"},
                         tmp_path)
    entry = next(e for e in bundle.files if e.path == "weights.h5")
    flip_a_byte(Cache(settings.cache_dir).blob_path(entry.sha256), size // 2)
    target = register_remote(settings, remote)
    result = run_cli("push", "v9", "--remote", target, expect=EXIT_VERIFY)
    assert "cached copy of weights.h5" in result.stderr and "not published" in result.stderr
    with open_storage(remote) as storage:
        assert storage.stat(version_key("emotion", "v9")) is None
        assert storage.stat(blob_key(entry.sha256)) is None
        assert not [key for key in storage.list("") if key.startswith("models/")]


def test_push_of_good_blobs_still_round_trips_a_multipart_blob(settings, remote, tmp_path, monkeypatch):
    data = os.urandom(BIG)
    make_bundle(settings, "v9", {"weights.h5": data}, tmp_path)
    target = register_remote(settings, remote)
    run_cli("push", "v9", "--remote", target)
    monkeypatch.setenv("MODELREG_CACHE", str(tmp_path / "fresh"))
    dest = tmp_path / "dest"
    run_cli("pull", "v9", "--remote", target, "--dest", str(dest))
    assert hash_bytes((dest / "weights.h5").read_bytes()) == hash_bytes(data)


def mismatch(actual: str) -> DigestMismatch:
    return DigestMismatch(path="f", expected="e", actual=actual, expected_size=0, actual_size=0,
                          where="test", outcome="", fix="", source="cache")


def test_hashing_reader_hashes_ranges_read_out_of_order(tmp_path):
    data = os.urandom(1_000_003)
    path = tmp_path / "blob"
    path.write_bytes(data)
    ranges = [(offset, 4096) for offset in range(0, len(data), 4096)]
    random.Random(7).shuffle(ranges)
    with HashingReader(path, hash_bytes(data), len(data), mismatch) as reader:
        pieces = {offset: reader.read_at(offset, length) for offset, length in ranges}
    assert reader.complete
    assert b"".join(pieces[offset] for offset in sorted(pieces)) == data


def test_hashing_reader_refuses_the_last_read_of_altered_bytes(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"a" * 10_000)
    with HashingReader(path, hash_bytes(b"b" * 10_000), 10_000, mismatch) as reader:
        assert reader.read(6000) == b"a" * 6000
        with pytest.raises(DigestMismatch):
            reader.read(6000)
    assert not reader.complete


def test_hashing_reader_refuses_a_second_read_of_a_range(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"a" * 100)
    with HashingReader(path, hash_bytes(b"a" * 100), 100, mismatch) as reader:
        reader.read_at(0, 50)
        with pytest.raises(RuntimeError, match="read twice"):
            reader.read_at(0, 50)


def test_hashing_reader_refuses_a_truncated_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"a" * 50)
    with HashingReader(path, hash_bytes(b"a" * 100), 100, mismatch) as reader, pytest.raises(DigestMismatch):
        reader.read(100)
