"""Exchange DAG: receive -> validate -> deliver (per recipient) -> archive, one mapped task per file and recipient.

The tasks only wire Airflow to borderx.exchange; all logic, and every heavy import, lives there.
Run with dag_run.conf {"files": ["intake/AGENCY/DATASET/FILE", ...]} to process given files,
or with no conf to take every complete file waiting in the intake folders.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


def _runtime():
    from borderx.exchange import Runtime

    return Runtime.open()  # the home comes from BORDERX_HOME, as for the CLI


def _actor() -> dict:
    ti = get_current_context()["ti"]
    return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index}


@dag(
    dag_id="borderx_exchange",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    params={"files": Param(None, type=["null", "array"], description="intake files, relative to the home")},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_exchange():
    @task
    def discover() -> list[dict]:
        from borderx.exchange import discover as scan
        from borderx.intake import intake_file_for

        rt = _runtime()
        files = get_current_context()["params"].get("files")
        if files:
            return [intake_file_for(rt.config, rt.home, f).to_dict() for f in files]
        return scan(rt)

    @task(retries=0)
    def receive(intake_file: dict) -> dict:
        from borderx.exchange import receive as take

        return take(_runtime(), intake_file, _actor())

    @task(retries=0)
    def validate(received: dict) -> dict:
        from borderx.exchange import validate as check

        return check(_runtime(), received, _actor())

    @task
    def plan(validated: list[dict]) -> list[dict]:
        return [{"accepted": v, "plan": p} for v in validated if v["status"] == "accepted" for p in v["plans"]]

    @task(execution_timeout=timedelta(hours=2))
    def deliver(job: dict) -> dict:
        from borderx.exchange import deliver as publish

        rt = _runtime()
        from borderx.publish import ensure_bucket

        ensure_bucket(rt.s3, rt.target.bucket)
        return publish(rt, job["accepted"], job["plan"], _actor())

    @task
    def archive(validated: list[dict], delivered: list[dict]) -> list[dict]:
        from borderx.exchange import finish

        rt = _runtime()
        return [
            finish(rt, v, [d for d in delivered if d["delivery_id"] in {p["delivery_id"] for p in v["plans"]}], _actor())
            for v in validated
            if v["status"] == "accepted"
        ]

    validated = validate.expand(received=receive.expand(intake_file=discover()))
    archive(validated, deliver.expand(job=plan(validated)))


exchange_dag = borderx_exchange()
