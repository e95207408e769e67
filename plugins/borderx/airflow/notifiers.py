"""Notices in Airflow: the SMTP provider's SmtpNotifier and the HTTP provider's HttpNotifier send what waits in
the outbox, and `RunFailedNotifier`, a task callback, tells the operators of a task that failed for good.

SMTP goes through the Airflow connection settings name (notices.smtp.airflow_connection: login, TLS, host
and port as the connection says), or else through a connection made from settings' host and port, with
login and TLS from the environment as for `borderx run` (see borderx.notices.senders). A webhook is POSTed by
HttpNotifier to its URL as given, so no connection needs to be made for each agency's webhook.
"""

from __future__ import annotations

import html
import json
import os
from functools import cached_property
from urllib.parse import urlsplit

from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.notifications.http import HttpNotifier
from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import Connection

from borderx.config.models import NoticeSettings
from borderx.errors import NoticeError
from borderx.notices.messages import Notice

SMTP_FROM_SETTINGS = "borderx_notices_smtp"
WEBHOOK = "borderx_notices_webhook"


class _GivenConnection:
    """A hook whose connection is given, not looked up by its id."""

    given: Connection

    def get_connection(self, conn_id: str) -> Connection:
        return self.given


class _WebhookHook(_GivenConnection, HttpHook):
    def __init__(self, origin: str, method: str):
        super().__init__(method=method, http_conn_id=WEBHOOK)
        self.given = Connection(conn_id=WEBHOOK, conn_type="http", host=origin)


class WebhookNotifier(HttpNotifier):
    """HttpNotifier for a whole URL rather than an Airflow connection and an endpoint."""

    def __init__(self, url: str, body: bytes, timeout: float):
        parts = urlsplit(url)
        endpoint = parts.path or "/"
        super().__init__(http_conn_id=WEBHOOK, endpoint=endpoint + (f"?{parts.query}" if parts.query else ""),
                         data=body, headers={"Content-Type": "application/json", "User-Agent": "borderx"},
                         extra_options={"timeout": timeout, "allow_redirects": False})
        self.origin = f"{parts.scheme}://{parts.netloc}"

    @cached_property
    def hook(self) -> HttpHook:
        return _WebhookHook(self.origin, self.method)


class _SettingsSmtpHook(_GivenConnection, SmtpHook):
    def __init__(self, given: Connection):
        super().__init__(smtp_conn_id=SMTP_FROM_SETTINGS)
        self.given = given


class SettingsSmtpNotifier(SmtpNotifier):
    """SmtpNotifier through the server settings name, when they name no Airflow connection."""

    def __init__(self, given: Connection, **kwargs):
        super().__init__(smtp_conn_id=SMTP_FROM_SETTINGS, **kwargs)
        self.given = given

    @cached_property
    def hook(self) -> SmtpHook:
        return _SettingsSmtpHook(self.given)


def smtp_connection(settings: NoticeSettings, environ=os.environ) -> Connection:
    """The connection to the SMTP server of settings, with login and TLS from the environment."""
    smtp = settings.smtp
    tls = environ.get("BORDERX_SMTP_TLS", "starttls")
    if tls not in ("starttls", "ssl", "none"):
        raise NoticeError(f"BORDERX_SMTP_TLS is {tls!r}; give one of starttls, ssl, none")
    if tls == "none" and environ.get("BORDERX_SMTP_PASSWORD"):
        raise NoticeError(f"BORDERX_SMTP_TLS=none with a password: {smtp.host}:{smtp.port} would get it in clear")
    extra = {"disable_tls": tls != "starttls", "disable_ssl": tls != "ssl", "retry_limit": 0,
             "timeout": int(smtp.timeout_seconds), "from_email": smtp.from_}
    return Connection(conn_id=SMTP_FROM_SETTINGS, conn_type="smtp", host=smtp.host, port=smtp.port,
                      login=environ.get("BORDERX_SMTP_USER"), password=environ.get("BORDERX_SMTP_PASSWORD"),
                      extra=json.dumps(extra))


class AirflowSenders:
    """Sends a notice with the providers' notifiers; `send` fits `Outbox.drain`."""

    def __init__(self, settings: NoticeSettings):
        self.settings = settings

    def send(self, channel: str, address: str, notice: Notice) -> None:
        if channel == "webhook":
            WebhookNotifier(address, notice.webhook_body(), self.settings.webhook_timeout_seconds).notify({})
            return
        if channel != "email":
            raise NoticeError(f"unknown notice channel {channel!r}")
        smtp = self.settings.smtp
        if smtp is None:
            raise NoticeError("settings name no SMTP server (notices.smtp); the e-mail waits in the outbox")
        # Called directly, not as a callback: nothing in a notice is rendered as a template.
        content = {"to": address, "from_email": smtp.from_, "subject": notice.subject,
                   "html_content": f"<pre>{html.escape(notice.text)}</pre>",
                   "custom_headers": {"X-Borderx-Notice": notice.notice}}
        if smtp.airflow_connection:
            SmtpNotifier(smtp_conn_id=smtp.airflow_connection, **content).notify({})
        else:
            SettingsSmtpNotifier(smtp_connection(self.settings), **content).notify({})
