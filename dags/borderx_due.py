"""Late extracts: once a day, lists each provider's extract of each dataset as received, due or late by the
agreements' `due:` rules (what `borderx due` shows), records each late one once as an `overdue` audit event,
and tells its provider and the operators. The logic lives in borderx.due, the task body in
borderx.airflow.notice_tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from borderx.airflow import notice_tasks
from borderx.airflow.callbacks import RunFailedNotifier


@dag(
    dag_id="borderx_due",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5), "on_failure_callback": RunFailedNotifier()},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_due():
    @task(execution_timeout=timedelta(minutes=15))
    def check_due() -> dict:
        return notice_tasks.check_due()

    check_due()


due_dag = borderx_due()
