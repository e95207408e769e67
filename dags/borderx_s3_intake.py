"""S3 intake: copies what agencies upload to s3://BUCKET/PREFIX/DATASET/FILE into their intake folders.

Each agency with `intake.s3_prefix` is an asset watched by an S3IntakeTrigger, which reads the SQS queue the
bucket announces new objects to (set it up once with `borderx s3-intake setup`); a run takes exactly
the objects its asset events name. Every 15 minutes a run without events lists the prefixes and copies whatever
a lost notification left behind. Run it by hand with dag_run.conf {"keys": ["intake/AGENCY/DATASET/FILE", ...]}
to copy given objects (dag.test() has no asset events, so this is how it is tested).

Copies are atomic and happen once per object version (key and ETag); the agency's object is never deleted.
The folder trigger then carries each file through borderx_exchange. All logic lives in borderx.intake.sources.s3_uploads,
the task bodies in borderx.airflow.tasks.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from borderx.airflow import tasks
from borderx.airflow.assets import DagConfig

S3_INTAKE_ASSETS = DagConfig.read().s3_intake_assets()
SWEEP = CronTriggerTimetable("*/15 * * * *", timezone="UTC")


@dag(
    dag_id="borderx_s3_intake",
    schedule=AssetOrTimeSchedule(timetable=SWEEP, assets=AssetAny(*S3_INTAKE_ASSETS)) if S3_INTAKE_ASSETS else SWEEP,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=10)},
    params={"keys": Param(None, type=["null", "array"], description="object keys in the hub's bucket")},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_s3_intake():
    @task(execution_timeout=timedelta(minutes=10))
    def find_objects() -> list[dict]:
        return tasks.find_objects()

    @task(execution_timeout=timedelta(hours=1))
    def copy(obj: dict) -> dict:
        return tasks.copy_object(obj)

    copy.expand(obj=find_objects())


s3_intake_dag = borderx_s3_intake()
