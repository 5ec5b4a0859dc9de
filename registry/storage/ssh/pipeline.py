"""Fast SFTP transfers of one file: many requests in flight, over one or more connections.

paramiko's own `SFTPFile` pipelining stops to collect every outstanding reply each
~100 writes, and its prefetch splits reads into 32 KiB requests. Here each connection
keeps `DEPTH` requests of up to the server's limit (255 KiB on OpenSSH) in flight
through `BulkSFTPClient`, and a large file may be shared between several connections
by offset (writing one file at different offsets from several SFTP handles is legal).
Downloads reach the sink strictly in order, from the caller's thread, while a worker
thread receives: hashing and writing the sink (which release the GIL) overlap with
paramiko's packet handling (which holds it). Out-of-order data waits in a bounded
buffer (`MAX_AHEAD`).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import paramiko
from paramiko.sftp import CMD_DATA, CMD_STATUS

from modelreg.hashing import Progress
from modelreg.storage.base import Cancelled, Sink
from modelreg.storage.ssh.sessions import SessionPool, SFTPSession
from modelreg.storage.ssh.sftp import check_status

log = logging.getLogger(__name__)

DEPTH = 16
"""Requests each connection keeps in flight."""
MAX_AHEAD = 32 * 1024 * 1024
"""Bytes a download may fetch beyond what the sink has taken (memory bound)."""
MIN_BYTES_PER_STREAM = 4 * 1024 * 1024
NEW_CONNECTION_MIN_BYTES = 64 * 1024 * 1024
"""Below this, extra streams use only idle pooled connections: a new SSH handshake costs
more than it saves on a file that moves in a fraction of a second."""
FLUSH_EVERY = 64 * 1024 * 1024
"""While a faster connection writes a file (`Takeover`), the retired first connection has the
server flush the file (fsync@openssh.com) each time this many more bytes were acknowledged."""


class ResumePastEnd(Exception):
    """A read asked to start beyond the end of the remote file."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the file has only {size} bytes")
        self.size = size


def _await(session: SFTPSession, received: dict[int, tuple[int, bytes]], num: int) -> tuple[int, bytes]:
    """The reply to request `num` (see `BulkSFTPClient.wait_reply`); a failure marks the session broken."""
    try:
        return session.sftp.wait_reply(num, received)
    except BaseException:
        session.broken = True
        raise


@dataclass(eq=False)
class _Job:
    """One file being moved: the next offset to claim, received data, the first error."""

    start: int
    end: int
    chunk: int
    max_ahead: int | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)
    next: int = 0
    taken: int = 0
    done: int = 0
    active: int = 0
    cancelled: bool = False
    error: BaseException | None = None
    results: dict[int, bytes] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    """The storage's cancellation: once set, the next claim raises `Cancelled`."""
    retire: threading.Event = field(default_factory=threading.Event)
    """Set when a faster connection took over (`Takeover`): the first connection stops claiming."""

    def __post_init__(self) -> None:
        self.next = self.taken = self.start

    def claim(self, block: bool) -> tuple[int, int] | None:
        """The next (offset, length) to move, or None when done, cancelled or too far ahead (non-blocking)."""
        with self.cond:
            while True:
                if self.stop.is_set():
                    raise Cancelled("SFTP transfer cancelled")
                if self.cancelled or self.next >= self.end:
                    return None
                if self.max_ahead is None or self.next - self.taken < self.max_ahead:
                    break
                if not block:
                    return None
                self.cond.wait(0.25)
            offset, length = self.next, min(self.chunk, self.end - self.next)
            self.next += length
            return offset, length

    def deliver(self, offset: int, data: bytes) -> None:
        with self.cond:
            self.results[offset] = data
            self.cond.notify_all()

    def report(self, count: int) -> None:
        with self.cond:
            self.done += count
            self.cond.notify_all()

    def take(self, offset: int) -> bytes:
        """The data received for `offset`, waiting for it; raises the first worker error."""
        with self.cond:
            while offset not in self.results:
                if self.error is not None:
                    raise self.error
                if self.active == 0:
                    raise EOFError(f"no connection delivered offset {offset}")
                self.cond.wait()
            data = self.results.pop(offset)
            self.taken = offset + len(data)
            self.cond.notify_all()
            return data

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            if self.error is None:
                self.error = exc
            self.cancelled = True
            self.cond.notify_all()

    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()


def _read_worker(session: SFTPSession, handle: bytes, job: _Job,
                 deliver: Callable[[int, bytes], object], retire: threading.Event | None = None) -> None:
    """Fetch claimed ranges with DEPTH reads in flight; deliver each in the order of its offset.

    Once `retire` is set, no new range is claimed: the requests in flight are finished.
    """
    sftp = session.sftp
    received: dict = {}
    pending: collections.deque = collections.deque()
    try:
        while True:
            while len(pending) < DEPTH and not (retire is not None and retire.is_set()) and (
                    claim := job.claim(block=not pending)):
                offset, length = claim
                pending.append((sftp.send_read(handle, offset, length), offset, length))
            if not pending:
                return
            num, offset, length = pending.popleft()
            kind, data = _await(session, received, num)
            if kind != CMD_DATA:
                check_status(data)
                raise EOFError(f"unexpected SFTP reply {kind} to a read")
            if not data:
                raise EOFError(f"empty read at offset {offset}")
            if len(data) < length:
                rest = offset + len(data), length - len(data)
                pending.appendleft((sftp.send_read(handle, *rest), *rest))
            deliver(offset, data)
    finally:
        _drain(session, received, [num for num, *_ in pending], job)


def _write_worker(session: SFTPSession, handle: bytes, job: _Job,
                  read_source: Callable[[int, int], bytes], report: Callable[[int], None],
                  retire: threading.Event | None = None) -> None:
    """Write claimed ranges with DEPTH writes in flight; report each acknowledged one (`retire`
    as for `_read_worker`)."""
    sftp = session.sftp
    received: dict = {}
    pending: collections.deque = collections.deque()
    try:
        while True:
            while len(pending) < DEPTH and not (retire is not None and retire.is_set()) and (
                    claim := job.claim(block=False)):
                offset, length = claim
                pending.append((sftp.send_write(handle, offset, read_source(offset, length)), length))
            if not pending:
                return
            num, length = pending.popleft()
            kind, body = _await(session, received, num)
            if kind != CMD_STATUS:
                raise EOFError(f"unexpected SFTP reply {kind} to a write")
            check_status(body)
            report(length)
    finally:
        _drain(session, received, [num for num, _ in pending], job)


def _drain(session: SFTPSession, received: dict[int, tuple[int, bytes]], nums: list[int], job: _Job) -> None:
    """Collect the replies still owed so the connection can serve the next caller.

    Not after a cancellation: on a slow link that could take as long as the transfer,
    so the session is marked broken instead (closed when released; the caller's
    clean-up, such as removing an upload's temp file, then uses a fresh connection).
    """
    if job.stop.is_set():
        session.broken = True
    if session.broken:
        return
    try:
        for num in nums:
            _await(session, received, num)
    except Exception:  # the session is marked broken; the original error is what matters
        log.debug("could not drain SFTP replies", exc_info=True)


Takeover = Callable[[], "tuple[SFTPSession, paramiko.SFTPFile, Callable[[], None]] | None"]
"""Opens a faster connection to the same file (an `ssh` process, `openssh`), blocking while it
starts: (session, the file opened on it, release) or None. Run in its own thread while the first
connection already moves data; once it is there, the first connection stops claiming ranges
and it moves the rest. `release` closes the file and hands the session back."""


def _stream_count(size: int, pool: SessionPool, max_streams: int) -> int:
    """How many connections are worth using for `size` bytes."""
    return max(1, min(max_streams, pool.limit, size // MIN_BYTES_PER_STREAM))


def read_file(first: SFTPSession, handle: paramiko.SFTPFile, expected: paramiko.SFTPAttributes, path: str,
              start: int, sink: Sink, *, pool: SessionPool, max_streams: int,
              stop: threading.Event | None = None, takeover: Takeover | None = None,
              takeover_first: bool = False) -> None:
    """Write the open remote file's bytes from `start` on into `sink`, in order, from this thread.

    `expected` are the attributes of `handle` (`handle.stat()`). A large file is fetched
    over up to `max_streams` connections; an extra connection joins only if the file it
    opens has the same size and mtime (the same version); with `takeover`, a faster
    connection takes over once it is up (see `Takeover`). Raises `ResumePastEnd` when
    `start` is beyond the end of the file, `Cancelled` soon after `stop` is set.
    """
    end = expected.st_size or 0
    if start > end:
        raise ResumePastEnd(end)
    stop = stop or threading.Event()
    streams = _stream_count(end - start, pool, max_streams)
    if streams <= 1 and takeover is None:
        _read_worker(first, handle.handle, _Job(start, end, first.sftp.read_size, stop=stop),
                     lambda _offset, data: sink.write(data))
        return
    job = _Job(start, end, first.sftp.read_size, max_ahead=MAX_AHEAD, stop=stop)

    def extra_handle(session: SFTPSession) -> paramiko.SFTPFile | None:
        other = session.sftp.open(path, "rb")
        attrs = other.stat()
        if (attrs.st_size, attrs.st_mtime) != (expected.st_size, expected.st_mtime):
            other.close()
            return None
        return other

    def consume() -> None:
        offset = start
        while offset < end:
            data = job.take(offset)
            sink.write(data)
            offset += len(data)

    _run_streams(job, first, handle, pool, streams, extra_handle,
                 lambda session, h, retire=None: _read_worker(session, h.handle, job, job.deliver, retire),
                 consume, takeover, takeover_first)


def write_file(first: SFTPSession, handle: paramiko.SFTPFile, path: str, size: int,
               read_source: Callable[[int, int], bytes], progress: Progress | None, *,
               pool: SessionPool, max_streams: int, stop: threading.Event | None = None,
               takeover: Takeover | None = None, takeover_first: bool = False) -> None:
    """Write `size` bytes from `read_source(offset, length)` into the open remote file at `path`.

    A large file is written over up to `max_streams` connections, each through its own handle;
    with `takeover`, a faster connection takes over once it is up (see `Takeover`). Raises
    `Cancelled` soon after `stop` is set.
    """
    report = progress or (lambda _count: None)
    job = _Job(0, size, first.sftp.write_size, stop=stop or threading.Event())
    streams = _stream_count(size, pool, max_streams)
    if streams <= 1 and takeover is None:
        _write_worker(first, handle.handle, job, read_source, report)
        return

    def consume() -> None:
        reported, finished = 0, False
        while not finished:
            with job.cond:
                while job.active and job.error is None and job.done == reported:
                    job.cond.wait(0.25)
                done, finished, error = job.done, not job.active, job.error
            if error is not None:
                raise error
            if progress and done > reported:
                progress(done - reported)
            reported = done

    _run_streams(job, first, handle, pool, streams,
                 lambda session: session.sftp.open(path, "r+"),
                 lambda session, h, retire=None: _write_worker(session, h.handle, job, read_source, job.report,
                                                               retire),
                 consume, takeover, takeover_first, flush_behind=True)


def _run_streams(job: _Job, first: SFTPSession, handle: paramiko.SFTPFile, pool: SessionPool,
                 streams: int, open_extra: Callable[[SFTPSession], paramiko.SFTPFile | None],
                 work: Callable[..., None], consume: Callable[[], None],
                 takeover: Takeover | None = None, takeover_first: bool = False,
                 flush_behind: bool = False) -> None:
    """Run `work` on the first connection and on up to `streams - 1` extra ones while this thread consumes.

    Extra connections are optional: one that cannot be had (pool busy, connect or
    open failure) is skipped. A failure of a connection at work fails the whole job.
    A `takeover` runs in a thread of its own that this call does not wait for unless it
    joined the work (a slow start must not hold up a transfer that finished without it);
    with `takeover_first`, the first connection starts only once the takeover joined or
    gave up (for tests: every byte then moves over the faster connection). With
    `flush_behind` (writes), the first connection, once retired, flushes the file behind
    the faster one (`_flush_behind`).
    """

    def run(session: SFTPSession, file: paramiko.SFTPFile, retire: threading.Event | None = None) -> None:
        try:
            work(session, file, retire)
        except BaseException as exc:
            job.fail(exc)

    joined = threading.Event()
    decided = threading.Event()
    taken_over = threading.Event()

    def run_takeover() -> None:
        assert takeover is not None
        got = None
        try:
            got = takeover()
            if got is None:
                return
            with job.cond:
                if job.cancelled or job.next >= job.end:
                    return
                job.active += 1
                joined.set()
                job.retire.set()
            decided.set()
            try:
                run(got[0], got[1])
            finally:
                _finish()
        except Exception:  # the faster connection is optional: the first one carries on
            log.debug("no faster SFTP connection", exc_info=True)
        finally:
            decided.set()
            if got is not None:
                got[2]()
            taken_over.set()

    def run_extra() -> None:
        session = None if job.cancelled else pool.try_acquire(
            connect=job.end - job.start >= NEW_CONNECTION_MIN_BYTES)
        file = None
        try:
            if session is not None:
                file = open_extra(session)
            if session is not None and file is not None:
                run(session, file)
        except Exception:  # an extra connection is optional: the others carry on
            log.debug("extra SFTP stream unavailable", exc_info=True)
        finally:
            if file is not None and session is not None and session.usable:
                _close_quietly(file)
            if session is not None:
                pool.release(session)
            _finish()

    def run_first() -> None:
        try:
            run(first, handle, job.retire if takeover is not None else None)
            if flush_behind and job.retire.is_set():
                _flush_behind(first, handle, job)
        finally:
            _finish()

    def _finish() -> None:
        with job.cond:
            job.active -= 1
            job.cond.notify_all()

    job.active = streams
    if takeover is not None:
        threading.Thread(target=run_takeover, name="modelreg-sftp-takeover", daemon=True).start()
        if takeover_first:
            decided.wait()
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="modelreg-sftp") as executor:
        executor.submit(run_first)
        for _ in range(streams - 1):
            executor.submit(run_extra)
        try:
            consume()
        except BaseException:
            job.cancel()
            raise
        finally:
            if joined.is_set():
                taken_over.wait()


def _flush_behind(session: SFTPSession, handle: paramiko.SFTPFile, job: _Job) -> None:
    """Until the other connections finish, fsync the file each `FLUSH_EVERY` acknowledged bytes.

    An fsync covers every write the server acknowledged, whichever connection (and SFTP
    server process) made it, and this connection is idle once retired: the disk then
    writes the file while it is still arriving, and the caller's final fsync waits only
    for the tail (504 MB push over the `ssh` process: the final fsync took ~0.4 s). Best
    effort: the first failure (a server without fsync@openssh.com included) ends it; the
    final fsync is the one that counts.
    """
    flushed = job.start
    while True:
        with job.cond:
            while (job.error is None and not job.cancelled and not job.stop.is_set() and job.active > 1
                   and job.done - flushed < FLUSH_EVERY):
                job.cond.wait(0.25)
            if job.error is not None or job.cancelled or job.stop.is_set() or job.active <= 1:
                return
            reached = job.done
        try:
            _kind, body = _await(session, {}, session.sftp.send_fsync(handle.handle))
            check_status(body)
        except Exception:  # a broken session is marked so; the final fsync reports what matters
            log.debug("could not flush the file behind the writer", exc_info=True)
            return
        flushed = reached


def _close_quietly(file: paramiko.SFTPFile) -> None:
    try:
        file.close()
    except Exception:
        log.debug("could not close an SFTP handle", exc_info=True)
