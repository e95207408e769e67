"""How long notices take: posting one to the outbox (what a stage pays), and draining the outbox to an SMTP
server (aiosmtpd) and a webhook receiver on 127.0.0.1, and to a mail server that refuses connections.

Run by hand: ``.venv/bin/python bench/notices_bench.py --notices 500``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from aiosmtpd.controller import Controller  # noqa: E402

from borderx.config.models import NoticeSettings  # noqa: E402
from borderx.notices.messages import Notice  # noqa: E402
from borderx.notices.outbox import Outbox  # noqa: E402
from borderx.notices.senders import StandardSenders  # noqa: E402

T0 = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notice(n: int) -> Notice:
    text = "RECEIPT: extract.csv ACCEPTED\n" + "a line of a receipt, as long as most are\n" * 12
    return Notice("accepted", "provider", "ZA-DHA", f"accepted/{n}", "[borderx] extract accepted", text, {"n": n})


def timed(label: str, count: int, call) -> float:
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {count:>6}  {seconds:8.3f} s  {1000 * seconds / count:8.2f} ms each   {result or ''}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notices", type=int, default=500)
    args = parser.parse_args()
    n = args.notices
    smtp_port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    environ = {"BORDERX_SMTP_TLS": "none"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for channel, address in (("email", "officer@agency.test"),
                                     ("webhook", f"http://127.0.0.1:{hooks.server_address[1]}/hook")):
                box = Outbox(Path(tmp) / channel)
                timed(f"post to the outbox ({channel})", n,
                      lambda: [box.post(notice(i), [(channel, address)], T0) for i in range(n)] and None)
                settings = NoticeSettings(smtp={"host": "127.0.0.1", "port": smtp_port, "from": "hub@hub.test"})
                send = StandardSenders(settings, environ).send
                timed(f"drain to 127.0.0.1 ({channel})", n,
                      lambda: box.drain(send, T0, max_attempts=3).to_dict())
            box = Outbox(Path(tmp) / "down")
            for i in range(n):
                box.post(notice(i), [("email", "officer@agency.test")], T0)
            down = NoticeSettings(smtp={"host": "127.0.0.1", "port": free_port(), "from": "hub@hub.test"})
            timed("drain with the mail server down", n,
                  lambda: box.drain(StandardSenders(down, environ).send, T0, max_attempts=3).to_dict())
    finally:
        controller.stop()
        hooks.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
