"""Exchange DAGs: receive -> validate -> deliver (per recipient) -> archive; a few small files in one task, more
as one mapped task per file and recipient.

`borderx_exchange` runs when a file lands: each provider agency's intake folder is an asset watched by an
IntakeFolderTrigger in the triggerer, which fires one asset event per complete new file, and the run takes
exactly the files those events name. Run it by hand with dag_run.conf {"files": ["intake/AGENCY/DATASET/FILE",
...]} to process given files (dag.test() has no asset events, so this is how it is tested), or with no conf
to take every complete file waiting.

`borderx_sweep` runs the same stages every 15 minutes on whatever still waits, and finishes files that a
failed run had already taken out of intake; a few small files in its first task, `discover`, as below. Both
can reach for the same file at once: the receive stage moves a file aside before it does anything else, so
exactly one run gets it and the other sees it gone.

A run that got a few small files does all their stages in its first task, `intake`, one file after the
other, by the same spine as `borderx run`: each task start costs a process and a round of API calls. A run
with more files, or large ones, maps the stages over them, one task per file and per recipient's delivery,
with the deliveries' pool and retries. Should the one-task pass meet a failure worth retrying, the mapped
stages take over from that file on, from where it got to (a delivery already signed is not redone).

Task bodies live in borderx.airflow.tasks, assets in borderx.airflow.assets. Deliveries run in the pool
`borderx_uploads` (create it once: `airflow pools set borderx_uploads 4 "..."`).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import AssetAny, Param, dag, task

from borderx.airflow import tasks
from borderx.airflow.assets import DagConfig
from borderx.airflow.callbacks import RunFailedNotifier

INTAKE_ASSETS = DagConfig.read().intake_assets()
DEFAULT_ARGS = {"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True,
                "max_retry_delay": timedelta(minutes=10), "execution_timeout": timedelta(minutes=30),
                "on_failure_callback": RunFailedNotifier()}
DAG_ARGS = {"start_date": pendulum.datetime(2026, 1, 1, tz="UTC"), "catchup": False, "default_args": DEFAULT_ARGS,
            "tags": ["borderx"], "doc_md": __doc__}


# In the upload pool: a small run publishes from this task.
@task(task_id="intake", pool=tasks.UPLOAD_POOL, retries=1, execution_timeout=timedelta(minutes=30))
def take_announced() -> list[dict]:
    return tasks.take_announced()


@task(task_id="discover", pool=tasks.UPLOAD_POOL, retries=1, execution_timeout=timedelta(minutes=30))
def discover_waiting() -> list[dict]:
    return tasks.discover_waiting()


@task(execution_timeout=timedelta(minutes=30))
def receive(intake_file: dict) -> dict:
    return tasks.run_stage(tasks.receive, intake_file)


@task(execution_timeout=timedelta(hours=1))
def validate(received: dict) -> dict:
    return tasks.run_stage(tasks.validate, received)


@task(retries=0, execution_timeout=timedelta(minutes=5))
def plan(validated: list[dict]) -> list[dict]:
    return tasks.delivery_jobs(validated)


@task(pool=tasks.UPLOAD_POOL, retries=5, retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=15),
      execution_timeout=timedelta(hours=2))
def deliver(job: dict) -> dict:
    return tasks.run_stage(tasks.deliver_job, job)


@task(trigger_rule="none_failed", execution_timeout=timedelta(minutes=15))
def archive(validated: list[dict], delivered: list[dict] | None) -> list[dict]:
    return tasks.run_stage(tasks.archive, validated, delivered)


# Any one agency's intake having a new file starts a run; files that arrive together share it.
@dag(dag_id="borderx_exchange", schedule=AssetAny(*INTAKE_ASSETS) if INTAKE_ASSETS else None, max_active_runs=4,
     params={"files": Param(None, type=["null", "array"], description="intake files, relative to the home")},
     **DAG_ARGS)
def borderx_exchange():
    validated = validate.expand(received=receive.expand(intake_file=take_announced()))
    archive(validated, deliver.expand(job=plan(validated)))


@dag(dag_id="borderx_sweep", schedule=timedelta(minutes=15), max_active_runs=1, **DAG_ARGS)
def borderx_sweep():
    validated = validate.expand(received=receive.expand(intake_file=discover_waiting()))
    archive(validated, deliver.expand(job=plan(validated)))


exchange_dag = borderx_exchange()
sweep_dag = borderx_sweep()
