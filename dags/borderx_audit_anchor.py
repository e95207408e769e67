"""Audit anchor: signs the audit trail's head into s3://BUCKET/audit/heads/ on a schedule (hourly unless
BORDERX_ANCHOR_SCHEDULE says otherwise), but only when events were added since the bucket's newest head.

Runs sign their own head when they end; this covers what happens between them (a config change, a run
that died before its end), so no event stays unanchored for longer than one interval. A trail whose
chain is broken, or that no longer fits the newest head, is never signed: the task fails, and Airflow
alerts. The logic lives in borderx.audit.anchors.close_if_new, the task body in borderx.airflow.tasks.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from borderx.airflow import tasks
from borderx.airflow.callbacks import RunFailedNotifier

SCHEDULE = os.environ.get("BORDERX_ANCHOR_SCHEDULE") or "@hourly"


@dag(
    dag_id="borderx_audit_anchor",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=15), "on_failure_callback": RunFailedNotifier()},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_audit_anchor():
    @task(execution_timeout=timedelta(minutes=15))
    def sign_head() -> dict:
        return tasks.sign_head()

    sign_head()


audit_anchor_dag = borderx_audit_anchor()
