"""S3 intake: copies what agencies upload to s3://BUCKET/PREFIX/DATASET/FILE into their intake folders.

Each agency with `intake.s3_prefix` is an asset watched by an S3IntakeTrigger, which reads the SQS queue the
bucket announces new objects to (set it up once with `borderx s3-intake setup`); a run takes exactly
the objects its asset events name. Every 15 minutes a run without events lists the prefixes and copies whatever
a lost notification left behind. Run it by hand with dag_run.conf {"keys": ["intake/AGENCY/DATASET/FILE", ...]}
to copy given objects (dag.test() has no asset events, so this is how it is tested).

Copies are atomic and happen once per object version (key and ETag); the agency's object is never deleted.
The folder trigger then carries each file through borderx_exchange. All logic lives in borderx.intake.sources.s3_uploads.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import (Asset, AssetAny, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, Param, dag,
                         get_current_context, task)

from borderx.home import Home
from borderx.airflow.triggers import S3IntakeTrigger
from borderx.intake.sources.s3_uploads import s3_intake_agencies

HOME = Home.resolve()  # BORDERX_HOME; the triggerer and the workers must see the same path
POLL_SECONDS = float(os.environ.get("BORDERX_TRIGGER_POLL_SECONDS", "2"))
SWEEP = CronTriggerTimetable("*/15 * * * *", timezone="UTC")


def s3_intake_asset(agency: str) -> Asset:
    return Asset(
        name=f"borderx_s3_intake_{agency}",
        uri=f"x-borderx-s3-intake://{agency}",
        group="borderx",
        watchers=[AssetWatcher(
            name=f"borderx_s3_intake_{agency}",
            trigger=S3IntakeTrigger(home=str(HOME.root), agency=agency, poll_interval=POLL_SECONDS),
        )],
    )


S3_INTAKE_ASSETS = [s3_intake_asset(a) for a in s3_intake_agencies(HOME.root)]


def _runtime():
    from borderx.exchange import Runtime

    return Runtime.open()


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
        """The objects named by the run's conf, else by its asset events, else everything not yet copied."""
        from borderx.intake.sources.s3_uploads import objects_for_keys, objects_from_events, waiting_objects

        context = get_current_context()
        rt = _runtime()
        keys = context["params"].get("keys")
        if keys:
            return objects_for_keys(rt, keys)
        events = [e for evs in context["triggering_asset_events"].values() for e in evs]
        if events:
            return objects_from_events(rt, [(e.extra or {}).get("payload") or {} for e in events])
        return waiting_objects(rt)

    @task(execution_timeout=timedelta(hours=1))
    def copy(obj: dict) -> dict:
        from borderx.intake.sources.s3_uploads import copy_object

        return copy_object(_runtime(), obj).to_dict()

    copy.expand(obj=find_objects())


s3_intake_dag = borderx_s3_intake()
