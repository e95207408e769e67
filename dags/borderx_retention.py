"""Retention: deletes every delivery older than its agreement's retention_days, signature first, each
deletion audited. The logic lives in borderx.bucket.retention; this DAG only runs it once a day."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from borderx.airflow import tasks
from borderx.airflow.callbacks import RunFailedNotifier


@dag(
    dag_id="borderx_retention",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=30), "on_failure_callback": RunFailedNotifier()},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_retention():
    @task(execution_timeout=timedelta(hours=1))
    def apply_retention() -> dict:
        return tasks.apply_retention()

    apply_retention()


retention_dag = borderx_retention()
