"""The task bodies of the notices DAG and the due DAG (the DAG files in dags/ only wire them)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def _runtime():
    from borderx.exchange import Runtime

    return Runtime.open().prepare()


def _senders(rt):
    from borderx.airflow.notifiers import AirflowSenders

    return AirflowSenders(rt.config.settings.notices).send


def drain_outbox() -> dict:
    """Sends what waits in the outbox with the SMTP and HTTP providers' notifiers, and tells the operators of
    a bucket or time-stamping authority that stopped answering. A notice that fails waits for a later run:
    the task does not fail for it."""
    from borderx import notices

    rt = _runtime()
    drained = notices.after_run(rt, _senders(rt), bucket_answered=_bucket_answers(rt))
    for problem in drained.problems:
        log.warning("notice not sent: %s", problem)
    return drained.to_dict()


def check_due() -> dict:
    """Records each late extract once (overdue), tells its provider and the operators, and returns the table
    of `borderx due`."""
    from borderx import due, notices

    rt = _runtime()
    now = rt.clock()
    newly = due.record_overdue(rt, now)
    drained = notices.drain(rt, _senders(rt))
    rows = due.check(rt.config, rt.trail.events(), now)
    for late in newly:
        log.warning("overdue: %s/%s was due by %s", late.provider, late.dataset, late.due_by)
    return {"overdue": [r.to_dict() for r in newly], "extracts": [r.to_dict() for r in rows],
            "notices": drained.to_dict()}


def _bucket_answers(rt) -> bool:
    """Whether the bucket answers now; a bucket that does not is an outage the operators are told of once."""
    from borderx import notices
    from borderx.notices.posting import outage_service

    try:
        rt.s3.head_bucket(Bucket=rt.target.bucket)
    except Exception as exc:  # whatever the client raises, the answer is no
        if outage_service(exc) == "s3":
            notices.run_failed(rt, f"the check of s3://{rt.target.bucket}", exc)
        else:
            log.warning("s3://%s: %s: %s", rt.target.bucket, type(exc).__name__, exc)
        return False
    return True
