"""Large writes reach the file in slices (`modelreg.file_writes`): whole, in order, through every writer."""

from __future__ import annotations

import array
import io
import os

from modelreg.file_writes import WRITE_SLICE, SlicedWriter, open_sliced


class RecordingRaw(io.RawIOBase):
    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.sizes.append(len(b))
        self.data += b
        return len(b)


def test_a_large_write_reaches_the_file_in_slices_whole_and_in_order():
    raw = RecordingRaw()
    payload = os.urandom(3 * WRITE_SLICE + 12345)
    with SlicedWriter(raw) as out:
        assert out.write(payload) == len(payload)
        assert out.write(memoryview(payload)[:10]) == 10  # small writes are buffered as usual
        out.flush()
        assert bytes(raw.data) == payload + payload[:10]
        assert max(raw.sizes) <= WRITE_SLICE and len(raw.sizes) >= 4


def test_sliced_writes_take_any_buffer(tmp_path):
    numbers = array.array("i", range(WRITE_SLICE))  # 4-byte items: sliced by bytes, not items
    with open_sliced(tmp_path / "numbers") as out:
        assert out.write(numbers) == numbers.itemsize * len(numbers)
        out.write(bytearray(b"tail"))
    assert (tmp_path / "numbers").read_bytes() == numbers.tobytes() + b"tail"


def test_open_sliced_takes_over_a_descriptor(tmp_path):
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with open_sliced(fd) as out:
        out.write(b"x" * (WRITE_SLICE + 1))
    assert (tmp_path / "f").stat().st_size == WRITE_SLICE + 1
    try:
        os.fstat(fd)
        raise AssertionError("the descriptor was left open")
    except OSError:
        pass


def test_downloads_dest_copies_and_atomic_writes_write_in_slices(tmp_path, monkeypatch):
    from modelreg.local import atomic, materialize
    from modelreg.local.cache import open_new

    with open_new(tmp_path / "download") as handle:
        assert isinstance(handle, SlicedWriter)
    with materialize._create(tmp_path / "staged") as handle:
        assert isinstance(handle, SlicedWriter)
    seen = []
    real = atomic.open_sliced
    monkeypatch.setattr(atomic, "open_sliced", lambda fd: seen.append(fd) or real(fd))
    atomic.atomic_write(tmp_path / "record", b"data")
    assert seen and (tmp_path / "record").read_bytes() == b"data"
