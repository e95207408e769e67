"""The DAGs' task bodies. Each opens the home, runs a stage of borderx.exchange (or of intake, bucket, audit),
and turns its typed outcome into the dict Airflow keeps as an XCom: dicts exist only here.

The stage functions below take the runtime and the actor as arguments, so tests call them as the tasks do;
`run_stage` supplies both inside a running task. Heavy libraries are imported only when a task runs: the
DAG files import this module when the scheduler parses them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

log = logging.getLogger(__name__)

UPLOAD_POOL = "borderx_uploads"
# Up to this many files and bytes a run exchanges its files in one task: seconds of work in all (small files of
# a dataset are validated together), less than what starting the mapped stages' tasks costs, a process per file
# and per delivery. More, or larger, files gain from the mapped stages' parallelism.
ONE_TASK_MAX_FILES = int(os.environ.get("BORDERX_ONE_TASK_MAX_FILES", "200"))
ONE_TASK_MAX_BYTES = int(os.environ.get("BORDERX_ONE_TASK_MAX_BYTES", str(32 << 20)))
# Files of a burst validated together in the one-task pass: fewer than `borderx run` takes at once, so that the
# first of them are published while the others are still validated.
ONE_TASK_GROUP_FILES = 16
# A file the intake trigger announced this recently is the event runs' to take: a sweep that falls in a burst
# leaves it to them, rather than taking a share of the burst into one task of its own. Should no event run take
# it, the next sweep does.
SWEEP_LEAVES_ANNOUNCED_SECONDS = 300


def runtime():
    from borderx.exchange import Runtime

    return Runtime.open().prepare()


def actor() -> dict:
    ti = get_current_context()["ti"]
    return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index}


def classified(call: Callable, *args):
    """Runs a stage; a failure worth retrying is raised as it is, a permanent one ends the task at once.

    Bad files never get here: the stages quarantine them and succeed.
    """
    from borderx.errors import is_permanent

    try:
        return call(*args)
    except Exception as exc:
        if is_permanent(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


def run_stage(stage: Callable, *args):
    """`stage(runtime, *args, actor)` in the running task, its failures classified."""
    return classified(stage, runtime(), *args, actor())


# -- the exchange's stages at the XCom boundary ------------------------------------------------------------


def discover(rt, settle_seconds: float | None = None, *, run_is_live=None,
             leave_announced_within: float | None = None) -> list[dict]:
    from borderx.exchange import stages

    return [f.to_dict() for f in stages.discover(rt, settle_seconds, run_is_live=run_is_live,
                                                 leave_announced_within=leave_announced_within)]


def announced_waiting(rt) -> list[dict]:
    from borderx.exchange import stages

    return [f.to_dict() for f in stages.announced_waiting(rt)]


def receive(rt, intake_file: dict, actor: dict | None = None) -> dict:
    from borderx.exchange import handoff, stages

    return stages.receive(rt, handoff.intake_file_from_dict(intake_file), actor).to_dict()


def validate(rt, received: dict, actor: dict | None = None) -> dict:
    from borderx.exchange import handoff, stages

    return stages.validate(rt, handoff.outcome_from_dict(received), actor).to_dict()


def delivery_jobs(validated: list[dict]) -> list[dict]:
    """One job per recipient's delivery of each accepted extract."""
    return [{"accepted": v, "plan": p} for v in validated if v["status"] == "accepted" for p in v["plans"]]


def deliver(rt, accepted: dict, plan: dict, actor: dict | None = None) -> dict:
    from borderx.exchange import Accepted, stages
    from borderx.policy import DeliveryPlan

    return stages.deliver(rt, Accepted.from_dict(accepted), DeliveryPlan.from_dict(plan), actor).to_dict()


def deliver_job(rt, job: dict, actor: dict | None = None) -> dict:
    from borderx.bucket.publish import ensure_bucket

    ensure_bucket(rt.s3, rt.target.bucket)
    return deliver(rt, job["accepted"], job["plan"], actor)


def finish(rt, accepted: dict, results: list[dict], actor: dict | None = None) -> dict:
    from borderx.exchange import Accepted, DeliveryResult, stages

    return stages.finish(rt, Accepted.from_dict(accepted), [DeliveryResult.from_dict(r) for r in results],
                         actor).to_dict()


def archive(rt, validated: list[dict], delivered: list[dict] | None, actor: dict | None = None) -> list[dict]:
    """Archives what was delivered and signs the audit trail's head; runs when nothing needed delivering too."""
    from borderx.exchange import close_segment

    delivered = list(delivered or [])
    done = [finish(rt, v, [d for d in delivered if d["delivery_id"] in {p["delivery_id"] for p in v["plans"]}],
                   actor)
            for v in validated if v["status"] == "accepted"]
    if any(v["status"] != "gone" for v in validated):
        close_segment(rt)
    return done


def exchange_here(rt, files: list[dict], actor: dict | None = None) -> list[dict]:
    """Every stage of each file in this task, by the spine `borderx run` uses (`exchange_groups`: small files of
    a dataset validated together, accepted ones delivered on a few threads while the next group is validated).
    Returns the files for the mapped stages, whose retries and pool then apply: those that met a failure worth
    retrying, and every file after their group (files this run took already are found where it put them). A
    permanent failure of one file ends the task once the others are done."""
    from borderx.bucket.publish import ensure_bucket
    from borderx.errors import is_permanent
    from borderx.exchange import Gone, close_segment, handoff
    from borderx.exchange.spine import exchange_groups, groups

    failed: list[str] = []
    touched = False
    left: list[dict] = []
    intake_files = [handoff.intake_file_from_dict(f) for f in files]
    given = {f.path: d for f, d in zip(intake_files, files)}
    try:
        if files:
            classified(ensure_bucket, rt.s3, rt.target.bucket)
    except AirflowFailException:
        raise
    except Exception as exc:
        log.warning("%s: %s; the mapped stages take every file", type(exc).__name__, exc)
        return files
    # The next group is taken and validated while this one's deliveries wait on S3, as under `borderx run`.
    file_groups = groups(intake_files, ONE_TASK_GROUP_FILES)
    with contextlib.closing(exchange_groups(rt, file_groups, actor)) as each_group:
        for n, outcomes in enumerate(each_group):
            for intake_file, outcome in zip(file_groups[n], outcomes):
                touched |= not isinstance(outcome, Gone)
                if isinstance(outcome, Exception) and is_permanent(outcome):
                    failed.append(f"{intake_file.name}: {type(outcome).__name__}: {outcome}")
                elif isinstance(outcome, Exception):
                    log.warning("%s: %s; the mapped stages take over %s", type(outcome).__name__, outcome,
                                intake_file.name)
                    left.append(given[intake_file.path])
            if left:
                left += [given[f.path] for group in file_groups[n + 1:] for f in group]
                break
    if touched and not left:
        # The mapped stages' archive task closes the segment when they take over.
        classified(close_segment, rt)
    if failed:
        raise AirflowFailException("; ".join(failed))
    return left


# -- task bodies -------------------------------------------------------------------------------------------


def take_announced() -> list[dict]:
    """The files named by the run's conf, else by its asset events, else everything waiting; exchanges a few
    small ones right here and returns what is left for the mapped stages."""
    rt = runtime()
    rt.record_config_changes()
    return _here_if_few(rt, _announced(rt, get_current_context()))


def _here_if_few(rt, files: list[dict]) -> list[dict]:
    """A few small files are exchanged in this task (what is left goes to the mapped stages); more, or larger
    ones, all go to the mapped stages."""
    if len(files) <= ONE_TASK_MAX_FILES and sum(f["size"] for f in files) <= ONE_TASK_MAX_BYTES:
        return exchange_here(rt, files, actor())
    return files


def _announced(rt, context) -> list[dict]:
    from borderx.intake import intake_file_for, intake_file_from_event

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


def discover_waiting() -> list[dict]:
    """Everything complete in intake but what the trigger has just announced, and what runs that are over left
    taken but unfinished; a few small ones are exchanged right here, as the exchange's `intake` task does, and
    the rest returned for the mapped stages. The backlog of a hub that was down then costs one task, not several
    per file."""
    ti = get_current_context()["ti"]
    rt = runtime()
    rt.record_config_changes()
    return _here_if_few(rt, discover(rt, run_is_live=lambda dag_id, run_id: _run_is_live(ti, dag_id, run_id),
                                     leave_announced_within=SWEEP_LEAVES_ANNOUNCED_SECONDS))


def _run_is_live(ti, dag_id: str, run_id: str) -> bool:
    """Whether a run that holds a file may still finish it. In its own run the sweep's first task comes before
    every other, so what that run holds was taken by an earlier attempt of this task, which is over: a retry
    takes it up again rather than leaving it to the next sweep."""
    from borderx.intake import LIVE_RUN_STATES

    if (dag_id, run_id) == (ti.dag_id, ti.run_id):
        return ti.try_number <= 1
    return ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=list(LIVE_RUN_STATES)) > 0


def sign_head() -> dict:
    """Signs the trail's head into the bucket if events were added since its newest head."""
    from borderx.audit.anchors import close_if_new
    from borderx.audit.timestamps import stamping_for
    from borderx.bucket.publish import ensure_bucket
    from borderx.errors import AuditError

    rt = runtime()
    rt.record_config_changes()
    ensure_bucket(rt.s3, rt.target.bucket)
    try:
        closing = close_if_new(rt.trail, rt.signing_key, rt.hub_fingerprint,
                               rt.config.settings.hub.signing_public_key, rt.s3, rt.target.bucket,
                               stamping=stamping_for(rt))
    except AuditError as exc:
        # Retrying cannot mend a rewritten trail; an operator must look.
        raise AirflowFailException(str(exc)) from exc
    return closing.to_dict()


def apply_retention() -> dict:
    from borderx.bucket.retention import apply_retention as apply

    rt = runtime()
    rt.record_config_changes()
    return apply(rt, actor={k: v for k, v in actor().items() if k != "map_index"}).to_dict()


def check_home() -> dict:
    """The daily checks; the task fails, so Airflow alerts, when the config does not load."""
    from borderx.health import daily_checks
    from borderx.home import Home

    report = daily_checks(Home.resolve().root)
    for warning in report.warnings:
        log.warning("%s", warning)
    if not report.ok:
        for error in report.errors:
            log.error("%s", error)
        raise AirflowFailException(f"config is broken: {len(report.errors)} problem(s): "
                                   + "; ".join(str(e) for e in report.errors[:20]))
    return report.to_dict()


def due_pulls() -> list[str]:
    """The agencies named by the conf; else, on a schedule, those whose schedule fired; else all of them."""
    from borderx.intake.sources.pull import due_agencies

    context = get_current_context()
    rt = runtime()
    schedules = {a.id: a.pull.schedule for a in rt.config.agencies.values() if a.pull is not None}
    given = context["params"].get("agencies")
    if given:
        unknown = sorted(set(given) - set(schedules))
        if unknown:
            # A conf naming an agency without a pull source is wrong as given: trying again cannot mend it.
            raise AirflowFailException(f"no pull source for {', '.join(unknown)}")
        return sorted(set(given))
    run = context["dag_run"]
    if run.run_type == "scheduled":
        return due_agencies(schedules, run.logical_date or run.run_after)
    return sorted(schedules)


def pull_agency(agency: str) -> dict:
    from borderx.intake.sources.pull import pull

    rt = runtime()
    needs_s3 = rt.config.agencies[agency].pull.s3 is not None
    # A refused server (another host key, the hub's key not accepted) ends the task at once: retries cannot mend it.
    return classified(pull, rt.config, rt.home, agency, rt.s3 if needs_s3 else None).to_dict()


def find_objects() -> list[dict]:
    """The objects named by the run's conf, else by its asset events, else everything not yet copied."""
    from borderx.intake.sources.s3_uploads import objects_for_keys, objects_from_events, waiting_objects

    context = get_current_context()
    rt = runtime()
    keys = context["params"].get("keys")
    if keys:
        return objects_for_keys(rt, keys)
    events = [e for evs in context["triggering_asset_events"].values() for e in evs]
    if events:
        return objects_from_events(rt, [(e.extra or {}).get("payload") or {} for e in events])
    return waiting_objects(rt)


def copy_object(obj: dict) -> dict:
    from borderx.intake.sources.s3_uploads import copy_object as copy

    return copy(runtime(), obj).to_dict()
