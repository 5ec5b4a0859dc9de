"""Writing a large download without keeping all of it in memory: the written ranges of the cache's
copy are flushed and dropped from the page cache behind the writer.

A pull with `--dest` writes every byte twice, into the cache and into DEST. Left in the
page cache, both copies take fresh memory, which on a VM whose host takes back free
memory costs more than the transfer (measured in `make bench`'s machine: a 1.5 GB pull
with `--dest` took 6.8-10.4 s, 5-9 s of it system time; with this, 3.4-4.0 s; `aws s3
cp` 4.5-6.2 s). The cache's copy is not read again soon (the user works from DEST), so
`DropBehind` starts writeback of each 16 MiB window as soon as it is written
(`sync_file_range`, asynchronous), and drops the window `LAG` windows behind it
(`posix_fadvise(DONTNEED)`, which frees the pages already on disk): its memory is
recycled for the next windows instead of growing with the file.

It never waits for the disk. It first did (a blocking `sync_file_range` of the window
before, then the drop), which tied the pull to the disk's pace: 504 MB from S3 took
2.92 s median against 1.97 s without the wait (alternating, 8 rounds each; `aws s3 cp`
2.43 s), and the 1.5 GB pull was no slower without it (5.8 s against 6.1 s). Pages
not yet written when their window is dropped simply stay cached until the kernel
reclaims them.

Best effort: where `sync_file_range` is missing (not Linux) or fails, it does nothing
from then on. It changes no byte and no promise: the cache never relied on fsync, and
a blob is only published after its size and digest were checked.
"""

from __future__ import annotations

import os
import sys

WINDOW = 16 * 1024 * 1024
LAG = 4
"""Windows between the one being written back and the one dropped (64 MiB: time for the disk)."""
_WRITE = 2  # SYNC_FILE_RANGE_WRITE: start writeback, do not wait


def _load_sync_file_range():
    """libc's `sync_file_range` (Linux), or None. ctypes is imported here, by the first large
    download: 5 ms that a pull of small files does without. The symbol is looked up in the
    process itself (`CDLL(None)`: the interpreter is linked against libc), not through
    `ctypes.util.find_library`, which runs `ldconfig -p` in a subprocess mid-transfer."""
    if not sys.platform.startswith("linux") or not hasattr(os, "posix_fadvise"):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_sync_file_range = None
_loaded = False


def _syscall():
    global _sync_file_range, _loaded
    if not _loaded:
        _sync_file_range, _loaded = _load_sync_file_range(), True
    return _sync_file_range


class DropBehind:
    """Tell it, after each write, up to which file offset the bytes have reached the file descriptor."""

    def __init__(self, fd: int, start: int = 0) -> None:
        self._fd = fd
        self._submitted = start - start % WINDOW
        """Windows below this offset have had their writeback started."""
        self._enabled = True

    def written(self, position: int) -> None:
        """Start writeback of each whole window below `position`; drop what is on disk `LAG` windows back."""
        while self._enabled and position - self._submitted >= WINDOW:
            sync_file_range = _syscall()
            if sync_file_range is None:
                self._enabled = False
                return
            window = self._submitted
            if sync_file_range(self._fd, window, WINDOW, _WRITE) != 0:
                self._enabled = False
                return
            if window >= LAG * WINDOW:
                os.posix_fadvise(self._fd, window - LAG * WINDOW, WINDOW, os.POSIX_FADV_DONTNEED)
            self._submitted = window + WINDOW
