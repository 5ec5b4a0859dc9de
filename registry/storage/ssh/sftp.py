"""paramiko's SFTP client, with a fast path for moving file contents.

paramiko spends more time per byte in Python than in cryptography: its channel
buffer moves every buffered byte each time its front is read, its SFTP reader wakes
for every SSH packet and copies each reply several times (bytes concatenation, slicing,
`Message` parsing). `BulkSFTPClient` keeps paramiko for everything else (open, stat,
rename, listdir...) and adds READ/WRITE/fsync requests that the pipeline sends and
whose replies it reads itself: one copy per payload, and a receive buffer that wakes
the reader once per reply.
"""

from __future__ import annotations

import collections
import errno
import struct

import paramiko
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout
from paramiko.sftp import (
    CMD_DATA,
    CMD_EXTENDED,
    CMD_READ,
    CMD_WRITE,
    SFTP_EOF,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
    SFTPError,
)

SAFE_REQUEST_SIZE = 32 * 1024
"""What every SFTP server accepts; used when the server does not state its limits."""
MAX_REQUEST_SIZE = 255 * 1024
"""OpenSSH's read limit; larger requests mean fewer round trips and fewer Python calls per byte."""
MAX_REPLY_SIZE = 4 * 1024 * 1024
FSYNC = b"fsync@openssh.com"


class BulkSFTPClient(paramiko.SFTPClient):
    """An SFTP session whose file contents move through `send_*` / `read_reply`.

    The caller owns the session while it uses these (no other thread reads replies);
    request ids come from paramiko's own counter, so they never collide with its requests.
    """

    read_size = SAFE_REQUEST_SIZE
    write_size = SAFE_REQUEST_SIZE

    @classmethod
    def start(cls, transport: paramiko.Transport, io_timeout: float) -> BulkSFTPClient:
        """Open the SFTP subsystem on a new channel (as `SFTPClient.from_transport`, with the fast buffer)."""
        channel = transport.open_session()
        channel.in_buffer = _ReplyBuffer()
        channel.settimeout(io_timeout)
        channel.invoke_subsystem("sftp")
        client = cls(channel)
        client.read_size, client.write_size = client._request_limits()
        return client

    def send_read(self, handle: bytes, offset: int, length: int) -> int:
        num = self._next_id()
        self.sock.sendall(struct.pack(f">IBII{len(handle)}sQI", 21 + len(handle), CMD_READ, num,
                                      len(handle), handle, offset, length))
        return num

    def send_write(self, handle: bytes, offset: int, data: bytes) -> int:
        num = self._next_id()
        header = struct.pack(f">IBII{len(handle)}sQI", 21 + len(handle) + len(data), CMD_WRITE, num,
                             len(handle), handle, offset, len(data))
        send_parts = getattr(self.sock, "send_parts", None)
        if send_parts is not None:  # an `ssh` process's pipe: no copy to join header and payload
            send_parts(header, data)
        else:
            self.sock.sendall(header + data)
        return num

    def send_fsync(self, handle: bytes) -> int:
        num = self._next_id()
        self.sock.sendall(struct.pack(f">IBII{len(FSYNC)}sI{len(handle)}s",
                                      13 + len(FSYNC) + len(handle), CMD_EXTENDED, num,
                                      len(FSYNC), FSYNC, len(handle), handle))
        return num

    def fsync(self, handle: bytes) -> None:
        """Have the server flush the file to disk (fsync@openssh.com); a server without it is not an error."""
        _kind, body = self.wait_reply(self.send_fsync(handle), {})
        try:
            check_status(body)
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise

    def wait_reply(self, num: int, received: dict[int, tuple[int, bytes]]) -> tuple[int, bytes]:
        """The (type, body) of the reply to `num`; replies to others read meanwhile go to `received`."""
        while num not in received:
            got, kind, body = self.read_reply()
            received[got] = (kind, body)
        return received.pop(num)

    def read_reply(self) -> tuple[int, int, bytes]:
        """The next reply: (request id, type, body after the id); a DATA body is the bare payload."""
        size, kind, num = struct.unpack(">IBI", self._read_all(9))
        if not 5 <= size <= MAX_REPLY_SIZE or (kind == CMD_DATA and size < 9):
            raise SFTPError("Garbage packet received")
        if kind == CMD_DATA:
            self._read_all(4)
            return num, kind, self._read_all(size - 9)
        return num, kind, self._read_all(size - 5)

    def _next_id(self) -> int:
        with self._lock:
            num = self.request_number
            self.request_number += 1
        return num

    def _read_all(self, n: int) -> bytes:
        """Exactly `n` bytes, joined once (paramiko grows a bytes object piece by piece)."""
        parts = []
        while n > 0:
            piece = self.sock.recv(n)
            if not piece:
                raise EOFError()
            parts.append(piece)
            n -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _request_limits(self) -> tuple[int, int]:
        """(max read, max write) payload sizes the server states via limits@openssh.com, capped."""
        try:
            _kind, msg = self._request(CMD_EXTENDED, "limits@openssh.com")
            _packet, read_length, write_length, _handles = (msg.get_int64() for _ in range(4))
        except (OSError, EOFError, paramiko.SSHException, struct.error):
            return SAFE_REQUEST_SIZE, SAFE_REQUEST_SIZE
        return (min(read_length, MAX_REQUEST_SIZE) if read_length else SAFE_REQUEST_SIZE,
                min(write_length, MAX_REQUEST_SIZE) if write_length else SAFE_REQUEST_SIZE)


def check_status(body: bytes) -> None:
    """Raise for a STATUS reply body that is not OK, as paramiko does: EOFError, or OSError (with an
    errno for the codes SFTP v3 distinguishes; a plain "Failure" has none)."""
    try:
        code, length = struct.unpack(">II", body[:8])
    except struct.error as exc:
        raise SFTPError("Malformed status reply") from exc
    if code == SFTP_OK:
        return
    text = body[8:8 + length].decode("utf-8", "replace")
    if code == SFTP_EOF:
        raise EOFError(text)
    if code == SFTP_NO_SUCH_FILE:
        raise OSError(errno.ENOENT, text)
    if code == SFTP_PERMISSION_DENIED:
        raise OSError(errno.EACCES, text)
    if code == SFTP_OP_UNSUPPORTED:
        raise OSError(errno.EOPNOTSUPP, text)
    raise OSError(text)


class _ChunkBuffer:
    """Received packets kept as they came; taking n bytes copies them once (not at all for a whole packet)."""

    def __init__(self) -> None:
        self._parts: collections.deque[bytes] = collections.deque()
        self._offset = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        if data:
            self._parts.append(bytes(data))
            self._size += len(data)

    def take(self, count: int) -> bytes:
        count = min(count, self._size)
        if count and self._offset == 0 and len(self._parts[0]) == count:
            self._size -= count
            return self._parts.popleft()
        pieces = []
        needed = count
        while needed:
            first = self._parts[0]
            available = len(first) - self._offset
            piece = memoryview(first)[self._offset:self._offset + min(available, needed)]
            pieces.append(piece)
            needed -= len(piece)
            if len(piece) == available:
                self._parts.popleft()
                self._offset = 0
            else:
                self._offset += len(piece)
        self._size -= count
        return b"".join(pieces)


class _ReplyBuffer(BufferedPipe):
    """paramiko's channel receive buffer, reworked for a reader that wants whole SFTP replies.

    - The stock buffer is an `array` whose front is cut off on every read, moving every
      byte still buffered; here packets stay as received and a read copies only what
      it returns.
    - A reader asking for n bytes sleeps until n are buffered (or the channel closes)
      instead of waking for each SSH packet (~32 KiB) of a 255 KiB reply. SFTP readers
      always want exactly n bytes, and n never exceeds the channel window.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffer = _ChunkBuffer()
        self._wanted = 1

    def feed(self, data: bytes) -> None:
        with self._lock:
            self._buffer.append(data)
            if len(self._buffer) >= self._wanted:
                if self._event is not None:
                    self._event.set()
                self._cv.notify_all()

    def read(self, nbytes: int, timeout: float | None = None) -> bytes:
        with self._lock:
            self._wanted = nbytes
            try:
                whole = self._cv.wait_for(lambda: len(self._buffer) >= nbytes or self._closed, timeout)
            finally:
                self._wanted = 1
            if not self._buffer:
                if self._closed:
                    return b""
                raise PipeTimeout()
            out = self._buffer.take(nbytes if whole else len(self._buffer))
            if not self._buffer and self._event is not None and not self._closed:
                self._event.clear()
            return out

    def empty(self) -> bytes:
        with self._lock:
            out = self._buffer.take(len(self._buffer))
            if self._event is not None and not self._closed:
                self._event.clear()
            return out
