"""Task callbacks. Light at import: the DAG files that use them are parsed often, and the providers' notifiers
are imported only when a callback runs."""

from __future__ import annotations

import logging

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)


class RunFailedNotifier(BaseNotifier):
    """A task's on_failure_callback: tells the operators which task failed and why (or of an outage), then sends
    what waits in the outbox."""

    def notify(self, context) -> None:
        from borderx import notices
        from borderx.airflow.notifiers import AirflowSenders
        from borderx.exchange import Runtime

        ti = context.get("ti") or context.get("task_instance")
        where = f"{ti.dag_id}.{ti.task_id} run {ti.run_id}" if ti else "an Airflow task"
        error = context.get("exception") or "failed (no error was handed over)"
        try:
            rt = Runtime.open().prepare()
            notices.run_failed(rt, where, error if isinstance(error, BaseException) else RuntimeError(str(error)))
            notices.drain(rt, AirflowSenders(rt.config.settings.notices).send)
        except Exception as exc:  # a callback that fails must not hide the failure it reports
            log.warning("notice of the failed %s not posted: %s: %s", where, type(exc).__name__, exc)
