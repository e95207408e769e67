"""What a borderx task imports, for the processes that fork Airflow's task processes to import once.

Airflow forks every task process from a long-lived parent: under the LocalExecutor a worker that the scheduler's
forkserver started (`[scheduler] mp_forkserver_preload`, set by `borderx airflow`), under the CeleryExecutor a
pool process of a Celery worker, forked from the worker's main process (Celery's `imports`, set through
`[celery] extra_celery_config`). Modules that parent imported are the task's for nothing; the rest each task
imports again, Great Expectations, pyarrow and boto3 among them, seconds of CPU per task on a small machine.
"""

from __future__ import annotations

import json

TASK_MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "great_expectations",
    "borderx.exchange",
    "borderx.validation",
    "borderx.audit.anchors",
    "borderx.airflow.lineage",
)


def celery_config(**settings) -> str:
    """`[celery] extra_celery_config` (JSON): `settings`, and the task modules for each worker to import once."""
    return json.dumps({**settings, "imports": list(TASK_MODULES)})
