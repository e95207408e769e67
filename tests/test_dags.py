"""The DAGs under a real Airflow on SQLite: they import cleanly and fast, and dag.test() runs an exchange."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"


@pytest.fixture
def airflow_env(tmp_path):
    """An Airflow home of its own on SQLite, migrated, with the project's dags folder."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}",
    }
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env, check=True,
                   capture_output=True)
    return env


def _python(code: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_every_dag_imports_without_errors_and_parses_fast(airflow_env):
    done = _python(
        f"""
        import json, time
        from airflow.dag_processing.dagbag import DagBag
        timings = {{}}
        for path in sorted(__import__("pathlib").Path({str(DAGS)!r}).glob("*.py")):
            started = time.perf_counter()
            bag = DagBag(dag_folder=str(path))
            timings[path.name] = [time.perf_counter() - started, {{k: str(v) for k, v in bag.import_errors.items()}},
                                  sorted(bag.dag_ids)]
        print(json.dumps(timings))
        """,
        airflow_env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    assert "borderx_exchange.py" in timings
    for name, (seconds, errors, dag_ids) in timings.items():
        assert not errors, f"{name}: {errors}"
        assert dag_ids, f"{name} defines no DAG"
        assert seconds < 1.0, f"{name} took {seconds:.2f} s to parse"


def test_dag_test_runs_one_exchange_per_file_and_recipient(airflow_env, demo_home, s3_endpoint, bucket, s3):
    good = sorted(str(p.relative_to(demo_home.root)) for p in demo_home.intake.rglob("*.csv")
                  if not any(tag in p.name for tag in ("resent", "_v2", "_draft")))
    bad = sorted(str(p.relative_to(demo_home.root)) for p in demo_home.intake.rglob("*resent.csv"))
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root), "BORDERX_S3_ENDPOINT_URL": s3_endpoint,
           "BORDERX_BUCKET": bucket}
    done = _python(
        f"""
        import importlib.util, json
        spec = importlib.util.spec_from_file_location("exchange_dag", {str(DAGS / "borderx_exchange.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        run = module.exchange_dag.test(run_conf={{"files": {good + bad!r}}})
        print(json.dumps({{"state": str(run.state), "run_id": run.run_id}}))
        """,
        env,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"].endswith("success"), done.stderr[-5000:]

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    signatures = [k for k in keys if k.endswith("manifest.json.sig")]
    assert len(signatures) == 2 * len(good)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=signatures[0].removesuffix(".sig"))["Body"].read())
    assert manifest["airflow"]["dag_id"] == "borderx_exchange"
    assert manifest["airflow"]["run_id"] == result["run_id"]
    assert manifest["airflow"]["task_id"] == "deliver"
    assert list(demo_home.quarantine.rglob("*resent.csv"))
    assert len(list(demo_home.archive.rglob("*.csv"))) == len(good)
