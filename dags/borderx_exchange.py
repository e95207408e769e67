"""Exchange DAGs: receive -> validate -> deliver (per recipient) -> archive; a few small files in one task, more
as one mapped task per file and recipient.

`borderx_exchange` runs when a file lands: each provider agency's intake folder is an asset watched by an
IntakeFolderTrigger in the triggerer, which fires one asset event per complete new file, and the run takes
exactly the files those events name. Run it by hand with dag_run.conf {"files": ["intake/AGENCY/DATASET/FILE",
...]} to process given files (dag.test() has no asset events, so this is how it is tested), or with no conf
to take every complete file waiting.

`borderx_sweep` runs the same pipeline every 15 minutes on whatever still waits, and finishes files that a
failed run had already taken out of intake. Both can reach for the same file at once: the receive stage
moves a file aside before it does anything else, so exactly one run gets it and the other sees it gone.

A run that got a few small files does all their stages in its first task, `intake`, one file after the
other: each task start costs a process and a round of API calls, and for small files those starts, and the
waits between the mapped stages, were most of the time from drop to published. A run with more files, or
large ones, maps the stages over them, one task per file and per recipient's delivery, with the
deliveries' pool and retries. Should the one-task pass meet a failure worth retrying, the mapped stages
take over from that file on, from where it got to (a delivery already signed is not redone).

The tasks only wire Airflow to borderx.exchange; all logic, and every heavy import, lives there.
Deliveries run in the pool `borderx_uploads` (create it once: `airflow pools set borderx_uploads 4 "..."`).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetAny, AssetWatcher, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from borderx.home import Home
from borderx.airflow.triggers import IntakeFolderTrigger
from borderx.intake.watch import watched_agencies

UPLOAD_POOL = "borderx_uploads"
HOME = Home.resolve()  # BORDERX_HOME, as for the CLI; the triggerer and the workers must see the same path
POLL_SECONDS = float(os.environ.get("BORDERX_TRIGGER_POLL_SECONDS", "2"))
# Up to this many files and bytes a run exchanges its files in one task: seconds of work in all, less than
# what starting the mapped stages' tasks costs. More, or larger, files gain from the mapped stages' parallelism.
ONE_TASK_MAX_FILES = int(os.environ.get("BORDERX_ONE_TASK_MAX_FILES", "3"))
ONE_TASK_MAX_BYTES = int(os.environ.get("BORDERX_ONE_TASK_MAX_BYTES", str(32 << 20)))
START = pendulum.datetime(2026, 1, 1, tz="UTC")

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=30),
}


def intake_asset(agency: str) -> Asset:
    # The x- scheme is Airflow's for schemes no provider knows, and keeps parsing free of provider lookups.
    return Asset(
        name=f"borderx_intake_{agency}",
        uri=f"x-borderx-intake://{agency}",
        group="borderx",
        watchers=[AssetWatcher(
            name=f"borderx_intake_{agency}",
            trigger=IntakeFolderTrigger(home=str(HOME.root), agency=agency, poll_interval=POLL_SECONDS),
        )],
    )


INTAKE_ASSETS = [intake_asset(a) for a in watched_agencies(HOME.root)]


def _runtime():
    from borderx.exchange import Runtime

    return Runtime.open()


def _actor() -> dict:
    ti = get_current_context()["ti"]
    return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index}


def _classified(call, *args):
    """Runs a stage; a failure worth retrying is raised as it is, a permanent one ends the task at once.

    Bad files never get here: the stages quarantine them and succeed.
    """
    from borderx.errors import BorderxError
    from borderx.exchange import is_transient

    try:
        return call(*args)
    except Exception as exc:
        if is_transient(exc):
            raise
        if isinstance(exc, (BorderxError, LookupError, TypeError, ValueError)):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


# -- the stages as tasks, shared by both DAGs --------------------------------------------------------------


# In the upload pool: a small run publishes from this task.
@task(task_id="intake", pool=UPLOAD_POOL, retries=1, execution_timeout=timedelta(minutes=30))
def take_announced() -> list[dict]:
    """The files named by the run's conf, else by its asset events, else everything waiting; exchanges a few
    small ones right here and returns what is left for the mapped stages."""
    rt = _runtime()
    files = _announced(rt)
    if len(files) <= ONE_TASK_MAX_FILES and sum(f["size"] for f in files) <= ONE_TASK_MAX_BYTES:
        return _exchange_here(rt, files)
    return files


def _announced(rt) -> list[dict]:
    from borderx.exchange import announced_waiting, discover
    from borderx.intake import intake_file_for, intake_file_from_event

    context = get_current_context()
    files = context["params"].get("files")
    if files:
        return [intake_file_for(rt.config, rt.home, f).to_dict() for f in files]
    events = [e for evs in context["triggering_asset_events"].values() for e in evs]
    if not events:
        return discover(rt)
    found: dict[str, dict] = {}
    for event in events:
        payload = (event.extra or {}).get("payload")
        placed = intake_file_from_event(rt.config, rt.home, payload) if isinstance(payload, dict) else None
        if placed is not None:
            found.setdefault(placed.path, placed.to_dict())
    for waiting in announced_waiting(rt):
        found.setdefault(waiting["path"], waiting)
    return list(found.values())


def _exchange_here(rt, files: list[dict]) -> list[dict]:
    """Every stage of each file in this task, as `borderx run` does them. Returns the files for the mapped
    stages, whose retries and pool then apply: from the first that met a failure worth retrying on. A
    permanent failure of one file ends the task once the others are done."""
    import logging

    from borderx.exchange import close_segment, exchange_one
    from borderx.bucket.publish import ensure_bucket

    actor = _actor()
    failed: list[str] = []
    touched = False
    bucket_ready: list[bool] = []

    def all_stages(intake_file: dict) -> str:
        if not bucket_ready:
            ensure_bucket(rt.s3, rt.target.bucket)
            bucket_ready.append(True)
        return exchange_one(rt, intake_file, actor)["status"]

    left: list[dict] = []
    for n, intake_file in enumerate(files):
        try:
            touched |= _classified(all_stages, intake_file) != "gone"
        except AirflowFailException as exc:
            touched = True
            failed.append(f"{intake_file['name']}: {exc}")
        except Exception as exc:
            logging.getLogger(__name__).warning("%s: %s; the mapped stages take over from %s", type(exc).__name__,
                                                exc, intake_file["name"])
            left = files[n:]
            break
    if touched and not left:
        # The mapped stages' archive task closes the segment when they take over.
        _classified(close_segment, rt)
    if failed:
        raise AirflowFailException("; ".join(failed))
    return left


@task(task_id="discover", retries=1, execution_timeout=timedelta(minutes=5))
def discover_waiting() -> list[dict]:
    """Everything complete in intake, and what runs that are over left taken but unfinished."""
    from borderx.exchange import discover
    from borderx.intake import LIVE_RUN_STATES

    ti = get_current_context()["ti"]

    def run_is_live(dag_id: str, run_id: str) -> bool:
        if (dag_id, run_id) == (ti.dag_id, ti.run_id):
            return True
        return ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=list(LIVE_RUN_STATES)) > 0

    return discover(_runtime(), run_is_live=run_is_live)


@task(execution_timeout=timedelta(minutes=30))
def receive(intake_file: dict) -> dict:
    from borderx.exchange import receive as take

    return _classified(take, _runtime(), intake_file, _actor())


@task(execution_timeout=timedelta(hours=1))
def validate(received: dict) -> dict:
    from borderx.exchange import validate as check

    return _classified(check, _runtime(), received, _actor())


@task(retries=0, execution_timeout=timedelta(minutes=5))
def plan(validated: list[dict]) -> list[dict]:
    return [{"accepted": v, "plan": p} for v in validated if v["status"] == "accepted" for p in v["plans"]]


@task(pool=UPLOAD_POOL, retries=5, retry_delay=timedelta(seconds=30), max_retry_delay=timedelta(minutes=15),
      execution_timeout=timedelta(hours=2))
def deliver(job: dict) -> dict:
    from borderx.exchange import deliver as publish
    from borderx.bucket.publish import ensure_bucket

    rt = _runtime()
    _classified(ensure_bucket, rt.s3, rt.target.bucket)
    return _classified(publish, rt, job["accepted"], job["plan"], _actor())


@task(trigger_rule="none_failed", execution_timeout=timedelta(minutes=15))
def archive(validated: list[dict], delivered: list[dict] | None) -> list[dict]:
    """Archives what was delivered and signs the audit trail's head; runs when nothing needed delivering too."""
    from borderx.exchange import close_segment, finish

    rt = _runtime()
    delivered = list(delivered or [])

    def archive_all() -> list[dict]:
        done = [
            finish(rt, v, [d for d in delivered if d["delivery_id"] in {p["delivery_id"] for p in v["plans"]}],
                   _actor())
            for v in validated
            if v["status"] == "accepted"
        ]
        if any(v["status"] != "gone" for v in validated):
            close_segment(rt)
        return done

    return _classified(archive_all)


def _pipeline(found) -> None:
    validated = validate.expand(received=receive.expand(intake_file=found))
    archive(validated, deliver.expand(job=plan(validated)))


@dag(
    dag_id="borderx_exchange",
    # Any one agency's intake having a new file starts a run; files that arrive together share it.
    schedule=AssetAny(*INTAKE_ASSETS) if INTAKE_ASSETS else None,
    start_date=START,
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    params={"files": Param(None, type=["null", "array"], description="intake files, relative to the home")},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_exchange():
    _pipeline(take_announced())


@dag(
    dag_id="borderx_sweep",
    schedule=timedelta(minutes=15),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_sweep():
    _pipeline(discover_waiting())


exchange_dag = borderx_exchange()
sweep_dag = borderx_sweep()
