"""The task modules that the processes forking Airflow's task processes import once: enough that an exchange
then imports none of the heavy libraries itself, and the same list wherever it is configured."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from borderx.airflow.warm import TASK_MODULES, celery_config

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("great_expectations", "pyarrow", "pandas", "numpy", "scipy", "boto3", "botocore", "s3transfer",
         "sqlalchemy", "cryptography")


def test_an_exchange_after_the_task_modules_imports_no_heavy_library(demo_home, s3_endpoint, bucket):
    code = textwrap.dedent(f"""
        import importlib, json, sys
        for name in {list(TASK_MODULES)!r}:
            importlib.import_module(name)
        before = set(sys.modules)
        from borderx.exchange import Runtime
        from borderx.exchange.spine import run_once
        rt = Runtime.open({str(demo_home.root)!r}, endpoint_url={s3_endpoint!r}, bucket={bucket!r})
        summary = run_once(rt, settle_seconds=0)
        roots = {{name.split(".")[0] for name in before}}
        first = sorted({{name.split(".")[0] for name in set(sys.modules) - before}} - roots)
        print(json.dumps({{"published": len(summary.published), "first": first}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=demo_home.root)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["published"] > 0, "the exchange published something, so its imports are the real ones"
    heavy = [m for m in found["first"] if m in HEAVY]
    assert not heavy, f"first imported by the exchange itself, not by the task modules: {heavy}"


def test_docker_compose_gives_celery_workers_the_same_task_modules():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = compose["x-airflow"]["environment"]
    assert json.loads(env["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"]) == json.loads(celery_config(result_extended=True))


def test_borderx_airflow_preloads_them_in_the_schedulers_forkserver():
    from borderx.dev.stack import FAST_EVENTS

    assert FAST_EVENTS["AIRFLOW__SCHEDULER__MP_START_METHOD"] == "forkserver"
    assert set(TASK_MODULES) <= set(FAST_EVENTS["AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"].split(","))
