"""Daily checks: the config must load (the task fails, so Airflow alerts, when it does not); agency keys
expiring within 30 days and agreements due for review are logged as warnings and returned.
The logic lives in borderx.health."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from borderx.airflow import tasks


@dag(
    dag_id="borderx_daily_checks",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_daily_checks():
    @task(retries=0, execution_timeout=timedelta(minutes=10))
    def check_home() -> dict:
        return tasks.check_home()

    check_home()


daily_checks_dag = borderx_daily_checks()
