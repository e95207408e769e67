"""The senders `borderx run` uses, against the real servers: a webhook that answers anything but 2xx
(a redirect too) is a failure; mail is never sent without TLS unless told, nor a password in clear."""

from __future__ import annotations

import pytest

from borderx.config.models import NoticeSettings
from borderx.errors import NoticeError
from borderx.notices.messages import Notice
from borderx.notices.senders import StandardSenders

NOTICE = Notice("accepted", "provider", "ZA-DHA", "k", "[borderx] subject", "text\n", {"dataset": "flows"})


@pytest.mark.parametrize("answer,ok", [(204, True), (200, True), (302, False), (500, False)])
def test_a_webhook_counts_as_told_on_2xx_only(webhook_receiver, answer, ok):
    webhook_receiver.answer = answer
    send = StandardSenders(NoticeSettings()).webhook
    if ok:
        send(f"{webhook_receiver.url}/hook", NOTICE)
    else:
        with pytest.raises(Exception, match=str(answer)):
            send(f"{webhook_receiver.url}/hook", NOTICE)
    [post] = webhook_receiver.posts
    assert post["json"]["notice"] == "accepted" and post["json"]["dataset"] == "flows"


def _smtp(mailbox) -> NoticeSettings:
    return NoticeSettings(smtp={"host": mailbox.host, "port": mailbox.port, "from": "hub@hub.test"})


def test_mail_needs_starttls_unless_told_and_never_sends_a_password_in_clear(smtp_server):
    with pytest.raises(NoticeError, match="offers no STARTTLS"):
        StandardSenders(_smtp(smtp_server), environ={}).email("a@x.test", NOTICE)
    login = {"BORDERX_SMTP_TLS": "none", "BORDERX_SMTP_USER": "hub", "BORDERX_SMTP_PASSWORD": "pw-never-in-clear"}
    with pytest.raises(NoticeError, match="not sent in clear"):
        StandardSenders(_smtp(smtp_server), environ=login).email("a@x.test", NOTICE)
    with pytest.raises(NoticeError, match="BORDERX_SMTP_TLS"):
        StandardSenders(_smtp(smtp_server), environ={"BORDERX_SMTP_TLS": "maybe"}).email("a@x.test", NOTICE)
    assert not smtp_server.messages
    StandardSenders(_smtp(smtp_server), environ={"BORDERX_SMTP_TLS": "none"}).email("a@x.test", NOTICE)
    [mail] = smtp_server.messages
    assert mail["to"] == ["a@x.test"] and mail["subject"] == NOTICE.subject and mail["notice"] == "accepted"
