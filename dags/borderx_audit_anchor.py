"""Audit anchor: signs the audit trail's head into s3://BUCKET/audit/heads/ on a schedule (hourly unless
BORDERX_ANCHOR_SCHEDULE says otherwise), but only when events were added since the bucket's newest head.

Runs sign their own head when they end; this covers what happens between them (a config change, a run
that died before its end), so no event stays unanchored for longer than one interval. A trail whose
chain is broken, or that no longer fits the newest head, is never signed: the task fails, and Airflow
alerts. The logic lives in borderx.audit.anchors.close_if_new.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException

SCHEDULE = os.environ.get("BORDERX_ANCHOR_SCHEDULE") or "@hourly"


@dag(
    dag_id="borderx_audit_anchor",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=15)},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_audit_anchor():
    @task(execution_timeout=timedelta(minutes=15))
    def sign_head() -> dict:
        from borderx.audit.anchors import close_if_new
        from borderx.errors import AuditError
        from borderx.exchange import Runtime
        from borderx.bucket.publish import ensure_bucket

        rt = Runtime.open()
        ensure_bucket(rt.s3, rt.target.bucket)
        try:
            closing = close_if_new(rt.trail, rt.signing_key, rt.hub_fingerprint,
                                   rt.config.settings.hub.signing_public_key, rt.s3, rt.target.bucket)
        except AuditError as exc:
            # Retrying cannot mend a rewritten trail; an operator must look.
            raise AirflowFailException(str(exc)) from exc
        return closing.to_dict()

    sign_head()


audit_anchor_dag = borderx_audit_anchor()
