"""Notices: sends what waits in the hub's outbox (HOME/state/outbox/) every few minutes, by e-mail with the SMTP
provider's SmtpNotifier and to webhooks with the HTTP provider's HttpNotifier.

The exchange's stages only post notices to the outbox, so a mail server or webhook that is down never holds
up a delivery; a notice that fails is logged, recorded (notice-failed) and tried again after a backoff that
doubles up to an hour. This run also tells the operators when the time-stamping authority stopped answering.
Schedule: BORDERX_NOTICES_SCHEDULE (default every 2 minutes). The task bodies live in
borderx.airflow.notice_tasks.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from borderx.airflow import notice_tasks

SCHEDULE = os.environ.get("BORDERX_NOTICES_SCHEDULE") or timedelta(minutes=2)


@dag(
    dag_id="borderx_notices",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_notices():
    @task(retries=0, execution_timeout=timedelta(minutes=10))
    def drain_outbox() -> dict:
        return notice_tasks.drain_outbox()

    drain_outbox()


notices_dag = borderx_notices()
