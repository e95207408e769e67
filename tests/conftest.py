"""Shared fixtures: a real S3 endpoint over HTTP (the moto server in its own process), demo homes, and Airflow
homes on a SQLite metadata database migrated once per session."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from airflow_procs import free_port, home_env, migrate
from borderx.dev.demo import drop_samples, prepare_home
from borderx.exchange import Runtime, run_once

E2E = Path(__file__).resolve().parent / "e2e"


# Each lane of end-to-end tests runs on one worker, one test at a time: a lane is a whole deployment at a time
# (Airflow's components, a Celery pair, a fresh virtual environment), and more than two at once on a two-core
# machine push each other past their deadlines. The lanes are about equally long, so they end together.
E2E_LANES = {
    "test_celery.py": "e2e-1", "test_light_client.py": "e2e-1",
    "test_airflow_cmd.py": "e2e-2", "test_local_executor.py": "e2e-2", "test_audit_web.py": "e2e-2",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the marks
def pytest_collection_modifyitems(items):
    """Under xdist (--dist loadgroup), the end-to-end tests go first, in their lanes, so that the workers that
    take them start on them while the others share out the rest."""
    e2e = [item for item in items if item.path.is_relative_to(E2E)]
    for item in e2e:
        item.add_marker(pytest.mark.xdist_group(E2E_LANES.get(item.path.name, "e2e-1")))
    items[:] = e2e + [item for item in items if not item.path.is_relative_to(E2E)]


def pytest_collection_finish(session):
    """xdist puts a test in its group by renaming it TEST@GROUP; a pytest it does not know how to rename would
    spread the lanes over every worker, several deployments at once, without a word."""
    if getattr(session.config.option, "loadgroup", False):  # set on xdist's workers only
        strays = [item.nodeid for item in session.items if item.path.is_relative_to(E2E) and "@e2e-" not in item.nodeid]
        if strays:
            raise pytest.UsageError(f"end-to-end tests outside their lanes (pytest and pytest-xdist disagree): {strays[:3]}")


@pytest.fixture(scope="session")
def s3_endpoint():
    """The local S3 endpoint of the demo (moto, served with keep-alive) on 127.0.0.1, in its own process,
    started for this test session and stopped after it."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "borderx-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "borderx-test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "borderx.dev.local_s3", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the local S3 endpoint exited at start")
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("the local S3 endpoint did not start within 30 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint) -> str:
    """A bucket of its own per test, so tests never see each other's deliveries."""
    return f"bx-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def demo_home(tmp_path):
    """A sample deployment (the project's config, fresh keys) with the demo's extracts in its intake."""
    today = dt.date.today()
    home = prepare_home(tmp_path / "home", today)
    drop_samples(home, today)
    return home


@pytest.fixture(scope="module")
def published_demo(tmp_path_factory, s3_endpoint) -> Runtime:
    """The demo's extracts exchanged once into a bucket of their own, for a module's tests to read from."""
    today = dt.date.today()
    home = prepare_home(tmp_path_factory.mktemp("published") / "home", today)
    drop_samples(home, today)
    rt = Runtime.open(home.root, endpoint_url=s3_endpoint, bucket=f"bx-{uuid.uuid4().hex[:12]}")
    assert run_once(rt, settle_seconds=0).published
    return rt


@pytest.fixture
def runtime(demo_home, s3_endpoint, bucket) -> Runtime:
    return Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory) -> Path:
    """A SQLite Airflow metadata database, migrated once per session (once per worker under xdist): a migration
    takes seconds, a copy of its result milliseconds."""
    home = tmp_path_factory.mktemp("airflow-migrated")
    db = home / "airflow.db"
    migrate(home_env(home, f"sqlite:///{db}"))
    # Airflow keeps SQLite in WAL mode: fold any log left behind into the file, so one file copy is the database.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


@pytest.fixture
def airflow_env(tmp_path, migrated_airflow_db) -> dict[str, str]:
    """An Airflow home of this test's own, with the project's dags and plugins, on its own copy of the migrated
    database."""
    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copyfile(migrated_airflow_db, home / "airflow.db")
    return home_env(home, f"sqlite:///{home / 'airflow.db'}")
