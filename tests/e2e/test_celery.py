"""Scale-out on Airflow's own engine: the exchange under the CeleryExecutor with two workers, Redis as the broker,
and PostgreSQL for Airflow's metadata and Celery's results, the same settings docker-compose.yml uses.

Every dropped file is published exactly once, tasks run on both workers, the audit trail loses no event, and
no private key or extract value reaches a log or report on the way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
import redis

from airflow_procs import (REPO, UPLOAD_POOL, airflow, drop, free_port, home_env, migrate, port_open, serving_env,
                           signed, start, start_components, stop, wait_for)
from borderx.airflow.warm import celery_config
from borderx.dev import samples

# The services this machine runs; point these elsewhere to run the test against others.
POSTGRES = os.environ.get("BORDERX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BORDERX_TEST_REDIS", "redis://127.0.0.1:6379/0")
WORKERS = ("worker1", "worker2")
DEADLINE = 210  # seconds from the first component's start to the last run's end
# Values that exist only inside the extracts dropped here: anywhere else, extract data leaked.
BORDER_POINTS = {"ZA-DHA": ["ZA-BEI", "ZA-QX7K"], "BW-DIC": ["BW-RAM", "BW-QX8K"]}
BAD_NATIONALITY = "QXNATQ"
PRIVATE_KEY_MARKERS = ("AGE-SECRET-KEY-", "BEGIN OPENSSH PRIVATE KEY")


def _admin(sql: str) -> None:
    # Outside a transaction: PostgreSQL creates and drops databases only so.
    with contextlib.closing(psycopg2.connect(POSTGRES)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)


@pytest.fixture
def metadata_db() -> str:
    """A PostgreSQL database of this run's own for Airflow and Celery, dropped after it whatever happened."""
    name = f"borderx_{secrets.token_hex(6)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(POSTGRES)._replace(path=f"/{name}").geturl()
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def broker_prefix() -> str:
    """A Redis key prefix of this run's own, so it shares the broker with nobody; its keys are deleted after."""
    prefix = f"borderx_{secrets.token_hex(6)}:"
    client = redis.Redis.from_url(REDIS)
    try:
        yield prefix
    finally:
        left = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if left:
            client.delete(*left)
        client.close()


def _query(db: str, sql: str, *args) -> list[tuple]:
    try:
        with contextlib.closing(psycopg2.connect(db, connect_timeout=5)) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    except psycopg2.Error:
        return []  # tables appear only as the components start


def _extracts(stash: Path, today: dt.date) -> tuple[list[Path], Path]:
    """Six good extracts, two per providing agency, and one bad one; all distinct, so none is a duplicate."""
    good = []
    for n, start_day in enumerate((today - dt.timedelta(days=14), today - dt.timedelta(days=7))):
        for agency, points in BORDER_POINTS.items():
            good.append(samples.write_csv(
                stash / agency / "traveller_flows" / f"{agency.lower()}_flows_{start_day}.csv",
                samples.TRAVELLER_FLOWS_COLUMNS,
                samples.traveller_flows_rows(points, start_day, 3, seed=10 + n * 2 + len(agency), small_every=9)))
        good.append(samples.write_csv(
            stash / "ZA-SARS" / "goods_crossings" / f"za-sars_declarations_{start_day}.csv",
            samples.GOODS_CROSSINGS_COLUMNS, samples.goods_crossings_rows(["ZA-BEI", "ZA-LEB"], start_day, 3,
                                                                          seed=30 + n)))
    rows = list(samples.traveller_flows_rows(["ZA-BEI"], today - dt.timedelta(days=3), 1, seed=40))
    rows[2][3] = BAD_NATIONALITY  # not ISO 3166-1 alpha-3: the file is quarantined
    bad = samples.write_csv(stash / "ZA-DHA" / "traveller_flows" / "za-dha_flows_resent.csv",
                            samples.TRAVELLER_FLOWS_COLUMNS, rows)
    return good, bad


def _extract_values(good: list[Path]) -> set[str]:
    """The distinctive values of what was dropped: invented border points and every declaration reference."""
    values = {p for points in BORDER_POINTS.values() for p in points if "-QX" in p} | {BAD_NATIONALITY}
    for path in good:
        if path.parent.name == "goods_crossings":
            values |= {line.split(",", 1)[0] for line in path.read_text().splitlines()[1:]}
    return values


def _key_lines(home: Path) -> set[str]:
    """A prefix of every secret line of the home's private keys, enough to recognise each."""
    found = set()
    for path in (home / "keys").rglob("*"):
        if path.is_file() and not path.name.endswith(".pub") and path.name != "allowed_signers":
            found |= {line.strip()[:40] for line in path.read_text().splitlines()
                      if line.strip() and not line.startswith(("#", "-----"))}
    return found


def _haystacks(airflow_logs: Path, home: Path, s3, bucket: str) -> dict[str, str]:
    """Every Airflow log (tasks and components), the home's reports, audit trail and bookkeeping, and the bucket."""
    found = {str(p): p.read_bytes().decode("utf-8", "replace") for p in airflow_logs.rglob("*") if p.is_file()}
    for path in home.rglob("*"):
        rel = path.relative_to(home)
        if not path.is_file() or rel.parts[0] in ("keys", "intake"):
            continue
        if rel.parts[0] in ("archive", "quarantine") and path.suffix == ".csv":
            continue  # the extracts themselves, kept byte for byte
        found[str(rel)] = path.read_bytes().decode("utf-8", "replace")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".age"):
                found[f"s3://{obj['Key']}"] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode(
                    "utf-8", "replace")
    return found


PING = """
import json, sys
from celery import Celery
app = Celery(broker=sys.argv[1], broker_transport_options={"global_keyprefix": sys.argv[2]})
print(json.dumps(sorted(name for reply in app.control.ping(timeout=1.0) for name in reply)))
"""


def _workers_ready(broker: str, prefix: str) -> set[str]:
    """The Celery workers that answer a ping on this run's broker prefix.

    Asked from a process of its own: a Celery client in the test process leaves broker connections and
    fork hooks behind, and a later test that forks (validation workers) would inherit them.
    """
    done = subprocess.run([sys.executable, "-c", PING, broker, prefix], capture_output=True, text=True, timeout=60)
    return set(json.loads(done.stdout)) if done.returncode == 0 else set()


def test_two_celery_workers_publish_every_file_once_and_leak_nothing(demo_home, s3_endpoint, bucket, s3, tmp_path,
                                                                     metadata_db, broker_prefix):
    for p in demo_home.intake.rglob("*"):
        if p.is_file():
            p.unlink()  # the demo's own samples; this test drops its own
    good, bad = _extracts(tmp_path / "stash", dt.date.today())
    assert len(good) == 6
    sources = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in good}
    bad_sha = hashlib.sha256(bad.read_bytes()).hexdigest()
    values = _extract_values(good)
    assert len(values) > 30

    airflow_home = tmp_path / "airflow"
    logs = airflow_home / "logs" / "components"
    db = metadata_db.replace("postgresql://", "postgresql+psycopg2://", 1)
    port = free_port()
    env = {
        **serving_env(home_env(airflow_home, db), port, executor="CeleryExecutor"),
        "AIRFLOW__CELERY__BROKER_URL": REDIS,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db}",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": broker_prefix,
        # Celery then records which worker ran each task beside its result; each worker imports the task
        # modules once (borderx.airflow.warm).
        "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": celery_config(result_extended=True),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "BORDERX_HOME": str(demo_home.root), "BORDERX_S3_ENDPOINT_URL": s3_endpoint, "BORDERX_BUCKET": bucket,
        "BORDERX_TRIGGER_POLL_SECONDS": "1",
        # The mapped stages, a task per file and per delivery, spread over the workers; a run of these few small
        # files would otherwise be done in its first task.
        "BORDERX_ONE_TASK_MAX_FILES": "0",
    }
    started = time.monotonic()
    migrate(env)
    airflow(env, "pools", "set", *UPLOAD_POOL)
    migrated = time.monotonic()

    procs: list[subprocess.Popen] = []
    deadline = migrated + DEADLINE
    try:
        procs += start_components(env, port, logs, tmp_path)
        for name in WORKERS:
            worker_env = {**env, "BORDERX_WORKER_NAME": name,
                          "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_procs.worker_name",
                          "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), env.get("PYTHONPATH")]))}
            procs.append(start(["celery", "worker", "--celery-hostname", f"{name}@borderx", "--skip-serve-logs"],
                               worker_env, logs / f"{name}.log", tmp_path))
        wait_for("the exchange DAG to be parsed",
                 lambda: _query(metadata_db, "SELECT 1 FROM dag WHERE dag_id = 'borderx_exchange'"),
                 deadline, procs, logs)
        airflow(env, "dags", "unpause", "borderx_exchange")
        wait_for("the triggerer to run one intake trigger per agency", lambda: len(_query(
            metadata_db, "SELECT id FROM trigger WHERE classpath = 'borderx.airflow.triggers.IntakeFolderTrigger' "
                    "AND triggerer_id IS NOT NULL")) == 3, deadline, procs, logs)
        wait_for("the api-server", lambda: port_open(port), deadline, procs, logs)
        wait_for("both Celery workers", lambda: _workers_ready(REDIS, broker_prefix) == {f"{w}@borderx" for w in WORKERS},
                 deadline, procs, logs, step=1)
        ready = time.monotonic()

        for p in [*good, bad]:
            drop(p, demo_home.intake / p.relative_to(tmp_path / "stash"))
        try:
            wait_for("every good extract to be published to both its recipients",
                     lambda: {sha: len(keys) for sha, keys in signed(s3, bucket).items()} == {sha: 2 for sha in sources},
                     deadline, procs, logs, step=2)
        except AssertionError as timed_out:
            waiting = sorted(p.name for p in demo_home.intake.rglob("*.csv"))
            raise AssertionError(f"still waiting in intake: {waiting}\n{timed_out}") from None
        published = time.monotonic()

        def runs_done():
            states = [s for (s,) in _query(metadata_db, "SELECT state FROM dag_run WHERE dag_id = 'borderx_exchange'")]
            return states and all(s in ("success", "failed") for s in states) and states

        states = wait_for("the runs to finish", runs_done, deadline, procs, logs)
        instances = _query(metadata_db, "SELECT task_id, map_index, state, hostname, external_executor_id "
                                   "FROM task_instance WHERE dag_id = 'borderx_exchange'")
        ran_by = dict(_query(metadata_db, "SELECT task_id, worker FROM celery_taskmeta"))
        # The broker's keys all carry this run's prefix: the transport option reached Celery.
        with redis.Redis.from_url(REDIS) as client:
            broker_keys = client.keys(f"{broker_prefix}*")
    finally:
        stop(procs)
    finished = time.monotonic()

    per_worker = Counter(host for *_, host, _ in instances)
    print(f"\ncelery: migrate {migrated - started:.0f} s, ready {ready - migrated:.0f} s, drop to published "
          f"{published - ready:.0f} s, runs {len(states)}, total {finished - started:.0f} s; tasks per worker "
          f"{dict(per_worker)}")
    assert all(s == "success" for s in states), states
    assert broker_keys, f"no Redis key under {broker_prefix}"

    # Both workers ran tasks, and Airflow's record of where each ran agrees with Celery's.
    assert set(per_worker) == set(WORKERS), per_worker
    for task_id, map_index, state, host, celery_id in instances:
        assert state in ("success", "skipped"), (task_id, map_index, state)
        if state == "success":
            assert ran_by.get(celery_id) == f"{host}@borderx", (task_id, map_index, host, ran_by.get(celery_id))

    # Exactly one signed delivery per good extract and recipient, each complete, none twice.
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/")
            for o in page.get("Contents", [])]
    deliveries = Counter(k.rsplit("/", 1)[0] for k in keys)
    assert len(deliveries) == 2 * len(good) and set(deliveries.values()) == {3}, deliveries
    manifests = [json.loads(s3.get_object(Bucket=bucket, Key=f"{d}/manifest.json")["Body"].read()) for d in deliveries]
    assert Counter((m["source"]["sha256"], m["recipient"]) for m in manifests).most_common(1)[0][1] == 1
    assert {m["source"]["sha256"] for m in manifests} == set(sources)

    # The audit trail lost no event: every file received and validated once, every delivery published once.
    trail = [json.loads(line) for line in (demo_home.audit / "trail.jsonl").read_text().splitlines()]
    by_type = {t: Counter(e["details"]["source_sha256"] for e in trail if e["type"] == t)
               for t in ("received", "validated", "quarantined")}
    assert by_type["received"] == by_type["validated"] == Counter([*sources, bad_sha])
    assert by_type["quarantined"] == Counter([bad_sha])
    assert sorted(e["details"]["delivery_id"] for e in trail if e["type"] == "published") == sorted(
        m["delivery_id"] for m in manifests)
    assert not [e for e in trail if e["type"] == "already-published"]
    verified = subprocess.run([str(Path(sys.executable).with_name("borderx")), "audit", "verify", "--home",
                               str(demo_home.root)], env=env, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert sorted(p.name for p in demo_home.archive.rglob("*.csv")) == sorted(p.name for p in good)
    assert [p.name for p in demo_home.quarantine.rglob("*.csv")] == [bad.name]

    # Nothing secret or from the extracts in any log, report or bucket object.
    haystacks = _haystacks(airflow_home / "logs", demo_home.root, s3, bucket)
    task_logs = [k for k in haystacks if "dag_id=borderx_exchange" in k]
    assert len(task_logs) >= len(instances) and any(k.endswith(".report.txt") for k in haystacks), sorted(haystacks)
    needles = values | _key_lines(demo_home.root)
    assert len(needles) > len(values) + 5
    for where, text in haystacks.items():
        for needle in (*PRIVATE_KEY_MARKERS, *needles):
            assert needle not in text, f"{needle[:12]}... found in {where}"
