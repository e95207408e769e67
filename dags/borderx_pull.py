"""Pull: copies new extracts from each agency's pull source (a folder, an S3 prefix or an SFTP server) into its
intake folders.

Each agency with `pull:` in its config has a schedule (cron or preset, UTC; @hourly unless it says otherwise);
this DAG runs whenever one of them fires and pulls the agencies due then. Run it by hand to pull every agency
with a pull source, or those in dag_run.conf {"agencies": [...]}.

Copies are atomic and happen once per file version; the source is only read. The folder trigger then carries
each file through borderx_exchange. All logic lives in borderx.intake.sources.pull, the task bodies in
borderx.airflow.tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import MultipleCronTriggerTimetable, Param, dag, task

from borderx.airflow import tasks
from borderx.airflow.assets import DagConfig

SCHEDULES = DagConfig.read().pull_schedules


@dag(
    dag_id="borderx_pull",
    schedule=MultipleCronTriggerTimetable(*sorted(set(SCHEDULES.values())), timezone="UTC") if SCHEDULES else None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=15)},
    params={"agencies": Param(None, type=["null", "array"], description="agencies to pull now")},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_pull():
    @task(retries=1, execution_timeout=timedelta(minutes=5))
    def due() -> list[str]:
        return tasks.due_pulls()

    @task(execution_timeout=timedelta(hours=1))
    def pull_agency(agency: str) -> dict:
        return tasks.pull_agency(agency)

    pull_agency.expand(agency=due())


pull_dag = borderx_pull()
