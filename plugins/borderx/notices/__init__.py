"""Notices: who is told of what happens, by e-mail and webhook.

The stages post notices to the outbox (a file each, so nothing waits on a mail server); `borderx run` drains it
at the end of its pass with the standard library's senders, Airflow with the notifiers of its SMTP and HTTP
providers. A notice that cannot be sent is logged, recorded (notice-failed) and tried again later; none ever
fails or holds up a delivery.

Providers hear of their accepted and quarantined files, recipients of new deliveries, operators of failed runs,
outages of the bucket or the time-stamping authority, and late extracts (see messages.py for what each says).
"""

from __future__ import annotations

import logging

from borderx.notices.messages import Notice
from borderx.notices.outbox import Drained, Outbox, Send, outbox_of

log = logging.getLogger(__name__)

__all__ = ["Drained", "Notice", "Outbox", "after_receipt", "after_run", "drain", "post", "run_failed"]


def post(rt, notice: Notice) -> list[str]:
    """Puts `notice` in the outbox for its audience's contacts; the ids of the new entries."""
    if notice.audience == "operator":
        addresses = rt.config.settings.notices.operators.addresses()
    else:
        agency = rt.config.agencies.get(notice.agency)
        addresses = agency.contacts.addresses() if agency else []
    if not addresses:
        return []
    return outbox_of(rt.home).post(notice, addresses, rt.clock())


def after_receipt(rt, receipt, text: str) -> None:
    """Tells the provider what became of its file in the receipt's `text` (as the hub rendered it, never as read
    back from the agency's folder), and each recipient of a delivery made of it. Never raises: a notice is not
    worth a delivery."""
    from borderx.notices import posting

    try:
        posting.receipt_notices(rt, receipt, text)
    except Exception as exc:  # a broken notice must not break the exchange it reports on
        log.warning("notices of %s/%s not posted: %s: %s", receipt.agency, receipt.dataset, type(exc).__name__, exc)


def run_failed(rt, where: str, exc: BaseException) -> None:
    """Tells the operators that a run failed: an outage when the bucket or the TSA did not answer."""
    from borderx.notices import posting

    try:
        posting.failure_notices(rt, where, exc)
    except Exception as failure:  # the run's own error is what the caller raises
        log.warning("notice of the failed %s not posted: %s: %s", where, type(failure).__name__, failure)


def after_run(rt, send: Send | None = None, *, bucket_answered: bool = True) -> Drained:
    """At the end of a pass: tells the operators of a TSA outage, ends the bucket's outage if it answered, and
    sends what waits in the outbox."""
    from borderx.notices import posting

    try:
        posting.outage_notices(rt, bucket_answered=bucket_answered)
    except Exception as exc:  # an outage check that fails says nothing new; the outbox is still drained
        log.warning("outage check: %s: %s", type(exc).__name__, exc)
    return drain(rt, send)


def drain(rt, send: Send | None = None) -> Drained:
    """Sends what waits in the outbox and is due, with `send` or, by default, SMTP and HTTP from here."""
    if send is None:
        from borderx.notices.senders import StandardSenders

        send = StandardSenders(rt.config.settings.notices).send
    settings = rt.config.settings.notices
    channels = frozenset({"webhook"} | ({"email"} if settings.smtp else set()))
    return outbox_of(rt.home).drain(send, rt.clock(), max_attempts=settings.max_attempts, record=rt.trail.record,
                                    channels=channels)
