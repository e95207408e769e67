"""Pull: copies new extracts from each agency's pull source (a folder or an S3 prefix) into its intake folders.

Each agency with `pull:` in its config has a schedule (cron or preset, UTC; @hourly unless it says otherwise);
this DAG runs whenever one of them fires and pulls the agencies due then. Run it by hand to pull every agency
with a pull source, or those in dag_run.conf {"agencies": [...]}.

Copies are atomic and happen once per file version; the source is only read. The folder trigger then carries
each file through borderx_exchange. All logic lives in borderx.intake.sources.pull.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import MultipleCronTriggerTimetable, Param, dag, get_current_context, task

from borderx.home import Home
from borderx.intake.sources.pull import pull_schedules

HOME = Home.resolve()  # BORDERX_HOME, as for the CLI
SCHEDULES = pull_schedules(HOME.root)


def _runtime():
    from borderx.exchange import Runtime

    return Runtime.open()


@dag(
    dag_id="borderx_pull",
    schedule=MultipleCronTriggerTimetable(*sorted(set(SCHEDULES.values())), timezone="UTC") if SCHEDULES else None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True,
                  "max_retry_delay": timedelta(minutes=15)},
    params={"agencies": Param(None, type=["null", "array"], description="agencies to pull now")},
    tags=["borderx"],
    doc_md=__doc__,
)
def borderx_pull():
    @task(retries=1, execution_timeout=timedelta(minutes=5))
    def due() -> list[str]:
        """The agencies named by the conf; else, on a schedule, those whose schedule fired; else all of them."""
        from borderx.intake.sources.pull import due_agencies

        context = get_current_context()
        rt = _runtime()
        schedules = {a.id: a.pull.schedule for a in rt.config.agencies.values() if a.pull is not None}
        given = context["params"].get("agencies")
        if given:
            unknown = sorted(set(given) - set(schedules))
            if unknown:
                raise ValueError(f"no pull source for {', '.join(unknown)}")
            return sorted(set(given))
        run = context["dag_run"]
        if run.run_type == "scheduled":
            return due_agencies(schedules, run.logical_date or run.run_after)
        return sorted(schedules)

    @task(execution_timeout=timedelta(hours=1))
    def pull_agency(agency: str) -> dict:
        from borderx.intake.sources.pull import pull

        rt = _runtime()
        needs_s3 = rt.config.agencies[agency].pull.s3 is not None
        return pull(rt.config, rt.home, agency, rt.s3 if needs_s3 else None).to_dict()

    pull_agency.expand(agency=due())


pull_dag = borderx_pull()
