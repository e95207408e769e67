"""A small HTTP proxy on 127.0.0.1 that forwards to an S3 endpoint and injects transient faults."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlparse

THROTTLE = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")
INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
            b"<Message>We encountered an internal error.</Message></Error>")


def _fill_backlog(listener: socket.socket) -> list[socket.socket]:
    """Shrinks the listen queue to nothing and fills it, so the kernel drops every further SYN: a new
    connection then hangs in connect() as it does towards an endpoint that has gone silent."""
    listener.listen(0)
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.settimeout(0.2)
        try:
            filler.connect(listener.getsockname())
        except OSError:
            filler.close()
            break
        fillers.append(filler)
    return fillers


@contextlib.contextmanager
def hung_endpoint() -> Iterator[str]:
    """An endpoint URL on 127.0.0.1 whose every connect hangs: nothing ever accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    fillers = _fill_backlog(listener)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        for s in fillers:
            s.close()
        listener.close()


class FaultProxy:
    """Every `every`-th request gets the next of `faults` in turn. Faults:

    500, throttle (503 SlowDown), 503, reset (the connection is reset), hold (no answer for `hold_seconds`,
    then the connection is dropped: past the client's read timeout), hang (the request is answered, then for
    `hang_seconds` no new connection gets past connect(): the listen queue is full and nobody accepts).
    """

    FAULTS = ("500", "throttle", "503", "reset")

    def __init__(self, upstream: str, every: int = 3, fail_after: int | None = None, *,
                 faults: tuple[str, ...] = FAULTS, fail_with: str = "503", hold_seconds: float = 2.0,
                 hang_seconds: float = 1.0, hold_paths: str | None = None):
        """With `fail_after`, the endpoint answers every request after that many with `fail_with`: it went away.
        With `hold_paths`, every request whose path ends so is held (and only those get a fault)."""
        self.upstream = urlparse(upstream)
        self.every = every
        self.fail_after = fail_after
        self.fail_with = fail_with
        self.hold_seconds = hold_seconds
        self.hang_seconds = hang_seconds
        self.hold_paths = hold_paths
        # A hang only bites a new connection, so with hangs about every answer closes its connection.
        self.keep_alive = "hang" not in faults and fail_with != "hang"
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self._count = itertools.count(1)
        self._faults = itertools.cycle(faults)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._serving: threading.Thread | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    n = next(proxy._count)
                    if proxy.hold_paths is not None:
                        fault = "hold" if self.path.split("?")[0].endswith(proxy.hold_paths) else None
                    elif proxy.fail_after is not None:
                        fault = proxy.fail_with if n > proxy.fail_after else None
                    else:
                        fault = next(proxy._faults) if n % proxy.every == 0 else None
                    if fault:
                        proxy.injected[fault] += 1
                    else:
                        proxy.forwarded += 1
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return
                if fault == "hold":
                    proxy._closing.wait(proxy.hold_seconds)
                    self.close_connection = True
                    return
                if fault in ("500", "503", "throttle"):
                    status, payload = (503, THROTTLE) if fault == "throttle" else (int(fault), INTERNAL)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self._end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if fault == "hang":
                    # Before the answer, so the client's next connect is sure to meet the full queue.
                    proxy._hang_connects()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                # A HEAD answer has no body, but says how long the object's is.
                length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self._end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _end_headers(self):
                if not proxy.keep_alive:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _serve(self) -> None:
        self._serving = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                         daemon=True)
        self._serving.start()

    def _hang_connects(self) -> None:
        self.server.shutdown()
        fillers = _fill_backlog(self.server.socket)

        def resume():
            self._closing.wait(self.hang_seconds)
            for s in fillers:
                s.close()
            with self._lock:
                if not self._closing.is_set():
                    self.server.socket.listen(self.server.request_queue_size)
                    self._serve()

        threading.Thread(target=resume, daemon=True).start()

    def __enter__(self) -> FaultProxy:
        self._serve()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._closing.set()
        self.server.shutdown()
        self.server.server_close()
