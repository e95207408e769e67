"""A burst of small files under the CeleryExecutor: drop to every delivery signed, per file.

The set-up of tests/e2e/test_celery.py (PostgreSQL for Airflow's metadata and Celery's results, Redis as the
broker, two Celery workers of concurrency 2, api-server, scheduler, dag-processor and triggerer as processes of
their own), on a fresh demo home with a local S3 endpoint and TSA. After one untimed warm-up file, --drops
small distinct valid extracts are dropped --every seconds into ZA-DHA's traveller_flows folder (written under
a .part name, then renamed), and each file's two signed manifests are timed as latency_bench.py times them (by
the S3 endpoint, bench/s3_clock.py, as it answers their PUTs). Run from the project root, with PostgreSQL and
Redis running (BORDERX_TEST_POSTGRES, BORDERX_TEST_REDIS as for the tests):

    .venv/bin/python bench/celery_burst.py                          # 100 files, 10 a second
    .venv/bin/python bench/celery_burst.py --drops 30 --every 1
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "tests"), str(REPO / "bench")]

from airflow_procs import UPLOAD_POOL, airflow, free_port, home_env, migrate, serving_env, start, start_components, stop  # noqa: E402
from latency_bench import SOURCES, Bucket, Drop, _collect, clocked_endpoint, load, percentile, write_extract  # noqa: E402

POSTGRES = os.environ.get("BORDERX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BORDERX_TEST_REDIS", "redis://127.0.0.1:6379/0")
GOAL_P95 = 20.0


def _admin(sql: str) -> None:
    import psycopg2

    with contextlib.closing(psycopg2.connect(POSTGRES)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)


def _query(db: str, sql: str) -> list[tuple]:
    import psycopg2

    try:
        with contextlib.closing(psycopg2.connect(db, connect_timeout=5)) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    except psycopg2.Error:
        return []


def _until(what: str, check, timeout: float, procs, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a component exited while waiting for {what}")
        time.sleep(step)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drops", type=int, default=100, help="files to time (default 100)")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between drops (default 0.1)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the last file")
    args = parser.parse_args()
    from borderx.airflow.warm import celery_config
    from borderx.dev import stack as airflow_stack

    scratch = Path(tempfile.mkdtemp(prefix="borderx-celery-burst-"))
    name = f"borderx_{secrets.token_hex(6)}"
    prefix = f"{name}:"
    _admin(f'CREATE DATABASE "{name}"')
    procs: list = []
    try:
        home, _ = airflow_stack.ensure_home(scratch / "home")
        record = scratch / "signed.txt"
        with clocked_endpoint(home, record) as endpoint:
            db = urlsplit(POSTGRES)._replace(path=f"/{name}").geturl()
            port = free_port()
            env = {
                **serving_env(home_env(scratch / "airflow", db.replace("postgresql://", "postgresql+psycopg2://", 1)),
                              port, executor="CeleryExecutor"),
                "AIRFLOW__CELERY__BROKER_URL": REDIS,
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db.replace('postgresql://', 'postgresql+psycopg2://', 1)}",
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": prefix,
                "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": celery_config(result_extended=True),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "BORDERX_HOME": str(home.root), "BORDERX_S3_ENDPOINT_URL": endpoint,
                # As `borderx airflow` tunes them, so the two executors meet the same files the same way.
                "BORDERX_TRIGGER_POLL_SECONDS": airflow_stack.TRIGGER_POLL_SECONDS,
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            }
            from borderx.config.loader import load_config

            config = load_config(home.root)
            bucket_name = config.settings.s3.bucket
            migrate(env)
            airflow(env, "pools", "set", *UPLOAD_POOL)
            logs = scratch / "logs"
            procs += start_components(env, port, logs, scratch)
            for worker in ("worker1", "worker2"):
                procs.append(start(["celery", "worker", "--celery-hostname", f"{worker}@borderx",
                                    "--skip-serve-logs"], env, logs / f"{worker}.log", scratch))
            _until("the exchange DAG", lambda: _query(db, "SELECT 1 FROM dag WHERE dag_id = 'borderx_exchange'"),
                   300, procs)
            airflow(env, "dags", "unpause", "borderx_exchange")
            _until("the intake triggers", lambda: len(_query(
                db, "SELECT id FROM trigger WHERE classpath = 'borderx.airflow.triggers.IntakeFolderTrigger' "
                    "AND triggerer_id IS NOT NULL")) >= 1, 300, procs)
            agency, dataset, points = SOURCES[0]
            folder = home.intake_folder(agency, dataset, config.agencies[agency].intake.folder)
            bucket = Bucket(endpoint, bucket_name, record)
            salt = 1000 * (int(time.time()) % 1_000_000)
            drops: list[Drop] = []
            print(f"stack ready; load {load()}", flush=True)
            for n in range(1 + args.drops):
                partial, sha = write_extract(folder, n, agency, dataset, points, salt)
                target = partial.with_name(partial.name.removesuffix(".part"))
                os.replace(partial, target)
                drops.append(Drop(n, agency, dataset, target.name, sha, time.time()))
                if n == 0:  # the warm-up: the workers' first tasks import everything
                    _until("the warm-up file", lambda: (_collect(bucket, drops, time.monotonic()),
                                                         len(drops[0].signed) >= 2)[1], 300, procs, step=0.2)
                else:
                    _collect(bucket, drops, until=time.monotonic() + args.every)
            deadline = time.monotonic() + args.timeout
            while any(len(d.signed) < 2 for d in drops) and time.monotonic() < deadline:
                _collect(bucket, drops, until=time.monotonic() + 0.5)
            load_after = load()
            runs = _query(db, "SELECT count(*) FROM dag_run WHERE dag_id = 'borderx_exchange'")
    finally:
        stop(procs)
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _clear_broker(prefix)
    timed = drops[1:]
    done = [d.done for d in timed if d.done is not None]
    twice = sum(len(d.signed) > 2 for d in timed)
    print(f"\n{len(timed)} files dropped every {args.every} s into {agency}/{dataset}, two Celery workers "
          f"(concurrency 2); warm-up {drops[0].done:.1f} s; dag runs {runs[0][0] if runs else '?'}")
    if done:
        print(f"drop to every delivery signed: median {statistics.median(done):.1f} s, p95 "
              f"{percentile(done, 0.95):.1f} s, max {max(done):.1f} s ({len(done)}/{len(timed)} published); "
              f"published more than once: {twice}")
        print(f"goal p95 at most {GOAL_P95:.0f} s: {'met' if percentile(done, 0.95) <= GOAL_P95 else 'NOT met'}")
    print(f"load at the end (1/5/15 min): {load_after}; cores: {os.cpu_count()}")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0 if len(done) == len(timed) else 1


def _clear_broker(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    left = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if left:
        client.delete(*left)
    client.close()


if __name__ == "__main__":
    sys.exit(main())
