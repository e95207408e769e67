"""A small HTTP proxy on 127.0.0.1 that forwards to an S3 endpoint and injects transient faults."""

from __future__ import annotations

import http.client
import itertools
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

THROTTLE = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")
INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
            b"<Message>We encountered an internal error.</Message></Error>")


class FaultProxy:
    """Every `every`-th request gets the next fault in turn: 500, 503 SlowDown, 503, a reset connection."""

    FAULTS = ("500", "throttle", "503", "reset")

    def __init__(self, upstream: str, every: int = 3, fail_after: int | None = None):
        """With `fail_after`, the endpoint answers 503 to every request after that many: it went away."""
        self.upstream = urlparse(upstream)
        self.every = every
        self.fail_after = fail_after
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self._count = itertools.count(1)
        self._faults = itertools.cycle(self.FAULTS)
        self._lock = threading.Lock()
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
                    if proxy.fail_after is not None:
                        fault = "503" if n > proxy.fail_after else None
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
                if fault:
                    status, payload = (503, THROTTLE) if fault == "throttle" else (int(fault), INTERNAL)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
