"""OpenLineage events from the exchange tasks carry the agreement and the delivery as a facet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_deliver_runs_emit_lineage_with_the_delivery_facet(tmp_path, demo_home, s3_endpoint, bucket):
    events_file = tmp_path / "lineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events_file),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__CUSTOM_RUN_FACETS": "borderx.airflow.lineage.delivery_facets",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "borderx-test",
        "BORDERX_HOME": str(demo_home.root),
        "BORDERX_S3_ENDPOINT_URL": s3_endpoint,
        "BORDERX_BUCKET": bucket,
        # Each delivery its own deliver task, as the README says to set where lineage is collected.
        "BORDERX_ONE_TASK_MAX_FILES": "0",
    }
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env, check=True,
                   capture_output=True)
    good = [str(p.relative_to(demo_home.root)) for p in demo_home.intake.rglob("za-sars_declarations_*.csv")
            if "_draft" not in p.name]
    code = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("exchange_dag", {str(REPO / "dags" / "borderx_exchange.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = next(v for v in vars(module).values() if getattr(v, "dag_id", None) == "borderx_exchange")
        run = dag.test(run_conf={{"files": {good!r}}})
        assert str(run.state).endswith("success"), run.state
    """)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    assert events, "no OpenLineage event was written"
    facets = [e["run"]["facets"]["borderx_delivery"] for e in events
              if e.get("eventType") == "COMPLETE" and "borderx_delivery" in e["run"].get("facets", {})]
    assert {(f["agreement"], f["recipient"]) for f in facets} == {("DSA-2026-002", "BW-BURS"),
                                                                  ("DSA-2026-003", "NA-MHAISS")}
    assert all(len(f["deliveryId"]) == 32 and f["status"] == "success" for f in facets)
    assert all(e["job"]["namespace"] == "borderx-test" for e in events)
