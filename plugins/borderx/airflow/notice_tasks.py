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
    a time-stamping authority that stopped answering. A notice that fails waits for a later run: the task
    does not fail for it."""
    from borderx import notices

    rt = _runtime()
    drained = notices.after_run(rt, _senders(rt), bucket_answered=False)
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
