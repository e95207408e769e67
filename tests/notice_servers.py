"""Real servers a notice goes to: an SMTP server (aiosmtpd) and a webhook receiver (http.server), both on
127.0.0.1 and started by the test; and a home whose settings and agencies send notices to them."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from aiosmtpd.controller import Controller

from airflow_procs import free_port


@dataclass
class Mailbox:
    """What the SMTP server received: each message as the server saw it, bytes and envelope."""

    host: str
    port: int
    messages: list[dict] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        body = parsed.get_body(("plain", "html"))
        text = body.get_content().replace("\r\n", "\n") if body else ""
        self.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                              "raw": raw.decode("utf-8", "replace"), "subject": str(parsed["Subject"]),
                              "text": text, "notice": str(parsed["X-Borderx-Notice"])})
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[dict]:
        return [m for m in self.messages if address in m["to"]]


@pytest.fixture
def smtp_server():
    port = free_port()
    mailbox = Mailbox("127.0.0.1", port)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


class WebhookReceiver:
    def __init__(self):
        self.posts: list[dict] = []
        self.answer = 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append({"path": self.path, "type": self.headers.get("Content-Type"),
                                       "raw": body.decode("utf-8", "replace"), "json": json.loads(body)})
                self.send_response(receiver.answer)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def at(self, path: str) -> list[dict]:
        return [p for p in self.posts if p["path"] == path]


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


OPERATOR = "ops@hub.test"
PROVIDER = "officer@dha.test"
RECIPIENT = "analyst@sars.test"


def set_notices(home, smtp_port: int, webhook_url: str | None) -> None:
    """Settings send mail through 127.0.0.1:smtp_port; ZA-DHA (a provider) and ZA-SARS (a recipient) and the
    operators have an address, and a webhook each when `webhook_url` is given."""
    settings_file = home.config / "settings.yaml"
    settings = yaml.safe_load(settings_file.read_text())
    settings["notices"] = {"smtp": {"host": "127.0.0.1", "port": smtp_port, "from": "hub@hub.test",
                                    "timeout_seconds": 5},
                           "operators": {"email": [OPERATOR]}}
    if webhook_url:
        settings["notices"]["operators"]["webhook"] = [f"{webhook_url}/ops"]
    settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))
    for agency, address in (("ZA-DHA", PROVIDER), ("ZA-SARS", RECIPIENT)):
        path = home.config / "agencies" / f"{agency}.yaml"
        data = yaml.safe_load(path.read_text())
        data["contacts"] = {"email": [address]}
        if webhook_url:
            data["contacts"]["webhook"] = [f"{webhook_url}/{agency}?token=hook"]
        path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def plain_smtp(monkeypatch):
    """The test's SMTP server speaks no TLS: say so, as an operator would for a relay on a trusted network."""
    monkeypatch.setenv("BORDERX_SMTP_TLS", "none")
