"""The scheduled anchor under a real Airflow on SQLite: dag.test() signs a head into the bucket (on the moto
server) only when the trail grew, refuses a rewritten trail, and `borderx audit verify` checks what it signed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from airflow_procs import DAGS, run_python
from borderx.cli import main
from borderx.exchange import run_once

DAG_FILE = DAGS / "borderx_audit_anchor.py"


class _AnchorRuns:
    """One Python process, as Airflow would run the DAG, that runs the anchor DAG with dag.test() each time it is
    asked, so the test can change the trail between runs without paying Airflow's start-up each time."""

    CODE = f"""
        import importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("audit_anchor", {str(DAG_FILE)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for line in sys.stdin:
            states = [str(module.audit_anchor_dag.test().state) for _ in range(int(line))]
            print("STATES " + json.dumps(states), flush=True)
    """

    def __init__(self, env: dict, log: Path):
        # Airflow logs plenty: to a file, so that a full pipe never stalls the process between answers.
        self.log = log
        with open(log, "wb") as sink:
            self.proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(self.CODE)], env=env, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sink)

    def __call__(self, runs: int) -> list[str]:
        """Runs the DAG `runs` times; the final state of each run."""
        self.proc.stdin.write(f"{runs}\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("STATES "):
                return [s.rsplit(".", 1)[-1] for s in json.loads(line.removeprefix("STATES "))]
        raise AssertionError(f"the DAG process ended early:\n{self.log.read_text(errors='replace')[-5000:]}")

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.proc.stdout.close()


def _heads(s3, bucket) -> list[dict]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="audit/heads/").get("Contents", [])]
    assert sorted(keys) == sorted([k for k in keys if k.endswith(".json")] + [k + ".sig" for k in keys
                                                                               if k.endswith(".json")])
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in sorted(keys) if k.endswith(".json")]


def test_the_anchor_dag_signs_new_events_once_and_verify_checks_them(airflow_env, runtime, s3, bucket, capsys,
                                                                   tmp_path):
    run_once(runtime, settle_seconds=0)
    [run_head] = _heads(s3, bucket)
    env = {**airflow_env, "BORDERX_HOME": str(runtime.home.root), "BORDERX_S3_ENDPOINT_URL": runtime.target.endpoint_url,
           "BORDERX_BUCKET": bucket}

    dag_tests = _AnchorRuns(env, tmp_path / "dag-test.log")
    try:
        # Nothing since the run's own head; then a config change lands between runs and the first tick signs it.
        settings = runtime.home.config / "settings.yaml"
        assert dag_tests(1) == ["success"]
        assert _heads(s3, bucket) == [run_head]
        settings.write_text(settings.read_text() + "\n# reviewed by the hub operator\n")
        assert dag_tests(2) == ["success", "success"]
        heads = _heads(s3, bucket)
        assert len(heads) == 2 and heads[0] == run_head
        last = list(runtime.trail.events())[-1]
        assert last["type"] == "config-changed" and (heads[1]["seq"], heads[1]["hash"]) == (last["seq"], last["hash"])
        assert (runtime.home.audit / "heads" / f"{last['seq']:012d}.json").exists()

        verify = ["audit", "verify", "--home", str(runtime.home.root), "--s3-endpoint", runtime.target.endpoint_url,
                  "--bucket", bucket]
        assert main(verify) == 0
        assert "2 signed head(s)" in capsys.readouterr().out
        # The scheduled head is what catches losing the config change: the run's head alone would not.
        lines = runtime.trail.path.read_text().splitlines(keepends=True)
        runtime.trail.path.write_text("".join(lines[:-1]))
        assert main(verify) == 1
        out = capsys.readouterr().out
        assert f"covers seq {last['seq']} (tail cut)" in out, out

        # A trail that no longer fits the bucket is not signed over; the task fails without retrying.
        runtime.trail.append("config-changed", files={})
        assert dag_tests(1) == ["failed"]
        assert len(_heads(s3, bucket)) == 2
    finally:
        dag_tests.close()


def test_the_anchor_dag_parses_light_hourly_unless_told(airflow_env, demo_home):
    code = f"""
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAG_FILE)!r})
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"boto3", "botocore", "great_expectations",
                                                                 "pandas", "pyarrow"}})
        dag = bag.dags["borderx_audit_anchor"]
        print(json.dumps({{"errors": {{k: str(v) for k, v in bag.import_errors.items()}},
                          "heavy": heavy, "schedule": dag.timetable.expression, "tasks": dag.task_ids}}))
    """
    facts = {}
    for schedule in ("", "*/15 * * * *"):
        env = {**airflow_env, "BORDERX_HOME": str(demo_home.root), "BORDERX_ANCHOR_SCHEDULE": schedule}
        done = run_python(code, env, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        facts[schedule] = json.loads(done.stdout.strip().splitlines()[-1])
    for f in facts.values():
        assert not f["errors"] and f["heavy"] == [], f
        assert f["tasks"] == ["sign_head"]
    assert facts[""]["schedule"] == "0 * * * *" and facts["*/15 * * * *"]["schedule"] == "*/15 * * * *"
