"""How a notice leaves when `borderx run` sends it: SMTP with the standard library, webhooks as an HTTP POST of
JSON. Inside Airflow the notifiers of its SMTP and HTTP providers send instead (borderx.airflow.notifiers).

SMTP login and TLS come from the environment, never from config/:
    BORDERX_SMTP_USER, BORDERX_SMTP_PASSWORD   log in when both are set (only over TLS)
    BORDERX_SMTP_TLS                           starttls (the default: the server must offer it), ssl,
                                               or none (a relay on a network you trust)
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import cached_property

from borderx.config.models import NoticeSettings
from borderx.errors import NoticeError
from borderx.notices.messages import Notice

TLS_MODES = ("starttls", "ssl", "none")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx code


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def email_message(notice: Notice, sender: str, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = notice.subject
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["X-Borderx-Notice"] = notice.notice
    msg.set_content(notice.text)
    return msg


class StandardSenders:
    """Sends by SMTP and HTTP from this process; `send` fits `Outbox.drain`."""

    def __init__(self, settings: NoticeSettings, environ: dict[str, str] | None = None):
        self.settings = settings
        self.environ = os.environ if environ is None else environ

    def send(self, channel: str, address: str, notice: Notice) -> None:
        if channel == "email":
            self.email(address, notice)
        elif channel == "webhook":
            self.webhook(address, notice)
        else:
            raise NoticeError(f"unknown notice channel {channel!r}")

    def email(self, to: str, notice: Notice) -> None:
        smtp = self.settings.smtp
        if smtp is None:
            raise NoticeError("settings name no SMTP server (notices.smtp); the e-mail waits in the outbox")
        tls = self.environ.get("BORDERX_SMTP_TLS", "starttls")
        if tls not in TLS_MODES:
            raise NoticeError(f"BORDERX_SMTP_TLS is {tls!r}; give one of {', '.join(TLS_MODES)}")
        user, password = self.environ.get("BORDERX_SMTP_USER"), self.environ.get("BORDERX_SMTP_PASSWORD")
        connect = smtplib.SMTP_SSL if tls == "ssl" else smtplib.SMTP
        extra = {"context": self.tls_context} if tls == "ssl" else {}
        with connect(smtp.host, smtp.port, timeout=smtp.timeout_seconds, local_hostname=self.local_hostname,
                     **extra) as server:
            server.ehlo()
            secure = tls == "ssl"
            if tls == "starttls":
                if not server.has_extn("starttls"):
                    raise NoticeError(f"{smtp.host}:{smtp.port} offers no STARTTLS; set BORDERX_SMTP_TLS=none "
                                      "only for a server on a network you trust")
                server.starttls(context=self.tls_context)
                server.ehlo()
                secure = True
            if user and password:
                if not secure:
                    raise NoticeError(f"{smtp.host}:{smtp.port} offers no TLS; the password is not sent in clear")
                server.login(user, password)
            server.send_message(email_message(notice, smtp.from_, to))

    # Made once per drain, not once per message: loading the system's CA certificates and looking up this
    # host's name cost more than sending a notice.
    @cached_property
    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context()

    @cached_property
    def local_hostname(self) -> str:
        return socket.getfqdn()

    def webhook(self, url: str, notice: Notice) -> None:
        request = urllib.request.Request(url, data=notice.webhook_body(), method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "borderx"})
        # A redirect is an error, not a hop: the notice goes to the address the agency gave, or nowhere.
        with _NO_REDIRECTS.open(request, timeout=self.settings.webhook_timeout_seconds) as answer:
            if not 200 <= answer.status < 300:
                raise NoticeError(f"webhook answered HTTP {answer.status}")
