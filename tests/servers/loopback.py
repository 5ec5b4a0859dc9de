"""Misbehaving network peers on free 127.0.0.1 ports, for the hardening tests.

- `SilentServer` accepts TCP connections and never sends a byte.
- `PlainHttpServer` is a web server that is not S3 (or SSH): every request gets an HTML 404.
- `RelayProxy` forwards to a real server, optionally throttled (bytes per second, each
  direction) or frozen (bytes stop flowing, connections stay open).

Plain classes run as context managers, with daemon threads; no pytest.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from modelreg.config import RemoteSpec


class SilentServer:
    """Accepts connections (the kernel completes the handshake) and never answers."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._accepted.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()
        for conn in self._accepted:
            conn.close()


class _NotFoundHandler(http.server.BaseHTTPRequestHandler):
    default_request_version = "HTTP/1.1"  # answer garbage (an SSH banner) with a status line, as nginx does

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


class PlainHttpServer:
    """`http.server` answering every request with an HTML 404, in a daemon thread."""

    def __init__(self) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFoundHandler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PlainHttpServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class RelayProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`, at most `rate` bytes/s each way when set.

    `freeze()` stops forwarding (connections stay open, nothing more arrives), like a
    link that went dead without a reset.
    """

    CHUNK = 16 * 1024

    def __init__(self, target: int, rate: float | None = None) -> None:
        self.target = target
        self.rate = rate
        self._frozen = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []

    def freeze(self) -> None:
        self._frozen.set()

    def __enter__(self) -> RelayProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()
        for conn in self._conns:
            try:
                conn.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self._conns += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(self.CHUNK)
                if not data:
                    break
                while self._frozen.is_set():
                    time.sleep(0.1)
                sink.sendall(data)
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def ssh_via(ssh_remote: RemoteSpec, sshd_server, port: int, tmp_path: Path) -> RemoteSpec:
    """`ssh_remote` reached through 127.0.0.1:`port` (a proxy, or an impostor), its host key trusted there."""
    known_hosts = tmp_path / f"known_hosts-{port}"
    known_hosts.write_text(sshd_server.known_hosts_line.replace(f"]:{sshd_server.port} ", f"]:{port} "))
    parts = urlsplit(ssh_remote.url)
    url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}").geturl()
    return RemoteSpec(url=url, options={**ssh_remote.options, "known_hosts": str(known_hosts)})


def s3_via(s3_remote: RemoteSpec, port: int) -> RemoteSpec:
    """`s3_remote` reached through 127.0.0.1:`port`."""
    return RemoteSpec(url=s3_remote.url, options={**s3_remote.options,
                                                   "endpoint_url": f"http://127.0.0.1:{port}"})
