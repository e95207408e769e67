"""Daily checks: the config must load (the task fails, so Airflow alerts, when it does not); agency keys
expiring within 30 days and agreements due for review are logged as warnings and returned.
The logic lives in borderx.health."""

from __future__ import annotations

import logging
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)


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
        from borderx.health import daily_checks
        from borderx.home import Home

        report = daily_checks(Home.resolve().root)
        for warning in report.warnings:
            log.warning("%s", warning)
        if not report.ok:
            for error in report.errors:
                log.error("%s", error)
            raise AirflowFailException(f"config is broken: {len(report.errors)} problem(s): "
                                       + "; ".join(str(e) for e in report.errors[:20]))
        return report.to_dict()

    check_home()


daily_checks_dag = borderx_daily_checks()
