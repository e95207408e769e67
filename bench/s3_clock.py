"""The local S3 endpoint (`python -m borderx.dev.local_s3`) with a clock on it: each PUT of a delivery's
`manifest.json.sig` that the endpoint answers is written to FILE as a line "<unix time> <key>", the moment
the signed manifest is in the bucket. `latency_bench.py` runs it in a process of its own, so timing the
deliveries costs the stack nothing: no listing of the bucket ten times a second, and no thread of the
benchmark's own beside the endpoint's.

    .venv/bin/python bench/s3_clock.py --port 9000 --record signed.txt
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from borderx.dev.local_s3 import listening_socket, server  # noqa: E402

SIGNATURE = "manifest.json.sig"


def clocked(app, record):
    """`app`, with the answered PUTs of signatures written to `record` as they are answered."""
    lock = threading.Lock()

    def timed(environ, start_response):
        path = unquote(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "PUT" or not path.endswith(SIGNATURE):
            return app(environ, start_response)

        def answered(status, headers, exc_info=None):
            if status.startswith("200"):
                with lock:
                    record.write(f"{time.time():.6f} {path.lstrip('/').split('/', 1)[1]}\n")
                    record.flush()
            return start_response(status, headers, exc_info)

        return app(environ, answered)

    return timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one)")
    parser.add_argument("--record", required=True, metavar="FILE", help="where to write each signature's PUT")
    args = parser.parse_args(argv)
    sock = listening_socket(args.port)
    with open(args.record, "a", encoding="utf-8") as record:
        print(f"S3 endpoint: http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        server(lambda app: clocked(app, record)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
