"""A local S3-compatible endpoint on 127.0.0.1 (the moto server), for the demo and single-machine runs.

moto's own server (Werkzeug's development server) closes the connection after every response, so each
request costs both sides a new TCP connection and the server a new thread. Here moto's WSGI application is
served by uvicorn instead, which keeps connections alive as MinIO and S3 do: a delivery's three PUTs share
one connection. ``python -m borderx.dev.local_s3 --port N`` serves it in the foreground.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

# moto accepts any credentials; these keep boto3 from looking further (instance metadata, SSO) for them.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "borderx-local", "AWS_SECRET_ACCESS_KEY": "borderx-local"}

# Threads running moto's request handlers: as many requests at once as the hub's delivery threads make.
HANDLER_THREADS = 16
START_TIMEOUT = 30.0


def listening_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def server(wrap: Callable | None = None):
    """A uvicorn server for moto's S3 application, to be run on a socket of `listening_socket`; `wrap`, if
    given, takes moto's WSGI application and returns the one to serve (a benchmark's clock, say)."""
    import uvicorn
    from a2wsgi import WSGIMiddleware
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)
    app = WSGIMiddleware(wrap(moto_app) if wrap else moto_app, workers=HANDLER_THREADS)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, server_header=False,
                            timeout_keep_alive=30)
    return uvicorn.Server(config)


@contextmanager
def local_s3(port: int = 0, wrap: Callable | None = None) -> Iterator[str]:
    """Serves S3 on 127.0.0.1 for the duration of the block (moto's application through `wrap`, as `server`
    takes it); yields its endpoint URL."""
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    sock = listening_socket(port)
    s3 = server(wrap)
    # Outside the main thread uvicorn leaves the process's signal handlers alone.
    thread = threading.Thread(target=s3.run, kwargs={"sockets": [sock]}, name="local-s3", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not s3.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local S3 endpoint did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        s3.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m borderx.dev.local_s3",
        description="Serve a local S3-compatible endpoint (moto, in memory) on 127.0.0.1 until interrupted.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sock = listening_socket(args.port)
    print(f"S3 endpoint: http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    server().run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
